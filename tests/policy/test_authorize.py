"""authorize(): client, path, route, scopes, query and mode, as the proxy calls it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from support.policies import EXAMPLE_POLICIES, identity, load_text
from vigie.context import Grant
from vigie.errors import BadRequest, Forbidden
from vigie.policy.authorize import authorize
from vigie.policy.loader import load_policies
from vigie.policy.model import Mode, PolicySet

READ = {"patient.read"}
SEARCH = {"patient.search"}


@pytest.fixture(scope="module")
def examples() -> PolicySet:
    return load_policies(EXAMPLE_POLICIES)


def call(policies: PolicySet, path: bytes, query: bytes = b"", *, method: str = "GET",
         client: str = "gp-frontdesk", scopes: set[str] = READ | SEARCH,
         mode: Mode = Mode.ENFORCE) -> Grant:
    return authorize(policies, identity(client, scopes), method, path, query, mode)


def test_grant_for_a_matching_route(examples: PolicySet) -> None:
    grant = call(examples, b"/patients/42")
    assert grant.route.name == "read-patient"
    assert grant.policy.client == "gp-frontdesk"
    assert grant.path == "/patients/42"
    assert grant.params == {"id": "42"}
    assert grant.query == ""
    assert grant.mode is Mode.ENFORCE


def test_the_grant_carries_the_normalized_path(examples: PolicySet) -> None:
    grant = call(examples, b"//patients/./x/../4%32")
    assert grant.path == "/patients/42" and grant.params == {"id": "42"}


def test_path_params_are_decoded(examples: PolicySet) -> None:
    grant = call(examples, b"/patients/%c3%a9t%C3%A9")
    assert grant.path == "/patients/%C3%A9t%C3%A9"
    assert grant.params == {"id": "été"}


def test_unknown_client_is_forbidden(examples: PolicySet) -> None:
    with pytest.raises(Forbidden) as caught:
        call(examples, b"/patients/42", client="nobody")
    assert caught.value.reason == "unknown_client" and caught.value.status == 403


@pytest.mark.parametrize("path", [
    b"/patients/42%2F..%2F43", b"/patients/%2e%2e/admin", b"/patients/42;x=1", b"/..",
    b"http://evil/patients/42", b"/patients/42%00", b"/patients\\42", b"/patients/%252F",
])
def test_bad_paths_are_refused_before_matching(examples: PolicySet, path: bytes) -> None:
    with pytest.raises(BadRequest):
        call(examples, path)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", b"/patients/42"),
    ("DELETE", b"/patients/42"),
    ("GET", b"/patients/42/notes"),
    ("GET", b"/patients/"),          # a parameter never matches an empty segment
    ("GET", b"/patients/42/"),
    ("GET", b"/Patients/42"),        # literals are case-sensitive
    ("GET", b"/"),
    ("GET", b"//evil.example/patients/42"),
    ("GET", b"/export.ndjson"),      # another client's route
])
def test_no_route_is_forbidden(examples: PolicySet, method: str, path: bytes) -> None:
    with pytest.raises(Forbidden) as caught:
        call(examples, path, method=method)
    assert caught.value.reason == "no_route"


def test_head_matches_a_get_route(examples: PolicySet) -> None:
    assert call(examples, b"/patients/42", method="HEAD").route.name == "read-patient"


def test_head_only_route_does_not_allow_get(tmp_path: Path) -> None:
    policies = load_text(tmp_path, """
        client: gp-frontdesk
        routes:
          - {name: peek, methods: [HEAD], path: "/patients/{id}"}
    """)
    assert call(policies, b"/patients/1", method="HEAD").route.name == "peek"
    with pytest.raises(Forbidden):
        call(policies, b"/patients/1", method="GET")


@pytest.mark.parametrize(("scopes", "allowed"), [
    (READ, True), (READ | {"other"}, True), (SEARCH, False), (set(), False),
    ({"patient.read.all"}, False), ({"PATIENT.READ"}, False),
])
def test_scopes_are_all_required(examples: PolicySet, scopes: set[str], allowed: bool) -> None:
    if allowed:
        assert call(examples, b"/patients/42", scopes=scopes).route.name == "read-patient"
    else:
        with pytest.raises(Forbidden) as caught:
            call(examples, b"/patients/42", scopes=scopes)
        assert caught.value.reason == "scope"


def test_every_listed_scope_is_required(tmp_path: Path) -> None:
    policies = load_text(tmp_path, """
        client: gp-frontdesk
        routes:
          - {name: read, methods: [GET], path: "/p/{id}", scopes: [a, b]}
    """)
    assert call(policies, b"/p/1", scopes={"a", "b"}).route.name == "read"
    for partial in ({"a"}, {"b"}):
        with pytest.raises(Forbidden):
            call(policies, b"/p/1", scopes=partial)


@pytest.mark.parametrize("query", [
    b"", b"last_name=Martin", b"last_name=Martin&page=2&page_size=50", b"page_size=0",
    b"page_size=050", b"last_name=", b"last_name=Le%20Gall&birth_date=1985-05-17",
    b"last_name=M%C3%BCller", b"last_name=a+b",
])
def test_query_within_the_rules_is_forwarded_as_received(examples: PolicySet,
                                                         query: bytes) -> None:
    grant = call(examples, b"/patients", query)
    assert grant.route.name == "search-patients"
    assert grant.query == query.decode()


@pytest.mark.parametrize("query", [
    b"nir=185057800608491",                  # not in allowed
    b"last_name=a&LAST_NAME=b",
    b"last_name=a&last_name=b",              # repeated: parameter pollution
    b"last_name=a&last%5Fname=b",            # repeated once decoded
    b"page_size=51",
    b"page_size=100000000000000000000000",
    b"page%5Fsize=51",                       # the upstream decodes names too
    b"page_size=",
    b"page_size=abc", b"page_size=-1", b"page_size=+5", b"page_size=%205", b"page_size=5.0",
    b"page_size=1e1", b"page_size=%D9%A5",   # Arabic-Indic five: not an ASCII integer
    b"page_size=1_0",
    b"last_name=a;page_size=500",            # ';' as a separator upstream
    b"last_name", b"last_name=a&&page=1", b"&", b"=x",
    b"last_name=%FF",                        # not UTF-8
    b"last_name=a#frag", b"last_name=\xc3\xa9", b"last_name=a b",
])
def test_query_outside_the_rules_is_refused(examples: PolicySet, query: bytes) -> None:
    with pytest.raises(BadRequest):
        call(examples, b"/patients", query)


def test_routes_without_query_rules_forward_any_wellformed_query(examples: PolicySet) -> None:
    assert call(examples, b"/patients/42", b"anything=1&x=2&x=3").query == "anything=1&x=2&x=3"
    with pytest.raises(BadRequest):
        call(examples, b"/patients/42", b"x=\x00")


def test_too_many_query_fields_are_refused(examples: PolicySet) -> None:
    with pytest.raises(BadRequest):
        call(examples, b"/patients", b"&".join([b"page=1"] * 100))


def test_mode_comes_from_the_policy_or_the_default(tmp_path: Path) -> None:
    policies = load_text(tmp_path, """
        client: gp-frontdesk
        mode: report-only
        routes:
          - {name: read, methods: [GET], path: "/p/{id}"}
    """)
    assert call(policies, b"/p/1", mode=Mode.ENFORCE).mode is Mode.REPORT_ONLY
    examples = load_policies(EXAMPLE_POLICIES)
    assert call(examples, b"/patients/42", mode=Mode.REPORT_ONLY).mode is Mode.ENFORCE
    billing = authorize(examples, identity("billing", {"billing.read"}), "GET",
                        b"/fhir/Patient/7", b"", Mode.REPORT_ONLY)
    assert billing.mode is Mode.REPORT_ONLY and billing.route.name == "fhir-patient"


def test_first_route_in_file_order_wins(tmp_path: Path) -> None:
    policies = load_text(tmp_path, """
        client: gp-frontdesk
        routes:
          - {name: search, methods: [GET], path: "/patients/search"}
          - {name: read, methods: [GET], path: "/patients/{id}"}
          - {name: pair, methods: [GET], path: "/patients/{id}/links/{other}"}
          - {name: root, methods: [GET], path: "/"}
    """)
    assert call(policies, b"/patients/search").route.name == "search"
    assert call(policies, b"/patients/searc").route.name == "read"
    grant = call(policies, b"/patients/1/links/2")
    assert grant.route.name == "pair" and grant.params == {"id": "1", "other": "2"}
    assert call(policies, b"/").route.name == "root"


def test_matching_is_fast(tmp_path: Path) -> None:
    routes = "\n".join(
        f'  - {{name: r{i}, methods: [GET], path: "/api/v{i}/patients/{{id}}/items/{{n}}"}}'
        for i in range(50)
    )
    policies = load_text(tmp_path, f"client: gp-frontdesk\nroutes:\n{routes}\n")
    who = identity("gp-frontdesk")
    rounds = 5000
    started = time.perf_counter()
    for _ in range(rounds):
        authorize(policies, who, "GET", b"/api/v49/patients/42/items/7", b"", Mode.ENFORCE)
    per_call = (time.perf_counter() - started) / rounds
    assert per_call < 200e-6, f"{per_call * 1e6:.1f} µs per authorize"


def test_example_policy_tests_agree_with_authorize(examples: PolicySet) -> None:
    """The refusals the example *.test.yaml expects before the upstream are authorize's."""
    import yaml

    suite = yaml.safe_load((EXAMPLE_POLICIES / "gp-frontdesk.test.yaml").read_text())
    assert suite["client"] in examples.clients
    checked = 0
    for case in suite["cases"]:
        request, status = case["request"], case["expect"]["status"]
        claims = request["claims"]
        scopes = set(str(claims.get("scope", "")).split())
        path, _, query = request["path"].partition("?")
        who = identity(suite["client"], scopes, **claims)
        if status in (400, 403):
            with pytest.raises(BadRequest if status == 400 else Forbidden):
                authorize(examples, who, request["method"], path.encode(), query.encode(),
                          Mode.ENFORCE)
        else:
            authorize(examples, who, request["method"], path.encode(), query.encode(),
                      Mode.ENFORCE)
        checked += 1
    assert checked == len(suite["cases"]) >= 8
