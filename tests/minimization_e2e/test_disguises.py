"""Issue 12 through the proxy: every disguise the red team used, over real HTTP.

Each disguised NIR (tests/data/nir_vectors.json `disguised`) in a kept free-text
field, in the envelope, in a Location header; text bodies without charset in
UTF-8 and UTF-16 without BOM; two Content-Encoding headers; a NIR split over
adjacent strings; a FHIR entry without `resource` carrying another patient. The
client's bytes are checked with the independent oracle of tests/support/disguises.py.
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response

from support.authz import metric
from support.disguises import DISGUISES, revealed
from support.harness import Harness
from support.minimize import disguised_forms, vectors

FORMS = disguised_forms()
NIRS = sorted({entry["nir"] for entry in vectors()["valid"]})
NBSP_NIR = "1\u00a085\u00a005\u00a078\u00a0006\u00a0084\u00a091"
NIR = "185057800608491"


def raw_reply(h: Harness, body: bytes, headers: list[tuple[str, str]]) -> None:
    """The upstream answers exactly these headers (repeated names, no charset added)."""
    async def handler(request: Request) -> Response:
        response = Response(body)
        response.raw_headers.extend((k.encode("latin-1"), v.encode("latin-1"))
                                    for k, v in headers)
        return response
    h.upstream.handler = handler


@pytest.mark.parametrize(("vector", "number", "name", "form"), FORMS)
def test_every_disguise_in_a_kept_field_the_envelope_and_a_header(
        h: Harness, token: str, vector: str, number: str, name: str, form: str) -> None:
    location = form if form.isascii() else "x"
    h.upstream.reply(json={"total": 1, "meta": {"echo": f"q={form}"}, "items": [
        {"id": "p1", "last_name": "Martin", "notes": f"NIR: {form}.",
         "measures": {"parts": [number[:6], number[6:]]}}]},
        headers={"Location": f"/search?nir={location}"})
    response = h.get("/search", token)
    assert response.status_code == 200
    assert not revealed(response.text, number)
    assert not revealed(response.headers.get("location", ""), number)
    assert response.json()["items"][0]["notes"].startswith("NIR: ")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("content_type", ["text/plain", "text/csv", "text/html"])
def test_text_without_charset_is_read_as_what_it_is(h: Harness, token: str, encoding: str,
                                                    content_type: str) -> None:
    text = f"nom;nir\nDurand;{NBSP_NIR}\n"
    raw_reply(h, text.encode(encoding), [("content-type", content_type)])
    response = h.get("/raw/export", token)
    assert response.status_code == 200
    assert not revealed(response.content.decode(encoding), NIR)


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain",
                                          "application/json"])
def test_two_content_encoding_headers_are_both_undone(h: Harness, token: str,
                                                      content_type: str) -> None:
    body = gzip.compress(f'{{"note": "NIR {NIR}"}}'.encode())
    raw_reply(h, body, [("content-type", content_type), ("content-encoding", "identity"),
                        ("content-encoding", "gzip")])
    response = h.get("/raw/export", token)
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert NIR not in response.text and "*" * 15 in response.text


def test_an_unknown_coding_among_several_is_a_502(h: Harness, token: str) -> None:
    raw_reply(h, b"x", [("content-type", "text/plain"), ("content-encoding", "gzip"),
                        ("content-encoding", "compress")])
    assert h.get("/raw/export", token).status_code == 502


def test_a_fhir_entry_without_resource_never_carries_a_patient(h: Harness,
                                                                token: str) -> None:
    other = {"name": [{"family": "Zzyzx"}], "birthDate": "1970-01-01",
             "telecom": [{"value": "0600000000"}]}
    h.upstream.reply(json={"resourceType": "Bundle", "type": "searchset", "total": 2,
                           "entry": [{"fullUrl": "urn:uuid:1", "resource": {
                               "resourceType": "Patient", "id": "1"}},
                                     {"fullUrl": "urn:uuid:2", "search": {"mode": "match"},
                                      "patient": other}],
                           "signature": {"data": "Zzyzx"}})
    before = metric(h, "vigie_records_withheld_total", client="mini", route="bundle")
    response = h.get("/fhir/Patient", token)
    assert response.status_code == 200
    assert "Zzyzx" not in response.text and "0600000000" not in response.text
    assert [e["fullUrl"] for e in response.json()["entry"]] == ["urn:uuid:1"]
    assert metric(h, "vigie_records_withheld_total", client="mini", route="bundle") \
        - before == 1


PLACES = ["notes", "envelope", "split", "text", "octet"]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(NIRS), st.sampled_from(sorted(DISGUISES)), st.sampled_from(PLACES),
       st.sampled_from(["", "x", "NIR ", "/p?q="]))
def test_no_disguised_nir_reaches_the_client(h: Harness, token: str, number: str, name: str,
                                             place: str, prefix: str) -> None:
    form = prefix + DISGUISES[name](number)
    path = "/search"
    document: Any = {"items": [{"id": "p1", "notes": "-"}]}
    if place == "notes":
        document["items"][0]["notes"] = form + " fin"
    elif place == "envelope":
        document["meta"] = {"q": form}
    elif place == "split":
        document["items"][0]["measures"] = [form[: len(form) // 2], form[len(form) // 2:]]
    if place in ("text", "octet"):
        content_type = "text/plain" if place == "text" else "application/octet-stream"
        raw_reply(h, f"ligne\n{form}\n".encode(), [("content-type", content_type)])
        path = "/raw/export"
    else:
        h.upstream.reply(json=document)
    response = h.get(path, token)
    assert response.status_code in (200, 502)
    assert not revealed(response.content.decode("utf-8", "replace"), number)
