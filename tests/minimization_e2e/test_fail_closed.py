"""Fail closed through the proxy: what cannot be inspected never reaches the client.

Every refusal is a 502 whose body holds nothing of the upstream body; the worker
survives every one of them (the next request is served).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import brotli
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from minimization_e2e.conftest import MAX_BYTES
from support.harness import Harness

NIR = "185057800608491"
SPACED = "1 85 05 78 006 084 91"
PATIENT = {"id": "p1", "last_name": "Martin", "nir": NIR, "notes": f"NIR {SPACED}",
           "first_name": "Paul"}
EXPECTED = {"id": "p1", "last_name": "Martin", "nir": "*************91",
            "notes": "NIR " + "*" * len(SPACED)}


def assert_refused(h: Harness, token: str, path: str, *secrets: str) -> None:
    response = h.get(path, token)
    assert response.status_code == 502, response.text
    assert response.headers["content-type"] == "application/problem+json"
    for secret in (NIR, SPACED, "Martin", *secrets):
        assert secret not in response.text
    # the worker is still serving
    h.upstream.reply(json=PATIENT)
    assert h.get("/patients/p1", token).json() == EXPECTED


@pytest.mark.parametrize("body", [
    b'{"id": "p1", "nir": "185057800608491"',  # truncated
    b'{"id": "p1", "nir": 185057800608491,}',  # trailing comma
    b"{'id': 'p1', 'last_name': 'Martin'}",  # Python, not JSON
    b'{"id": "p1"} {"last_name": "Martin"}',  # two documents
    b'\xff\xfe{"last_name": "Martin"}',  # not UTF-8
    b'{"id": NaN, "last_name": "Martin"}',
])
@pytest.mark.parametrize("path", ["/patients/p1", "/raw/doc", "/list"])
def test_unparseable_json(h: Harness, token: str, body: bytes, path: str) -> None:
    h.upstream.reply(body=body, content_type="application/json")
    assert_refused(h, token, path)


@pytest.mark.parametrize("encoding", ["compress", "zstd", "gzip, compress", "x-custom",
                                      "exi"])
@pytest.mark.parametrize("path", ["/patients/p1", "/raw/doc"])
def test_unsupported_content_encoding(h: Harness, token: str, encoding: str, path: str) -> None:
    h.upstream.reply(body=orjson.dumps(PATIENT), headers={"content-encoding": encoding})
    assert_refused(h, token, path)


@pytest.mark.parametrize("body", [
    b"this is not gzip at all " + NIR.encode(),
    gzip.compress(orjson.dumps(PATIENT))[:-12],  # truncated
    gzip.compress(orjson.dumps(PATIENT)) + b"garbage " + NIR.encode(),
    b"\x1f\x8b\x08\x00" + b"\x00" * 40,
])
@pytest.mark.parametrize("path", ["/patients/p1", "/raw/doc", "/list", "/export.ndjson"])
def test_undecodable_gzip(h: Harness, token: str, body: bytes, path: str) -> None:
    content_type = "application/x-ndjson" if path.endswith("ndjson") else "application/json"
    h.upstream.reply(body=body, content_type=content_type, headers={"content-encoding": "gzip"})
    assert_refused(h, token, path)


def codec(name: str, data: bytes) -> bytes:
    if name == "gzip":
        return gzip.compress(data)
    if name == "deflate":
        return zlib.compress(data)
    if name == "raw-deflate":
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return compressor.compress(data) + compressor.flush()
    if name == "br":
        return brotli.compress(data)
    return gzip.compress(brotli.compress(data))  # "br, gzip": br applied first


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "br", "br, gzip"])
def test_compressed_bodies_are_decoded_and_minimized(h: Harness, token: str,
                                                     coding: str) -> None:
    header = "deflate" if coding == "raw-deflate" else coding
    h.upstream.reply(body=codec(coding, orjson.dumps(PATIENT)),
                     headers={"content-encoding": header})
    response = h.get("/patients/p1", token, headers={"accept-encoding": "gzip, br"})
    assert response.status_code == 200
    assert response.json() == EXPECTED
    h.upstream.reply(body=codec(coding, f"<p>{SPACED}</p>".encode()), content_type="text/html",
                     headers={"content-encoding": header})
    assert h.get("/raw/doc", token).text == "<p>" + "*" * len(SPACED) + "</p>"
    records = b"".join(orjson.dumps(PATIENT) + b"\n" for _ in range(3))
    h.upstream.reply(body=codec(coding, records), content_type="application/x-ndjson",
                     headers={"content-encoding": header})
    lines = h.get("/export.ndjson", token).content.splitlines()
    assert [orjson.loads(line) for line in lines] == [EXPECTED] * 3


def test_over_max_response_bytes_with_length(h: Harness, token: str) -> None:
    big = {"id": "p1", "last_name": "Martin", "padding": "x" * MAX_BYTES}
    h.upstream.reply(json=big)
    assert_refused(h, token, "/patients/p1")
    h.upstream.reply(body=b"Martin " + b"x" * MAX_BYTES, content_type="text/plain")
    assert_refused(h, token, "/raw/doc")


def test_over_max_response_bytes_chunked(h: Harness, token: str) -> None:
    async def handler(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"id": "p1", "last_name": "Martin", "padding": "'
            for _ in range(MAX_BYTES // 10_000 + 2):
                yield b"x" * 10_000
            yield b'"}'
        return StreamingResponse(chunks(), media_type="application/json")
    h.upstream.handler = handler
    assert_refused(h, token, "/patients/p1")


def test_decompression_bomb(h: Harness, token: str) -> None:
    bomb = gzip.compress(b'{"id": "p1", "pad": "' + b"0" * (MAX_BYTES * 20) + b'"}')
    assert len(bomb) < MAX_BYTES // 10
    h.upstream.reply(body=bomb, headers={"content-encoding": "gzip"})
    assert_refused(h, token, "/patients/p1")
    h.upstream.reply(body=bomb, content_type="text/plain", headers={"content-encoding": "gzip"})
    assert_refused(h, token, "/raw/doc")


def test_streamed_export_over_the_cap_is_cut(h: Harness, token: str) -> None:
    lines = b"".join(orjson.dumps({**PATIENT, "id": f"p{i}"}) + b"\n" for i in range(5000))
    assert len(lines) > MAX_BYTES
    h.upstream.reply(body=lines, content_type="application/x-ndjson")
    try:
        response = h.get("/export.ndjson", token)
    except Exception as exc:  # noqa: BLE001 - an aborted transfer is a correct refusal
        assert "RemoteProtocolError" in type(exc).__name__ or "Read" in type(exc).__name__
    else:  # a refusal before the first byte, or a body cut short: never the whole export
        assert response.status_code == 502 or response.content.count(b"\n") < 5000
        assert NIR.encode() not in response.content
    h.upstream.reply(json=PATIENT)
    assert h.get("/patients/p1", token).json() == EXPECTED


@pytest.mark.parametrize("content_type", [
    "application/octet-stream", "application/x-custom", "image/png", "application/pdf",
    "", "application/vnd.legacy.patient",
])
def test_unknown_content_type_on_a_masking_route(h: Harness, token: str,
                                                 content_type: str) -> None:
    async def handler(request: Request) -> Response:
        response = Response(orjson.dumps(PATIENT))
        if content_type:
            response.headers["content-type"] = content_type
        return response
    h.upstream.handler = handler
    assert_refused(h, token, "/patients/p1")


def test_lying_content_types(h: Harness, token: str) -> None:
    # JSON labelled as text: still a record, field rules apply.
    h.upstream.reply(body=orjson.dumps(PATIENT), content_type="text/plain")
    assert h.get("/patients/p1", token).json() == EXPECTED
    h.upstream.reply(body=orjson.dumps(PATIENT), content_type="text/html; charset=utf-8")
    assert h.get("/patients/p1", token).json() == EXPECTED
    # HTML labelled as JSON: cannot be inspected as what it claims to be.
    h.upstream.reply(body=f"<p>Martin {NIR}</p>".encode(), content_type="application/json")
    assert_refused(h, token, "/patients/p1")
    h.upstream.reply(body=f"<p>Martin {NIR}</p>".encode(), content_type="application/json")
    assert_refused(h, token, "/raw/doc")
    # NDJSON labelled as JSON, one JSON document labelled as NDJSON.
    h.upstream.reply(body=orjson.dumps(PATIENT) + b"\n" + orjson.dumps(PATIENT),
                     content_type="application/json")
    assert_refused(h, token, "/patients/p1")
    h.upstream.reply(body=orjson.dumps(PATIENT, option=orjson.OPT_INDENT_2),
                     content_type="application/x-ndjson")
    assert_refused(h, token, "/export.ndjson")
    # A charset that is not the body's.
    h.upstream.reply(body=orjson.dumps(PATIENT), content_type="application/json; charset=x-nope")
    assert_refused(h, token, "/patients/p1")


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png",
                                          "application/pdf", "application/zip"])
def test_text_labelled_binary_is_still_scanned(h: Harness, token: str,
                                               content_type: str) -> None:
    """A route without field rules: a 'binary' body that is really text gets the NIR rule."""
    h.upstream.reply(body=f"id;nir\n1;{NIR}\n2;{SPACED}\n".encode(), content_type=content_type)
    response = h.get("/raw/export", token)
    assert response.status_code in (200, 502)
    assert NIR not in response.text and SPACED not in response.text


def test_real_binary_passes_untouched_where_no_rules(h: Harness, token: str) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
    h.upstream.reply(body=png, content_type="image/png")
    response = h.get("/raw/scan.png", token)
    assert response.status_code == 200 and response.content == png


def test_duplicate_keys(h: Harness, token: str) -> None:
    body = (b'{"id": "p1", "nir": "' + NIR.encode() + b'", "nir": "' + NIR.encode() + b'", '
            b'"notes": "' + NIR.encode() + b' first", "notes": "second ' + SPACED.encode()
            + b'", "last_name": "Martin", "last_name": "' + NIR.encode() + b' x"}')
    h.upstream.reply(body=body)
    response = h.get("/patients/p1", token)
    assert response.status_code == 200
    assert NIR not in response.text and SPACED not in response.text
    assert response.text.count('"nir"') == 1 and response.text.count('"notes"') == 1
    h.upstream.reply(body=b'[' + body + b',' + body + b']')
    response = h.get("/list", token)
    assert NIR not in response.text and SPACED not in response.text


def nested(depth: int) -> bytes:
    return (b'{"id": "p1", "last_name": "Martin", "notes": ' + b'[' * depth + NIR.encode()
            + b']' * depth + b'}')


@pytest.mark.parametrize("depth", [250, 1500, 100_000])
@pytest.mark.parametrize("path", ["/patients/p1", "/loose/1", "/raw/doc", "/list",
                                  "/export.ndjson"])
def test_deep_nesting_refused_without_crashing(h: Harness, token: str, depth: int,
                                               path: str) -> None:
    body = nested(depth)
    if path == "/list":
        body = b"[" + body + b"]"
    content_type = "application/x-ndjson" if path.endswith("ndjson") else "application/json"
    h.upstream.reply(body=body, content_type=content_type)
    assert_refused(h, token, path)


def test_text_labelled_binary_scanned_across_chunks_and_encodings(h: Harness,
                                                                  token: str) -> None:
    rows = "".join(f"{i};Durand;{NIR if i % 2 else SPACED}\n" for i in range(3000)).encode()

    async def handler(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(rows), 7):  # every NIR straddles a chunk boundary
                yield rows[start:start + 7]
        return StreamingResponse(chunks(), media_type="application/octet-stream")
    h.upstream.handler = handler
    response = h.get("/raw/export.csv", token)
    assert response.status_code == 200
    assert len(response.content) == len(rows)  # masked in place
    assert NIR not in response.text and SPACED not in response.text
    assert response.text.splitlines()[1] == "1;Durand;" + "*" * 15
    h.upstream.reply(body=gzip.compress(rows), content_type="application/octet-stream",
                     headers={"content-encoding": "gzip"})
    response = h.get("/raw/export.csv", token)
    assert "content-encoding" not in response.headers
    assert len(response.content) == len(rows) and NIR not in response.text
