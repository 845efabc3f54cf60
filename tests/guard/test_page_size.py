"""Route key `page_size: {param, max}`: the page size the policy declares, used by the
reservation and the deep-paging signal instead of a guess from parameter names."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.policies import load_text, minimal_policy, write_policies
from vigie.guard.observation import observe_request
from vigie.guard.reservation import plan_route
from vigie.policy.loader import check_policies
from vigie.policy.model import Route

ROUTE = """\
  - name: search
    methods: [GET]
    path: /patients
    scopes: [patient.read]
    query: {{allowed: [nom, nb, page, limit], max: {{nb: 100}}}}
{declared}    response:
      records: "$.items[*]"
      fields:
        id: keep
"""


def _route(tmp_path: Path, declared: str) -> Route:
    policy = load_text(tmp_path, minimal_policy(routes=ROUTE.format(declared=declared)))
    found = policy.get("c1")
    assert found is not None
    return found.routes[0]


def test_a_declared_page_size_is_reserved_and_read(tmp_path: Path) -> None:
    route = _route(tmp_path, "    page_size: {param: nb}\n")  # max: the query rule's
    plan = plan_route(route)
    assert (plan.records, plan.max_page, plan.size_param) == (100, 100, "nb")
    seen = observe_request(0.0, "search", {}, "nom=dupont&nb=100&page=3", 200, 100, 0,
                           plan.max_page, 2, size_param=plan.size_param)
    assert seen.at_max and not seen.broad
    # The declared parameter decides; a guessed name (limit) no longer does.
    seen = observe_request(0.0, "search", {}, "nom=dupont&nb=10&limit=500&page=3", 200, 10,
                           0, plan.max_page, 2, size_param=plan.size_param)
    assert not seen.at_max


def test_an_explicit_max_and_the_guess_for_routes_that_declare_nothing(tmp_path: Path) -> None:
    route = _route(tmp_path, "    page_size: {param: limit, max: 20}\n")
    declared = plan_route(route)
    assert (declared.records, declared.max_page, declared.size_param) == (20, 20, "limit")
    guessed = plan_route(_route(tmp_path / "g", ""))
    # `nb` is no name the guess knows: one record reserved, page size read from SIZE_KEYS.
    assert (guessed.records, guessed.max_page, guessed.size_param) == (1, None, None)
    seen = observe_request(0.0, "search", {}, "nom=dupont&limit=500&page=3", 200, 10, 0,
                           guessed.max_page, 2)
    assert seen.at_max


@pytest.mark.parametrize(("declared", "message"), [
    ("    page_size: nb\n", "must be a mapping"),
    ("    page_size: {max: 10}\n", "must name the query parameter"),
    ("    page_size: {param: size}\n", "not in the query rule's allowed"),
    ("    page_size: {param: nb, max: 0}\n", "must be a positive integer"),
    ("    page_size: {param: nb, max: 50}\n", "differs from the query rule's max"),
    ("    page_size: {param: nb, step: 5}\n", "unknown key"),
])
def test_a_bad_declaration_is_refused_with_its_line(tmp_path: Path, declared: str,
                                                     message: str) -> None:
    text = minimal_policy(routes=ROUTE.format(declared=declared))
    errors = check_policies(write_policies(tmp_path, {"policy.yaml": text}))
    assert len(errors) == 1 and message in errors[0] and "page_size" in errors[0], errors
