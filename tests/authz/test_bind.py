"""Object-level authorization (`bind`) end to end: another practice's records never leave.

A single record that fails its binding is a 404 whose body says nothing about
it; in a list only matching records are returned and the others are counted in
`vigie_records_withheld_total`. A missing claim or field never matches, and
values of different JSON kinds are not made equal by accident.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from authz.conftest import NO_GUARD
from support.authz import check_problem, metric
from support.harness import Harness, Keys

FIELDS = """\
      fields: {id: keep, last_name: keep, practice_id: keep}
      bind: {practice_id: practice_id}
"""
POLICY = f"""\
client: gp-frontdesk
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{{id}}
    response:
      records: "$"
{FIELDS}  - name: search-patients
    methods: [GET]
    path: /patients
    response:
      records: "$.items[*]"
{FIELDS}  - name: patients-array
    methods: [GET]
    path: /practice/patients
    response:
      records: "$[*]"
{FIELDS}  - name: fhir-search
    methods: [GET]
    path: /fhir/Patient
    response:
      records: "$.entry[*].resource"
      fields: {{id: keep, resourceType: keep, name: keep}}
      bind: {{managingOrganization.reference: organization}}
""" + NO_GUARD

SECRET_NAME = "Zzyzx-Confidential"


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, hospital_keys: Keys) -> Iterator[Harness]:
    with Harness(tmp_path_factory.mktemp("bind"), {"gp.yaml": POLICY},
                 keys=hospital_keys) as harness:
        yield harness


def patient(pid: int, practice: Any, name: str = "Martin") -> dict[str, Any]:
    record: dict[str, Any] = {"id": str(pid), "last_name": name, "first_name": "Jeanne",
                              "birth_date": "1985-05-17"}
    if practice is not ...:
        record["practice_id"] = practice
    return record


def withheld(h: Harness, route: str) -> float:
    return metric(h, "vigie_records_withheld_total", client="gp-frontdesk", route=route)


def get(h: Harness, path: str, upstream: Any, **claims: Any) -> tuple[Any, int]:
    """(response, records withheld) for `path` when the upstream answers `upstream`."""
    h.upstream.reply(json=upstream)
    route = {"/patients/42": "read-patient", "/patients": "search-patients",
             "/practice/patients": "patients-array", "/fhir/Patient": "fhir-search"}[path]
    before = withheld(h, route)
    forwarded = len(h.upstream.requests)
    token = h.token("gp-frontdesk", scope="", **claims)
    response = h.get(path, token)
    assert len(h.upstream.requests) == forwarded + 1  # bind is checked on the answer
    return response, int(withheld(h, route) - before)


def test_the_own_practices_record_is_returned_minimized(h: Harness) -> None:
    response, hidden = get(h, "/patients/42", patient(42, "P1"), practice_id="P1")
    assert response.status_code == 200
    assert response.json() == {"id": "42", "last_name": "Martin", "practice_id": "P1"}
    assert hidden == 0


def test_another_practices_record_is_a_404_that_reveals_nothing(h: Harness) -> None:
    record = patient(42, "P2", name=SECRET_NAME)
    response, hidden = get(h, "/patients/42", record, practice_id="P1")
    problem = check_problem(response, 404)
    assert problem["type"] == "https://vigie.dev/problems/not-found"
    assert SECRET_NAME not in response.text and "P2" not in response.text
    assert "1985" not in response.text
    assert hidden == 1


@pytest.mark.parametrize(("path", "wrap"), [
    ("/patients", lambda records: {"items": records, "total": len(records)}),
    ("/practice/patients", lambda records: records),
])
def test_a_mixed_list_returns_only_matching_records(h: Harness, path: str, wrap: Any) -> None:
    records = [patient(1, "P1"), patient(2, "P2", SECRET_NAME), patient(3, "P1"),
               patient(4, None, SECRET_NAME), patient(5, ..., SECRET_NAME),
               patient(6, "P3", SECRET_NAME), patient(7, "P1")]
    before_returned = metric(h, "vigie_records_returned_total", client="gp-frontdesk")
    response, hidden = get(h, path, wrap(records), practice_id="P1")
    assert response.status_code == 200
    body = response.json()
    items = body["items"] if path == "/patients" else body
    assert [item["id"] for item in items] == ["1", "3", "7"]
    assert SECRET_NAME not in response.text
    assert hidden == 4
    assert metric(h, "vigie_records_returned_total", client="gp-frontdesk") \
        == before_returned + 3
    audit = h.audit_lines()[-1]
    assert audit["patients"] == ["1", "3", "7"]
    assert audit["withheld"] == 4


def test_a_fhir_bundle_keeps_only_the_organizations_entries(h: Harness) -> None:
    def entry(pid: str, org: Any) -> dict[str, Any]:
        resource: dict[str, Any] = {"resourceType": "Patient", "id": pid,
                                    "name": [{"family": "Martin" if org == "Organization/1"
                                              else SECRET_NAME}]}
        if org is not None:
            resource["managingOrganization"] = {"reference": org}
        return {"fullUrl": f"urn:uuid:{pid}", "resource": resource}

    bundle = {"resourceType": "Bundle", "type": "searchset", "total": 4,
              "entry": [entry("a", "Organization/1"), entry("b", "Organization/2"),
                        entry("c", None), entry("d", "Organization/1")]}
    response, hidden = get(h, "/fhir/Patient", bundle, organization="Organization/1")
    assert response.status_code == 200
    ids = [e["resource"]["id"] for e in response.json()["entry"]]
    assert ids == ["a", "d"]
    assert SECRET_NAME not in response.text
    assert hidden == 2


@pytest.mark.parametrize(("claims", "field"), [
    ({}, "P1"),  # the token has no practice_id claim
    ({"practice_id": None}, "P1"),
    ({"practice_id": ""}, ""),  # empty means missing: never a match
    ({"practice_id": "P1"}, ...),  # the record has no practice_id
    ({"practice_id": "P1"}, None),
    ({"practice_id": "null"}, None),
    ({"practice_id": ["P1"]}, "P1"),  # several practices in one claim: no implicit "any of"
    ({"practice_id": ["P1", "P2"]}, ["P1", "P2"]),
    ({"practice_id": "P1"}, ["P1"]),
    ({"practice_id": {"id": "P1"}}, {"id": "P1"}),
    ({"practice_id": "P1"}, {"id": "P1"}),
    ({"practice_id": True}, True),
    ({"practice_id": True}, "true"),
    ({"practice_id": "true"}, True),  # a boolean is never an identifier
    ({"practice_id": "p1"}, "P1"),
    ({"practice_id": "P1 "}, "P1"),
    ({"practice_id": "P1"}, "\uff301"),  # fullwidth P
    ({"practice_id": 1.0}, 1),
    ({"practice_id": "01"}, 1),
])
def test_missing_or_mismatched_kinds_never_match(h: Harness, claims: dict[str, Any],
                                                 field: Any) -> None:
    response, hidden = get(h, "/patients/42", patient(42, field), **claims)
    check_problem(response, 404)
    assert hidden == 1
    lists, hidden = get(h, "/patients", {"items": [patient(42, field)]}, **claims)
    assert lists.status_code == 200 and lists.json()["items"] == []
    assert hidden == 1


@pytest.mark.parametrize(("claim", "field"), [("1", 1), (1, "1"), (7, 7), ("P1", "P1")])
def test_a_number_and_its_decimal_text_are_the_same_identifier(h: Harness, claim: Any,
                                                               field: Any) -> None:
    response, hidden = get(h, "/patients/42", patient(42, field), practice_id=claim)
    assert response.status_code == 200, response.text
    assert hidden == 0


def test_a_withheld_record_is_not_disclosed_in_the_audit(h: Harness) -> None:
    get(h, "/patients/42", patient(4242, "P2"), practice_id="P1")
    line = h.audit_lines()[-1]
    assert line["status"] == 404
    assert line["patients"] == []
    assert "4242" not in orjson.dumps(line).decode()


@pytest.mark.parametrize(("practice", "status"), [("P1", 200), ("P2", 404)])
def test_head_is_bound_like_get_the_upstreams_get_answer_decides(
        h: Harness, practice: str, status: int) -> None:
    # HEAD on a route with response rules is forwarded as GET and minimized as one: for
    # another practice's patient it answers 404 as GET does (no existence oracle).
    h.upstream.reply(json=patient(42, practice, name=SECRET_NAME))
    before = withheld(h, "read-patient")
    token = h.token("gp-frontdesk", scope="", practice_id="P1")
    get_response = h.get("/patients/42", token)
    h.upstream.reply(json=patient(42, practice, name=SECRET_NAME))
    head = h.request("HEAD", "/patients/42", token)
    assert head.status_code == get_response.status_code == status
    assert h.upstream.requests[-1].method == "GET"
    assert head.content == b""
    assert head.headers.get("content-length") == get_response.headers.get("content-length")
    assert withheld(h, "read-patient") - before == (2 if status == 404 else 0)
