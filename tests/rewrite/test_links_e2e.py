"""Through a running vigie: upstream links in headers and bodies come back pointing at it."""

from __future__ import annotations

import gzip

import orjson
import pytest

from support.harness import Harness
from vigie.errors import InspectionError
from vigie.rewrite.response import UNREWRITABLE

PUBLIC = "https://vigie.example/legacy"


def upstream_url(h: Harness) -> str:
    return h.settings.upstream


def token(h: Harness, **claims: str) -> str:
    return h.token("app", scope="patient.read patient/*.read", **claims)


def test_a_redirect_without_body_or_type_passes_with_its_location_rewritten(
        public: Harness) -> None:
    up = upstream_url(public)
    public.upstream.reply(status=302, body=b"", content_type="",
                          headers={"Location": f"{up}/patients/43?x=1"})
    r = public.get("/patients/42", token(public), follow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers["location"] == f"{PUBLIC}/patients/43?x=1"
    assert r.content == b""


@pytest.mark.parametrize("status", [201, 200, 303])
def test_empty_bodies_of_any_status_pass(public: Harness, status: int) -> None:
    public.upstream.reply(status=status, body=b"", content_type="application/json",
                          headers={"Content-Location": f"{upstream_url(public)}/patients/42"})
    r = public.request("POST", "/patients/42", token(public), follow_redirects=False)
    assert r.status_code == status and r.content == b""
    assert r.headers["content-location"] == f"{PUBLIC}/patients/42"


def test_link_headers_and_json_bodies_are_rewritten(public: Harness) -> None:
    up = upstream_url(public)
    public.upstream.reply(json={"id": "42", "name": f"see {up}/patients/42",
                                "link": {"self": f"{up}/patients/42",
                                         "escaped": f"{up}/x".replace("/", "\\/")},
                                "photo": f"{up.replace('http://', 'HTTP://')}/files/42.png"},
                          headers={"Link": f'<{up}/patients/43>; rel="next", '
                                           f'<{up}/patients/41>; rel="prev"'})
    r = public.get("/patients/42", token(public))
    assert r.status_code == 200, r.text
    assert r.headers["link"] == (f'<{PUBLIC}/patients/43>; rel="next", '
                                 f'<{PUBLIC}/patients/41>; rel="prev"')
    assert r.json() == {"id": "42", "name": f"see {PUBLIC}/patients/42",
                        "link": {"self": f"{PUBLIC}/patients/42",
                                 "escaped": f"{PUBLIC}/x".replace("/", "\\/")},
                        "photo": f"{PUBLIC}/files/42.png"}
    assert up.removeprefix("http://").encode() not in r.content


def test_the_upstream_is_told_the_public_address_when_configured(public: Harness) -> None:
    public.upstream.reply(json={"id": "1"})
    public.get("/patients/1", token(public),
               headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"})
    seen = public.upstream.requests[-1].headers
    assert seen["x-forwarded-host"] == "vigie.example"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-prefix"] == "/legacy"


def test_without_public_url_links_follow_the_host_the_client_used(derived: Harness) -> None:
    up = upstream_url(derived)
    derived.upstream.reply(json={"id": "1", "link": {"self": f"{up}/patients/1"}})
    r = derived.get("/patients/1", token(derived))
    assert r.json()["link"]["self"] == f"{derived.base_url}/patients/1"
    assert "x-forwarded-host" not in derived.upstream.requests[-1].headers  # not asked for


def test_a_trusted_front_proxy_names_the_public_address(derived: Harness) -> None:
    up = upstream_url(derived)
    derived.upstream.reply(json={"id": "1", "link": {"self": f"{up}/patients/1"}})
    r = derived.get("/patients/1", token(derived),
                    headers={"X-Forwarded-Host": "care.example:8443",
                             "X-Forwarded-Proto": "https"})
    assert r.json()["link"]["self"] == "https://care.example:8443/patients/1"
    bad = derived.get("/patients/1", token(derived),
                      headers={"X-Forwarded-Host": 'evil"/><script>', "Host": "bad host"})
    assert bad.json()["link"]["self"].startswith("http://127.0.0.1:")


def test_paged_totals_never_count_what_bind_withheld(public: Harness) -> None:
    up = upstream_url(public)
    public.upstream.reply(json={"total": 52, "total_pages": 18, "page": 1,
                                "next": f"{up}/patients?page=2",
                                "items": [{"id": "1", "practice_id": "P1"},
                                          {"id": "2", "practice_id": "P2"},
                                          {"id": "3", "practice_id": "P2"}]})
    r = public.get("/patients", token(public, practice_id="P1"))
    assert r.json() == {"page": 1, "next": f"{PUBLIC}/patients?page=2",
                        "items": [{"id": "1", "practice_id": "P1"}]}


def test_fhir_bundle_links_full_urls_and_total(public: Harness) -> None:
    up = upstream_url(public)
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": 52,
              "link": [{"relation": "self", "url": f"{up}/fhir/Patient?_count=3"},
                       {"relation": "next", "url": f"{up}/fhir/Patient?_count=3&_page=2"},
                       {"relation": "last", "url": f"{up}/fhir/Patient?_count=3&_page=18"}],
              "entry": [{"fullUrl": f"{up}/fhir/Patient/{pid}",
                         "resource": {"resourceType": "Patient", "id": str(pid),
                                      "managingOrganization": {
                                          "reference": f"{up}/fhir/Organization/{practice}",
                                          "identifier": {"value": practice}}},
                         "search": {"mode": "match"}}
                        for pid, practice in ((1, "P1"), (2, "P2"), (3, "P2"))]}
    public.upstream.reply(json=bundle, content_type="application/fhir+json")
    r = public.get("/fhir/Patient?_count=3", token(public, practice_id="P1"))
    out = r.json()
    assert "total" not in out
    assert out["link"] == [{"relation": "self", "url": f"{PUBLIC}/fhir/Patient?_count=3"},
                           {"relation": "next", "url": f"{PUBLIC}/fhir/Patient?_count=3&_page=2"}]
    assert [e["fullUrl"] for e in out["entry"]] == [f"{PUBLIC}/fhir/Patient/1"]


def test_text_and_ndjson_bodies_are_rewritten(public: Harness) -> None:
    up = upstream_url(public)
    public.upstream.reply(body=f"<a href='{up}/files/b'>next</a>".encode(),
                          content_type="text/html; charset=utf-8")
    r = public.get("/files/a.html", token(public))
    assert r.text == f"<a href='{PUBLIC}/files/b'>next</a>"
    lines = b"".join(orjson.dumps({"n": i, "u": f"{up}/files/{i}"}) + b"\n"
                     for i in range(2000))
    public.upstream.reply(body=lines, content_type="application/x-ndjson")
    r = public.get("/files/export.ndjson", token(public))
    assert r.status_code == 200
    assert up.encode() not in r.content
    assert r.content.count(f"{PUBLIC}/files/".encode()) == 2000


def test_a_compressed_body_is_decoded_to_be_rewritten(public: Harness) -> None:
    up = upstream_url(public)
    public.upstream.reply(body=gzip.compress(f"see {up}/files/x".encode()),
                          content_type="text/plain", headers={"Content-Encoding": "gzip"})
    r = public.get("/files/x.txt", token(public), headers={"Accept-Encoding": "identity"})
    assert r.content == f"see {PUBLIC}/files/x".encode()
    assert "content-encoding" not in r.headers


def test_binary_data_naming_the_upstream_is_refused(public: Harness) -> None:
    up = upstream_url(public)
    public.upstream.reply(body=b"%PDF-1.7\n" + f"/URI ({up}/files/y)".encode() + b"\x00" * 64,
                          content_type="application/pdf")
    r = public.get("/files/letter.pdf", token(public))
    assert r.status_code == 502 and r.json()["detail"] == UNREWRITABLE
    public.upstream.reply(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, content_type="image/png")
    assert public.get("/files/ok.png", token(public)).status_code == 200


def test_a_url_outside_the_upstream_base_is_refused() -> None:
    from vigie.rewrite.urls import Links, UpstreamUrls
    links = Links(UpstreamUrls("http://10.0.0.5/api"), PUBLIC)
    with pytest.raises(InspectionError):
        links.in_bytes(b'{"a": "http://10.0.0.5/admin"}')


def test_a_route_requiring_a_smart_scope_takes_any_scope_that_covers_it(
        public: Harness) -> None:
    public.upstream.reply(json={"resourceType": "Bundle", "type": "searchset", "entry": []},
                          content_type="application/fhir+json")
    for granted, status in (("patient/Patient.rs", 200), ("patient/*.read", 200),
                            ("patient/Patient.cruds", 200), ("user/Patient.read", 403),
                            ("patient/Patient.r", 403), ("patient/Observation.rs", 403)):
        bearer = public.token("app", scope=f"openid {granted}", practice_id="P1")
        assert public.get("/fhir/Patient", bearer).status_code == status, granted
