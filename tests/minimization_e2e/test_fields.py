"""Field actions and record locations of contract section 3, through the proxy over HTTP."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from support.harness import Harness

NIR = "185057800608491"
INS = "urn:oid:1.2.250.1.213.1.4.8"


def patient(pid: str = "p1", **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": pid, "last_name": "Martin", "first_name": "Paul", "nir": NIR,
        "phone": "0612345678", "secret": "abcdef", "ins": "INS-0001",
        "birth_date": "1985-05-17", "admitted": "2023-11-02T10:00:00Z",
        "address": {"line": "3 rue de la Paix", "postcode": "75012", "city": "Paris"},
        "telecom": [{"system": "phone", "value": "0612345678"},
                    {"system": "email", "value": "p@example.org"}],
        "identifier": [{"system": INS, "value": "ins-abc"},
                       {"system": "urn:local", "value": "L-1"}],
        "practice_id": "P1",
    }
    record.update(extra)
    return record


EXPECTED_KEYS = {"id", "last_name", "nir", "phone", "secret", "ins", "birth_date", "admitted",
                 "address", "telecom", "identifier"}


def fetch(h: Harness, token: str, path: str, document: Any) -> Any:
    h.upstream.reply(json=document)
    response = h.get(path, token)
    assert response.status_code == 200, response.text
    return response.json()


def check_patient(out: dict[str, Any]) -> None:
    assert set(out) == EXPECTED_KEYS  # first_name, practice_id: unlisted, dropped
    assert out["id"] == "p1"
    assert out["last_name"] == "Martin"
    assert out["nir"] == "*************91"
    assert out["phone"] == "******5678"
    assert out["secret"] == "******"
    assert out["ins"].startswith("psn-") and "INS-0001" not in out["ins"]
    assert out["birth_date"] == "1985"
    assert out["admitted"] == "2023-11"
    assert out["address"] == {"postcode": "75", "city": "Paris"}  # line: unlisted
    assert out["telecom"] == [{"system": "phone"}, {"system": "email"}]
    # other systems: nothing of them is named, so the element itself is dropped
    assert len(out["identifier"]) == 1
    assert out["identifier"][0]["system"] == INS
    assert out["identifier"][0]["value"].startswith("psn-")


def test_single_record_every_action(h: Harness, token: str) -> None:
    check_patient(fetch(h, token, "/patients/p1", patient()))


def test_top_level_array(h: Harness, token: str) -> None:
    out = fetch(h, token, "/list", [patient(), patient()])
    assert len(out) == 2
    for record in out:
        check_patient(record)


def test_items_location_envelope_kept_but_scanned(h: Harness, token: str) -> None:
    document = {"total": 2, "next": f"/search?after={NIR}", "items": [patient(), patient()],
                "meta": {"query_echo": {"nir": "1 85 05 78 006 084 91"}, NIR: "as key"}}
    out = fetch(h, token, "/search", document)
    assert out["total"] == 2
    assert out["next"] == "/search?after=" + "*" * 15
    assert out["meta"]["query_echo"]["nir"] == "*" * len("1 85 05 78 006 084 91")
    assert "*" * 15 in out["meta"] and NIR not in orjson.dumps(out).decode()
    for record in out["items"]:
        check_patient(record)


def test_fhir_bundle_entry_resource(h: Harness, token: str) -> None:
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": 2,
              "link": [{"relation": "self", "url": f"/fhir/Patient?identifier={NIR}"}],
              "entry": [{"fullUrl": "urn:uuid:1", "search": {"mode": "match"},
                         "resource": {"resourceType": "Patient", "id": str(i),
                                      "birthDate": "1990-02-03",
                                      "name": [{"family": "Durand", "given": ["Anne"]}],
                                      "identifier": [{"system": INS, "value": NIR}]}}
                        for i in range(2)]}
    out = fetch(h, token, "/fhir/Patient", bundle)
    assert out["resourceType"] == "Bundle" and out["total"] == 2
    assert out["link"][0]["url"].endswith("*" * 15)
    for i, entry in enumerate(out["entry"]):
        assert entry["fullUrl"] == "urn:uuid:1" and entry["search"] == {"mode": "match"}
        assert entry["resource"] == {"resourceType": "Patient", "id": str(i),
                                     "birthDate": "1990",
                                     "identifier": [{"value": "*************91"}]}


def test_ndjson_export_record_by_record(h: Harness, token: str) -> None:
    lines = b"\n".join(orjson.dumps(patient(f"p{i}")) for i in range(5)) + b"\n"
    h.upstream.reply(body=lines, content_type="application/x-ndjson")
    response = h.get("/export.ndjson", token)
    assert response.status_code == 200
    records = [orjson.loads(line) for line in response.content.splitlines() if line]
    assert [r["id"] for r in records] == [f"p{i}" for i in range(5)]
    for record in records:
        check_patient({**record, "id": "p1"})


def test_unlisted_keep_still_masks_nir(h: Harness, token: str) -> None:
    out = fetch(h, token, "/loose/1", {"nir": NIR, "other": {"deep": [NIR]}, "name": "X"})
    assert out == {"nir": "*************91", "other": {"deep": ["*" * 15]}, "name": "X"}


@pytest.mark.parametrize(("value", "expected"), [
    ("75012", "75"), ("20000", "2A"), ("20167", "2A"), ("20200", "2B"), ("20600", "2B"),
    ("97110", "971"), ("97400", "974"), ("97600", "976"), ("98800", "988"),
    ("01000", "01"), (6000, "06"), ("not a postcode", None), ("7501", None),
])
def test_generalize_department(h: Harness, token: str, value: Any, expected: str | None) -> None:
    out = fetch(h, token, "/patients/p1", {"id": "p1", "address": {"postcode": value}})
    assert out["address"]["postcode"] == expected


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("birth_date", "1985-05-17", "1985"), ("birth_date", "2001-12-31T23:59:59Z", "2001"),
    ("birth_date", "17/05/1985", None), ("admitted", "1985-05-17", "1985-05"),
    ("admitted", "1985", None), ("birth_date", None, None),
])
def test_generalize_dates(h: Harness, token: str, field: str, value: Any,
                          expected: str | None) -> None:
    out = fetch(h, token, "/patients/p1", {"id": "p1", field: value})
    assert out[field] == expected


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("nir", "1", "*"), ("nir", 1234567, "*****67"), ("phone", "123", "***"),
    ("secret", 42, "**"), ("nir", None, None),
])
def test_mask_edges(h: Harness, token: str, field: str, value: Any, expected: Any) -> None:
    assert fetch(h, token, "/patients/p1", {"id": "p1", field: value})[field] == expected


def pseudonym(h: Harness, client: str, value: str) -> str:
    out = fetch(h, h.token(client, scope="r"), "/patients/p1", {"id": "p1", "ins": value})
    token: str = out["ins"]
    assert token.startswith("psn-")
    return token


def test_pseudonymize_stable_per_client_distinct_across_clients(h: Harness) -> None:
    first = pseudonym(h, "mini", "INS-0001")
    assert pseudonym(h, "mini", "INS-0001") == first
    assert pseudonym(h, "mini", "INS-0002") != first
    assert pseudonym(h, "other", "INS-0001") != first


def test_pseudonyms_survive_a_restart_with_the_same_key(h: Harness) -> None:
    before = pseudonym(h, "mini", "INS-restart")
    key = (h.tmp / "pseudonym.key").read_bytes()
    h.stop()
    h._start()  # same settings, same key file, a new process state
    assert (h.tmp / "pseudonym.key").read_bytes() == key
    assert pseudonym(h, "mini", "INS-restart") == before


def test_audit_names_disclosed_fields_and_patients(h: Harness, token: str) -> None:
    fetch(h, token, "/list", [patient("a1"), patient("a2")])
    line = h.audit_lines()[-1]
    assert line["route"] == "list" and line["patients"] == ["a1", "a2"]
    assert "last_name" in line["fields"] and "nir" not in line["fields"]
    assert line["masked"] > 0
    assert NIR not in orjson.dumps(line).decode()
