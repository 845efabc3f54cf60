"""The demo as `vigie demo` runs it: real legacy data, demo tokens, the demo policies.

Each client sees its own view of the same patients, and no NIR reaches anyone who
is not entitled to it, whatever field or format it hides in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from stdnum.fr import nir as stdnum_nir

from support.legacy import DemoStack
from vigie.demo.patients import NIR_SYSTEM, patient

COUNT = 600
PATIENTS = [patient(i) for i in range(1, COUNT + 1)]
DIGIT_RUNS = re.compile(r"[0-9AB][0-9AB .-]{12,30}[0-9]")


def _first(predicate: object) -> dict[str, object]:
    return next(r for r in PATIENTS if predicate(r))  # type: ignore[operator]


def _nirs(text: str) -> list[str]:
    """Every valid NIR in text, written compact or grouped with spaces, dots or dashes."""
    found = []
    for run in DIGIT_RUNS.findall(text):
        compact = re.sub(r"[ .-]", "", run)
        found += [compact[i:i + 15] for i in range(len(compact) - 14)
                  if stdnum_nir.is_valid(compact[i:i + 15])]
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    state: Path = tmp_path_factory.mktemp("demo")
    with DemoStack(state, count=COUNT) as running:
        yield running


def test_front_desk_sees_identity_and_year_never_the_nir(stack: DemoStack) -> None:
    record = _first(lambda r: r["practice_id"] == "P1" and r["nir"] in _nirs(r["notes"]))
    token = stack.issuer.mint("gp-frontdesk", "dr-martin", ["patient.read"], practice_id="P1")
    response = stack.get(f"/patients/{record['id']}", token)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": record["id"], "last_name": record["last_name"],
        "first_name": record["first_name"], "sex": record["sex"],
        "birth_date": str(record["birth_date"])[:4],
        "telecom": [record["telecom"][0]],  # type: ignore[index]
        "practice_id": "P1",
    }
    assert _nirs(response.text) == []


def test_front_desk_cannot_read_another_practice(stack: DemoStack) -> None:
    record = _first(lambda r: r["practice_id"] == "P2")
    token = stack.issuer.mint("gp-frontdesk", "dr-martin", ["patient.read"], practice_id="P1")
    assert stack.get(f"/patients/{record['id']}", token).status_code == 404


def test_front_desk_search_is_bound_to_its_practice(stack: DemoStack) -> None:
    token = stack.issuer.mint("gp-frontdesk", "dr-martin", ["patient.search"], practice_id="P3")
    response = stack.get("/patients", token, params={"last_name": "m", "page_size": 50})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items and all(item["practice_id"] == "P3" for item in items)
    assert all(set(item) == {"id", "last_name", "first_name", "birth_date", "practice_id"}
               for item in items)
    assert _nirs(response.text) == []
    too_big = stack.get("/patients", token, params={"last_name": "m", "page_size": 1000})
    assert too_big.status_code == 400


def test_billing_gets_the_nir_identifier_and_nothing_to_call(stack: DemoStack) -> None:
    record = _first(lambda r: r["practice_id"] == "P1" and str(r["nir"])[5:7] in {"2A", "2B"})
    token = stack.issuer.mint("billing", "agent-1", ["patient.read"], practice_id="P1")
    response = stack.get(f"/fhir/Patient/{record['id']}", token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["identifier"] == [{"system": NIR_SYSTEM, "value": record["nir"]}]
    assert body["name"] == [{"family": record["last_name"], "given": [record["first_name"]]}]
    assert not {"telecom", "address", "extension"} & set(body)
    assert stack.get("/patients/1", token).status_code == 403


def test_research_export_is_pseudonymized_and_nir_free(stack: DemoStack) -> None:
    token = stack.issuer.mint("research", "analyst-7", ["export.read"])
    response = stack.get("/export.ndjson", token)
    assert response.status_code == 200, response.text[:200]
    lines = [orjson.loads(line) for line in response.content.splitlines() if line]
    assert len(lines) == COUNT
    assert all(line["id"].startswith("psn-") for line in lines)
    assert len({line["id"] for line in lines}) == COUNT
    assert [line["birth_date"] for line in lines] == [str(r["birth_date"])[:4] for r in PATIENTS]
    corsica = [(line["address"]["postcode"], str(r["nir"])[5:7])
               for line, r in zip(lines, PATIENTS, strict=True)
               if str(r["address"]["postcode"]).startswith("20")]  # type: ignore[index]
    assert corsica and all(department in {"2A", "2B"} for department, _ in corsica)
    assert all(department == born for department, born in corsica if born != "20")
    assert _nirs(response.text) == []
    assert not any(str(r["last_name"]) in response.text for r in PATIENTS[:50])
    again = stack.get("/export.ndjson", token)
    assert [orjson.loads(x)["id"] for x in again.content.splitlines() if x] == \
        [line["id"] for line in lines]


def test_tokens_from_the_token_endpoint_work_through_the_proxy(stack: DemoStack) -> None:
    import httpx

    minted = httpx.post(f"{stack.issuer.issuer_url}/token",
                        data={"client_id": "research", "sub": "analyst-8",
                              "scope": "patient.search"}).json()["access_token"]
    response = stack.get("/patients", minted, params={"last_name": "Ma", "page_size": 3})
    assert response.status_code == 200, response.text
    assert all(item["id"].startswith("psn-") for item in response.json()["items"])


def test_touching_a_decoy_quarantines_the_principal(stack: DemoStack) -> None:
    token = stack.issuer.mint("gp-frontdesk", "dr-curious", ["patient.read"], practice_id="P1")
    assert stack.get("/patients/1", token).status_code in (200, 404)
    stack.get("/patients/990001", token)
    after = stack.get("/patients/1", token)
    assert after.status_code == 429
    assert "retry-after" in after.headers
    other = stack.issuer.mint("gp-frontdesk", "dr-martin", ["patient.read"], practice_id="P1")
    assert stack.get("/patients/1", other).status_code in (200, 404)
