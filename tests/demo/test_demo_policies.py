"""The packaged demo policies load, validate, and give each client its own view."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from vigie.demo import DEMO_POLICIES
from vigie.policy.loader import check_policies, load_policies
from vigie.policy.model import Action, Generalization, Key, Route, Where
from vigie.policy.testing import run_tests

NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"


def _route(client: str, name: str) -> Route:
    policy = load_policies(DEMO_POLICIES).get(client)
    assert policy is not None
    return next(route for route in policy.routes if route.name == name)


def test_demo_policies_are_valid_and_name_three_clients() -> None:
    assert check_policies(DEMO_POLICIES) == []
    policies = load_policies(DEMO_POLICIES)
    assert set(policies.clients) == {"gp-frontdesk", "billing", "research"}
    for client, policy in policies.clients.items():
        assert policy.description and policy.source is not None
        assert policy.source.name == f"{client}.yaml"
        for route in policy.routes:
            assert route.response is not None, (client, route.name)
            assert route.scopes, (client, route.name)


def test_front_desk_never_sees_the_nir_and_is_bound_to_its_practice() -> None:
    for name in ("read-patient", "search-patients"):
        rule = _route("gp-frontdesk", name).response
        assert rule is not None
        listed = {f.selector.steps[0] for f in rule.fields}
        assert Key("nir") not in listed and Key("notes") not in listed
        birth = next(f for f in rule.fields if f.selector.text == "birth_date")
        assert birth.generalize is Generalization.YEAR
        assert [(b.field.text, b.claim) for b in rule.bind] == [("practice_id", "practice_id")]
    search = _route("gp-frontdesk", "search-patients")
    assert search.query is not None and search.query.max["page_size"] == 50
    assert "nir" not in search.query.allowed


def test_billing_keeps_exactly_the_nir_identifier() -> None:
    rule = _route("billing", "read-patient-fhir").response
    assert rule is not None
    kept_nir = [f for f in rule.fields if f.selector.steps[:2] == (Key("identifier"),
                                                                    Where("system", NIR_SYSTEM))]
    assert {f.selector.steps[-1] for f in kept_nir} == {Key("system"), Key("value")}
    assert all(f.action is Action.KEEP for f in kept_nir)
    assert not any(f.selector.steps[0] in {Key("telecom"), Key("address")} for f in rule.fields)
    assert [(b.field.text, b.claim) for b in rule.bind] == [
        ("managingOrganization.identifier.value", "practice_id")]
    search = _route("billing", "search-patients-fhir").response
    assert search is not None and search.records.text == "$.entry[*].resource"


def test_research_only_sees_pseudonyms_years_and_departments() -> None:
    for name in ("export", "search-cohort"):
        rule = _route("research", name).response
        assert rule is not None
        actions = {f.selector.text: f for f in rule.fields}
        assert actions["id"].action is Action.PSEUDONYMIZE
        assert actions["birth_date"].generalize is Generalization.YEAR
        assert actions["address.postcode"].generalize is Generalization.DEPARTMENT
        assert not {"nir", "last_name", "first_name", "notes", "email"} & set(actions)
    assert _route("research", "export").path == "/export.ndjson"


def test_policy_test_files_target_the_demo_clients() -> None:
    tests = sorted(DEMO_POLICIES.glob("*.test.yaml"))
    assert [t.name for t in tests] == ["billing.test.yaml", "gp-frontdesk.test.yaml",
                                       "research.test.yaml"]
    for path in tests:
        suite = yaml.safe_load(path.read_text())
        assert suite["client"] == path.name.removesuffix(".test.yaml")
        assert len(suite["cases"]) >= 3
        for case in suite["cases"]:
            assert set(case) <= {"name", "request", "upstream", "expect"}, case["name"]
            assert {"method", "path", "claims"} <= set(case["request"])
            assert "status" in case["expect"]


def test_demo_policies_ship_inside_the_package() -> None:
    packaged = Path(str(resources.files("vigie.demo") / "policies"))
    assert packaged == DEMO_POLICIES
    assert {p.name for p in packaged.glob("*.yaml")} >= {"gp-frontdesk.yaml", "billing.yaml",
                                                         "research.yaml"}


def test_demo_policy_tests_pass_through_the_real_pipeline() -> None:
    outcomes = run_tests(DEMO_POLICIES)
    assert len(outcomes) >= 15
    assert [(o.name, o.failures) for o in outcomes if o.failures] == []


def test_a_demo_policy_test_fails_when_the_policy_leaks(tmp_path: Path) -> None:
    for source in DEMO_POLICIES.glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    research = tmp_path / "research.yaml"
    research.write_text(research.read_text(encoding="utf-8").replace(
        "        sex: keep\n", "        sex: keep\n        last_name: keep\n"), encoding="utf-8")
    failed = {o.name for o in run_tests(tmp_path) if o.failures}
    assert failed == {"research sees sex, year of birth and department only",
                      "the NDJSON export is pseudonymized line by line, NIRs never leave"}
