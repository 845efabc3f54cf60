"""Policy loading: golden errors (file, line, message) for invalid folders; valid ones load."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.policies import EXAMPLE_POLICIES, load_text, minimal_policy, write_policies
from vigie.errors import ConfigError
from vigie.policy.loader import PolicyError, check_policies, load_policies, policy_files
from vigie.policy.model import (
    Action,
    Each,
    Generalization,
    Key,
    MaskStyle,
    Mode,
    Unlisted,
    Where,
)
from vigie.rates import Rate

INVALID = Path(__file__).parent / "fixtures" / "invalid"
CASES = sorted(p.name for p in INVALID.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES)
def test_invalid_policies_report_every_error_with_file_and_line(case: str) -> None:
    folder = INVALID / case
    expected = [
        f"{folder}/{line}".replace("{dir}", str(folder))
        for line in (folder / "expected.txt").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert check_policies(folder) == expected
    with pytest.raises(PolicyError) as caught:
        load_policies(folder)
    assert caught.value.errors == expected
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value) == "\n".join(expected)


def test_examples_are_valid() -> None:
    assert check_policies(EXAMPLE_POLICIES) == []
    policies = load_policies(EXAMPLE_POLICIES)
    assert set(policies.clients) == {"gp-frontdesk", "billing", "lab-results", "research-export"}


def test_the_contract_example_loads_into_the_model() -> None:
    policy = load_policies(EXAMPLE_POLICIES).get("gp-frontdesk")
    assert policy is not None
    assert policy.mode is Mode.ENFORCE
    assert policy.source == EXAMPLE_POLICIES / "gp-frontdesk.yaml"
    assert policy.limits.requests == Rate(120, 60)
    assert policy.limits.enumeration is True
    assert policy.client_limits is not None
    assert policy.client_limits.requests == Rate(20000, 60)
    assert policy.client_limits.records is None  # inherited later from the configuration
    read, search = policy.routes
    assert (read.name, read.path, read.segments, read.params) == (
        "read-patient", "/patients/{id}", ("patients", None), ("id",))
    assert read.methods == frozenset({"GET"})
    assert read.scopes == frozenset({"patient.read"})
    assert read.line == 9 and read.masks
    assert read.response is not None
    rules = {rule.selector.text: rule for rule in read.response.fields}
    assert rules["birth_date"].generalize is Generalization.YEAR
    assert rules["nir"].action is Action.MASK and rules["nir"].mask is MaskStyle.LAST2
    assert rules["telecom[*].value"].selector.steps == (Key("telecom"), Each(), Key("value"))
    ins = rules["identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value"]
    assert ins.action is Action.PSEUDONYMIZE
    assert ins.selector.steps[1] == Where("system", "urn:oid:1.2.250.1.213.1.4.8")
    assert rules["nir"].line == 20
    assert read.response.unlisted is Unlisted.DROP
    assert [(b.field.text, b.claim) for b in read.response.bind] == [("practice_id",
                                                                      "practice_id")]
    assert search.query is not None
    assert search.query.allowed == {"last_name", "birth_date", "page", "page_size"}
    assert dict(search.query.max) == {"page_size": 50}
    assert search.response is not None
    assert search.response.records.steps == (Key("items"), Each())


def test_defaults(tmp_path: Path) -> None:
    policy = load_text(tmp_path, """
        client: c1
        routes:
          - name: read
            methods: [GET]
            path: /patients/{id}
            response: {fields: {id: keep}}
    """).clients["c1"]
    assert policy.mode is None and policy.description == "" and policy.client_limits is None
    assert policy.limits.requests is None
    route = policy.routes[0]
    assert route.scopes == frozenset() and route.query is None
    assert route.response is not None
    assert route.response.records.steps == () and route.response.unlisted is Unlisted.DROP


def test_file_selection(tmp_path: Path) -> None:
    write_policies(tmp_path, {
        "a.yaml": minimal_policy("a"),
        "b.yml": minimal_policy("b"),
        "a.test.yaml": "client: a\ncases: []\n",
        "b.test.yml": "client: b\ncases: []\n",
        "_schema.yaml": "anything: [",
        ".hidden.yaml": "anything: [",
        "notes.txt": "not yaml",
    })
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text(minimal_policy("c"))
    assert [p.name for p in policy_files(tmp_path)] == ["a.yaml", "b.yml"]
    assert set(load_policies(tmp_path).clients) == {"a", "b"}


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    assert check_policies(tmp_path) == [f"{tmp_path}: no policy files (*.yaml)"]
    missing = tmp_path / "nope"
    assert check_policies(missing) == [f"{missing}: not a folder of policies"]
    with pytest.raises(PolicyError):
        load_policies(missing)


def test_errors_in_several_files_are_all_reported(tmp_path: Path) -> None:
    write_policies(tmp_path, {
        "a.yaml": "client: a\nroutes: []\n",
        "b.yaml": "client: b\nkind: x\nroutes: []\n",
        "c.yaml": minimal_policy("c"),
    })
    errors = check_policies(tmp_path)
    assert [e.split(": ", 1)[0] for e in errors] == [
        f"{tmp_path}/a.yaml:2", f"{tmp_path}/b.yaml:2", f"{tmp_path}/b.yaml:3"]


def test_a_route_after_a_narrower_one_is_fine(tmp_path: Path) -> None:
    policy = load_text(tmp_path, minimal_policy("c1", """\
        - {name: search, methods: [GET], path: "/patients/search"}
        - {name: read, methods: [GET], path: "/patients/{id}"}
        - {name: write, methods: [PUT], path: "/patients/{id}"}
        - {name: notes, methods: [GET], path: "/patients/{id}/notes"}
        - {name: head, methods: [HEAD], path: "/patients/{id}/notes/{n}"}
        - {name: slash, methods: [GET], path: "/patients/{id}/"}
        - {name: root, methods: [GET], path: "/"}
    """)).clients["c1"]
    assert [r.name for r in policy.routes] == ["search", "read", "write", "notes", "head",
                                               "slash", "root"]
    assert policy.routes[-2].segments == ("patients", None, "")
    assert policy.routes[-1].segments == ("",)


def test_a_get_route_shadows_a_later_head_route(tmp_path: Path) -> None:
    write_policies(tmp_path, {"p.yaml": minimal_policy("c1", """\
        - {name: read, methods: [GET], path: "/patients/{id}"}
        - {name: peek, methods: [HEAD], path: "/patients/{id}"}
    """)})
    [error] = check_policies(tmp_path)
    assert "route 'peek' is unreachable" in error and error.startswith(f"{tmp_path}/p.yaml:4:")
