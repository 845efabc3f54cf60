"""Route templates, least forms, limits and generated tests, case by case."""

from __future__ import annotations

import pytest

from vigie.learn.evidence import Evidence, RouteUse
from vigie.learn.forms import Entitlement, action_for, with_margin
from vigie.learn.suggest import suggest
from vigie.learn.templates import generalize, route_name, specificity, split, template
from vigie.learn.testgen import policy_tests
from vigie.learn.usage import ShapeUse
from vigie.policy.purposes import PURPOSES, Category, categorize

INS = "identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value"


def test_concrete_paths_become_templates() -> None:
    shapes = [split(p) for p in ("/patients/{}", "/patients/{}/results/{}", "/export.ndjson",
                                 "/patients/by-name/alpha", "/patients/by-name/bravo",
                                 "/patients/by-name/charlie", "/patients/search")]
    mapping = generalize(shapes)
    templates = sorted({template(t) for t in mapping.values()})
    assert templates == ["/export.ndjson", "/patients/by-name/{id}", "/patients/search",
                         "/patients/{id}", "/patients/{patient_id}/results/{id}"]


def test_route_names_are_unique_and_literals_sort_before_parameters() -> None:
    taken: set[str] = set()
    assert route_name("GET", split("/patients/{}"), taken) == "patients-item"
    assert route_name("GET", split("/patients/{}"), taken) == "patients-item-2"
    assert route_name("POST", split("/export.ndjson"), taken) == "post-export"
    paths = ["/patients/{id}", "/patients/search", "/patients"]
    assert sorted(paths, key=lambda p: (specificity(p), p)) == [
        "/patients", "/patients/search", "/patients/{id}"]


@pytest.mark.parametrize(("selector", "category"), [
    ("nir", Category.NIR), (INS, Category.NIR),
    ("identifier[?system=urn:oid:1.2.250.1.213.1.4.8].system", Category.TECHNICAL),
    ("identifier[?system=https://h.example/ipp].value", Category.RECORD_ID),
    ("name[*].family", Category.NAME), ("last_name", Category.NAME),
    ("birthDate", Category.BIRTH_DATE), ("address.postcode", Category.POSTCODE),
    ("address[*].city", Category.ADDRESS), ("telecom[*].value", Category.CONTACT),
    ("notes", Category.FREE_TEXT), ("valueQuantity.value", Category.CLINICAL),
    ("favourite_colour", Category.OTHER),
])
def test_fields_are_categorized_by_name(selector: str, category: Category) -> None:
    assert categorize(selector) is category


@pytest.mark.parametrize(("purpose", "had", "basis", "expected"), [
    ("billing", True, "reimbursement", "keep"),
    ("billing", False, "reimbursement", "drop"),  # never had it: never gets it
    ("billing", True, None, "drop"),  # no décret-cadre purpose named
    ("appointments", True, "reimbursement", "drop"),  # a purpose the décret does not list
    (None, True, "care", "drop"),
])
def test_the_nir_is_kept_only_when_had_justified_and_allowed(purpose: str | None, had: bool,
                                                             basis: str | None,
                                                             expected: str) -> None:
    entitlement = Entitlement(PURPOSES[purpose] if purpose else None, had, basis)
    assert action_for("nir", entitlement) == expected
    assert action_for(INS, entitlement) == expected


def test_least_forms_by_purpose() -> None:
    research = Entitlement(PURPOSES["research"], False, None)
    assert action_for("id", research) == "pseudonymize"
    assert action_for("birth_date", research) == {"generalize": "year"}
    assert action_for("address.postcode", research) == {"generalize": "department"}
    assert action_for("last_name", research) == "drop"
    assert action_for("sex", research) == "keep"
    front = Entitlement(PURPOSES["appointments"], False, None)
    assert action_for("last_name", front) == "keep" and action_for("id", front) == "keep"
    assert action_for("resourceType", front) == "keep"


@pytest.mark.parametrize(("peak", "floor", "limit"), [
    (0, 10, 10), (7, 10, 11), (100, 10, 150), (1234, 10, 1900), (99, 100, 150)])
def test_limits_are_peaks_with_a_margin(peak: int, floor: int, limit: int) -> None:
    assert with_margin(peak, floor) == limit


def test_generated_tests_cover_served_refused_and_least_forms() -> None:
    evidence = Evidence("lab", client_lines=3, first="a", last="b")
    evidence.routes["unmatched"] = RouteUse({"GET"}, 3, 3)
    evidence.shapes[("GET", "/fhir/Patient")] = ShapeUse(
        "GET", "/fhir/Patient", "unmatched", 3, {"_count"}, {"_count": 20},
        "$.entry[*].resource", "json",
        {INS, "identifier[?system=urn:oid:1.2.250.1.213.1.4.8].system", "name[*].family",
         "birthDate", "telecom[*].value", "id"})
    policy = suggest(evidence, None, "research").policy
    (route,) = policy["routes"]
    assert route["query"] == {"allowed": ["_count"], "max": {"_count": 20}}
    tests = policy_tests(policy)
    names = [case["name"] for case in tests["cases"]]
    assert names == [
        "fhir-Patient: what the client used is served, in its least form",
        "fhir-Patient: a method the client never used is refused",
        "fhir-Patient: a query parameter the client never sent is refused",
        "fhir-Patient: a page larger than the client asked for is refused",
        "a path the client never used is refused"]
    served = tests["cases"][0]
    record = served["upstream"]["json"]["entry"][0]["resource"]
    assert record["identifier"] == [{"system": "urn:oid:1.2.250.1.213.1.4.8",
                                     "value": "185057800608491"}]
    assert "185057800608491" in served["expect"]["not_contains"]
    assert '"1985"' in served["expect"]["contains"]
    assert '"psn-' in served["expect"]["contains"]
    assert tests["cases"][3]["request"]["path"] == "/fhir/Patient?_count=21"


def test_words_withheld_from_the_usage_log_are_not_allowed_and_said() -> None:
    """`{}` in a query name or a field (a possible name, usage.py): neither allowed nor kept."""
    evidence = Evidence("lab", client_lines=1, first="a", last="b")
    evidence.routes["unmatched"] = RouteUse({"GET"}, 2, 2)
    evidence.shapes[("GET", "/patients/by-name/{}")] = ShapeUse(
        "GET", "/patients/by-name/{}", "unmatched", 2, {"page_size", "{}"}, {"page_size": 5},
        "$", "json", {"id", "{}", "by_name.{}"})
    result = suggest(evidence, None, None)
    (route,) = result.policy["routes"]
    assert route["path"] == "/patients/by-name/{id}"
    assert route["query"] == {"allowed": ["page_size"], "max": {"page_size": 5}}
    assert list(route["response"]["fields"]) == ["id"]
    assert any("withheld as possible names" in note for note in result.notes)
