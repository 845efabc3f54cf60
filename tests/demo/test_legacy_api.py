"""The synthetic legacy API over real loopback HTTP: records, paging, FHIR, bulk export."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from stdnum.fr import nir as stdnum_nir

from support.legacy import LegacyServer, run_app_in_thread
from vigie.demo.legacy_api import MAX_PAGE_SIZE, create_legacy_app
from vigie.demo.patients import DECOY_IDS, NIR_SYSTEM, patient, to_fhir

COUNT = 1500


@pytest.fixture(scope="module")
def legacy() -> Iterator[httpx.Client]:
    with LegacyServer(count=COUNT) as server, httpx.Client(base_url=server.base_url) as client:
        yield client


def test_health(legacy: httpx.Client) -> None:
    response = legacy.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "patients": COUNT}


def test_read_patient_returns_everything_nir_included(legacy: httpx.Client) -> None:
    response = legacy.get("/patients/42")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == patient(42)
    assert stdnum_nir.is_valid(response.json()["nir"])


@pytest.mark.parametrize("patient_id", ["0", str(COUNT + 1), "042", "+42", "4x", "-1", "%C2%B2",
                                        "99999999999999999999"])
def test_unknown_or_non_canonical_ids_are_404_json(legacy: httpx.Client, patient_id: str) -> None:
    response = legacy.get(f"/patients/{patient_id}")
    assert response.status_code == 404
    assert response.json() == {"error": "patient not found"}


def test_decoys_are_served_like_any_patient(legacy: httpx.Client) -> None:
    for decoy_id in DECOY_IDS:
        response = legacy.get(f"/patients/{decoy_id}")
        assert response.status_code == 200
        assert response.json()["id"] == str(decoy_id)


def test_search_pages_through_every_match(legacy: httpx.Client) -> None:
    first = legacy.get("/patients", params={"last_name": "ma", "page_size": 7}).json()
    assert set(first) == {"items", "page", "total", "links"}
    total = first["total"]
    assert total > 14 and first["page"] == 1 and len(first["items"]) == 7
    seen: list[str] = []
    page = 1
    while True:
        body = legacy.get("/patients", params={"last_name": "MA", "page": page,
                                               "page_size": 7}).json()
        assert body["total"] == total
        if not body["items"]:
            break
        seen.extend(item["id"] for item in body["items"])
        page += 1
    assert len(seen) == len(set(seen)) == total
    assert [int(i) for i in seen] == sorted(int(i) for i in seen)
    assert all(patient(int(i))["last_name"].casefold().startswith("ma") for i in seen)


def test_search_is_accent_and_case_insensitive(legacy: httpx.Client) -> None:
    accented = legacy.get("/patients", params={"last_name": "Lefèvre", "page_size": 1000}).json()
    plain = legacy.get("/patients", params={"last_name": "LEFEVRE", "page_size": 1000}).json()
    assert accented["items"] == plain["items"] and accented["total"] == plain["total"] > 0
    assert {item["last_name"] for item in plain["items"]} == {"Lefèvre"}


def test_search_filters_on_birth_date_prefix(legacy: httpx.Client) -> None:
    body = legacy.get("/patients", params={"birth_date": "1985", "page_size": 1000}).json()
    assert body["total"] > 0
    assert all(item["birth_date"].startswith("1985") for item in body["items"])


def test_search_defaults_and_caps_page_size(legacy: httpx.Client) -> None:
    assert len(legacy.get("/patients").json()["items"]) == 20
    body = legacy.get("/patients", params={"page_size": 100000}).json()
    assert len(body["items"]) == MAX_PAGE_SIZE
    assert body["total"] == COUNT + len(DECOY_IDS)
    last = legacy.get("/patients", params={"page_size": 1000, "page": 2}).json()
    assert [item["id"] for item in last["items"]][-2:] == [str(d) for d in DECOY_IDS]


@pytest.mark.parametrize("params", [{"page": "0"}, {"page": "x"}, {"page_size": "0"},
                                    {"page_size": "-5"}, {"page": "1.5"}])
def test_search_rejects_malformed_paging(legacy: httpx.Client, params: dict[str, str]) -> None:
    response = legacy.get("/patients", params=params)
    assert response.status_code == 400
    assert "error" in response.json()


def test_fhir_patient(legacy: httpx.Client) -> None:
    response = legacy.get("/fhir/Patient/42")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    assert response.json() == to_fhir(patient(42))
    missing = legacy.get("/fhir/Patient/999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/fhir+json"
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_fhir_search_is_a_searchset_bundle_with_next_links(legacy: httpx.Client) -> None:
    response = legacy.get("/fhir/Patient", params={"family": "mar", "_count": 5})
    assert response.headers["content-type"] == "application/fhir+json"
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] > 5 and len(bundle["entry"]) == 5
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert resource["resourceType"] == "Patient"
        assert resource["name"][0]["family"].casefold().startswith("mar")
        assert entry["fullUrl"].endswith(f"/fhir/Patient/{resource['id']}")
        assert resource["identifier"][0]["system"] == NIR_SYSTEM
    next_url = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    second = legacy.get(next_url).json()
    first_ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert first_ids.isdisjoint(e["resource"]["id"] for e in second["entry"])
    assert legacy.get("/fhir/Patient", params={"_count": "zero"}).status_code == 400


def test_fhir_search_last_page_has_no_next_link(legacy: httpx.Client) -> None:
    bundle = legacy.get("/fhir/Patient", params={"family": "Lefèvre", "_count": 1000}).json()
    assert bundle["total"] == len(bundle["entry"]) > 0
    assert [link["relation"] for link in bundle["link"]] == ["self"]


def test_export_streams_every_regular_patient_as_ndjson(legacy: httpx.Client) -> None:
    with legacy.stream("GET", "/export.ndjson") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.headers
        lines = [orjson.loads(line) for line in response.iter_lines() if line]
    assert [record["id"] for record in lines] == [str(i) for i in range(1, COUNT + 1)]
    assert lines[99] == patient(100)


def test_other_methods_are_refused(legacy: httpx.Client) -> None:
    assert legacy.post("/patients/42").status_code == 405
    assert legacy.delete("/patients/42").status_code == 405


def test_a_different_seed_serves_different_patients() -> None:
    with run_app_in_thread(create_legacy_app(count=10, seed=7)) as base_url:
        body = httpx.get(f"{base_url}/patients/3").json()
    assert body == patient(3, seed=7) != patient(3)


def test_run_app_in_thread_stops_the_server() -> None:
    with run_app_in_thread(create_legacy_app(count=5)) as base_url:
        assert httpx.get(f"{base_url}/health").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/health", timeout=2)


def test_searches_link_the_next_page_absolutely_like_real_servers(legacy: httpx.Client) -> None:
    response = legacy.get("/patients", params={"last_name": "ma", "page_size": 3})
    base = str(legacy.base_url).rstrip("/")
    links = response.json()["links"]
    assert links["self"].startswith(f"{base}/patients?")
    assert links["next"].startswith(f"{base}/patients?") and "page=2" in links["next"]
    assert response.headers["link"] == f'<{links["next"]}>; rel="next"'
    last = legacy.get("/patients", params={"last_name": "ma", "page_size": 1000}).json()
    assert "next" not in last["links"]
    bundle = legacy.get("/fhir/Patient", params={"family": "ma", "_count": 3}).json()
    assert all(e["fullUrl"].startswith(f"{base}/fhir/Patient/") for e in bundle["entry"])
    assert [link["relation"] for link in bundle["link"]] == ["self", "next"]
