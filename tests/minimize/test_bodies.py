"""Bodies by content type and coding: NIR scanning everywhere, 502 when uninspectable."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import brotli
import orjson
import pytest

from support.minimize import (
    body_of,
    grant,
    header,
    identity,
    json_upstream,
    minimizer,
    response_rule,
    run,
    upstream,
    valid_forms,
)
from support.minimize import decision as new_decision
from vigie.errors import InspectionError
from vigie.messages import OutgoingResponse, UpstreamResponse
from vigie.minimize.tree import MAX_DEPTH
from vigie.policy.model import ResponseRule

NIR = "185057800608491"
MASKED = "*" * 15
RULE = response_rule("$", {"id": "keep", "name": "keep"})
FORMS = valid_forms()


async def go(up: UpstreamResponse, rule: ResponseRule | None = None, *, max_bytes: int = 1 << 20,
             method: str = "GET") -> tuple[OutgoingResponse, bytes, Any]:
    dec = new_decision(method)
    response = await minimizer(max_bytes).minimize(up, grant(rule), identity(), dec)
    return response, await body_of(response), dec


@pytest.mark.parametrize(("vector", "fmt", "form"), FORMS)
async def test_every_form_in_strings_keys_and_text_of_json(vector: str, fmt: str,
                                                           form: str) -> None:
    doc = {"a": form, "b": [f"vu {form}."], form: 1, "c": {"d": f"x{form}"}}
    out, dec = await run(doc)  # no response rules: scan only
    assert out == {"a": "*" * len(form), "b": [f"vu {'*' * len(form)}."], "*" * len(form): 1,
                   "c": {"d": "x" + "*" * len(form)}}
    assert dec.nir_detections["field"] == 4


@pytest.mark.parametrize(("vector", "fmt", "form"), [f for f in FORMS if f[1] == "compact"
                                                     and f[2].isdigit()])
async def test_nir_as_a_json_number(vector: str, fmt: str, form: str) -> None:
    out, dec = await run({"n": int(form), "f": float(form), "list": [int(form)]})
    assert out == {"n": MASKED, "f": MASKED + ".0", "list": [MASKED]}
    assert dec.nir_detections["field"] == 3


@pytest.mark.parametrize(("vector", "fmt", "form"), FORMS)
@pytest.mark.parametrize("content_type", ["text/plain", "text/html; charset=utf-8", "text/csv",
                                          "application/xml", "text/xml", "application/atom+xml"])
async def test_every_form_in_text_bodies(vector: str, fmt: str, form: str,
                                         content_type: str) -> None:
    text = f"<p>id;nir\n42;{form}\n</p>"
    response, body, dec = await go(upstream(text.encode(), content_type=content_type))
    assert body.decode() == text.replace(form, "*" * len(form))
    assert dec.nir_detections["text"] == 1
    assert header(response, "content-type") == content_type


@pytest.mark.parametrize(("vector", "fmt", "form"), FORMS)
async def test_every_form_in_ndjson(vector: str, fmt: str, form: str) -> None:
    lines = b"".join(orjson.dumps({"id": i, "nir": form, "name": "A"}) + b"\n" for i in range(3))
    response, body, dec = await go(upstream(lines, content_type="application/x-ndjson"),
                                   response_rule("$", {"id": "keep", "nir": "keep"}))
    assert [orjson.loads(line) for line in body.splitlines()] == [
        {"id": i, "nir": form} for i in range(3)]  # a named keep of a whole NIR
    response, body, dec = await go(upstream(lines, content_type="application/x-ndjson"))
    assert [orjson.loads(line) for line in body.splitlines()] == [
        {"id": i, "nir": "*" * len(form), "name": "A"} for i in range(3)]
    assert dec.nir_detections["field"] == 3


@pytest.mark.parametrize(("vector", "fmt", "form"), FORMS)
async def test_every_form_in_header_values(vector: str, fmt: str, form: str) -> None:
    response, _, dec = await go(json_upstream({}, headers=[("X-Patient", f"nir={form}"),
                                                           ("Location", f"/p/{form}")]))
    assert header(response, "x-patient") == "nir=" + "*" * len(form)
    assert header(response, "location") == "/p/" + "*" * len(form)
    assert dec.nir_detections["header"] == 2


async def test_declared_envelope_is_kept_and_scanned() -> None:
    rule = response_rule("$.items[*]", {"id": "keep"}, envelope=["query", "page"])
    out, dec = await run({"query": f"nir={NIR}", "items": [{"id": 1, "nir": NIR}], "page": 1,
                          "echo": "x"}, rule)
    assert out == {"query": "nir=" + MASKED, "items": [{"id": 1}], "page": 1}
    assert dec.nir_detections["field"] == 1


async def test_default_envelope_keeps_pagination_and_drops_the_rest() -> None:
    rule = response_rule("$.items[*]", {"id": "keep"})
    out, dec = await run({"query": f"nir={NIR}", "items": [{"id": 1, "nir": NIR}], "page": 1,
                          "total": 1, "next": "/items?page=2"}, rule)
    assert out == {"items": [{"id": 1}], "page": 1, "total": 1, "next": "/items?page=2"}


async def test_error_statuses_are_scanned_but_not_field_filtered() -> None:
    out, dec = await run({"error": f"patient {NIR} not found", "name": "Martin"}, RULE,
                         status=404)
    assert out == {"error": f"patient {MASKED} not found", "name": "Martin"}
    assert dec.records == 0


async def test_json_labelled_text_plain_is_still_minimized() -> None:
    body = orjson.dumps({"id": 1, "name": "A", "nir": NIR, "secret": "x"})
    response, out, dec = await go(upstream(body, content_type="text/plain"), RULE)
    assert orjson.loads(out) == {"id": 1, "name": "A"}
    assert header(response, "content-type") == "application/json"


async def test_escaped_nir_in_json_is_decoded_and_masked() -> None:
    body = b'{"a": "\\u0031\\u00385057800608491"}'
    response, out, dec = await go(upstream(body))
    assert orjson.loads(out) == {"a": MASKED}


@pytest.mark.parametrize("text", [
    "NIR &#49;85057800608491", "NIR 1850&#x35;7800608491", "NIR \\u0031" + NIR[1:],
    "nir=1%2085%2005%2078%20006%20084%2091",
])
async def test_nir_hidden_behind_escapes_in_text_is_masked_in_its_escaped_form(
        text: str) -> None:
    # 0.2: masked in place (every escape of the NIR becomes `*`) instead of a 502
    response, out, dec = await go(upstream(text.encode(), content_type="text/html"))
    assert out.decode().startswith(text[:4]) and len(out) == len(text.encode())
    assert set(out.decode()[4:]) == {"*"}
    assert dec.nir_detections == {"text": 1}


@pytest.mark.parametrize("content_type", ["image/png", "application/pdf",
                                          "application/octet-stream", None, "application/x-foo"])
async def test_uninspectable_types_on_a_masking_route_are_refused(
        content_type: str | None) -> None:
    with pytest.raises(InspectionError):
        await go(upstream(b"\x89PNG" + NIR.encode(), content_type=content_type), RULE)


@pytest.mark.parametrize("content_type", ["image/png", "application/pdf",
                                          "application/octet-stream"])
async def test_binary_passes_untouched_without_response_rules(content_type: str) -> None:
    payload = b"\x89PNG\x00" + NIR.encode()
    response, out, dec = await go(upstream([payload[:3], payload[3:]],
                                           content_type=content_type,
                                           headers=[("Content-Length", str(len(payload)))]))
    assert out == payload
    assert header(response, "content-length") == str(len(payload))


async def test_unknown_type_without_rules_is_scanned_as_text() -> None:
    _, out, dec = await go(upstream(f"nir {NIR}".encode(), content_type=None))
    assert out == f"nir {MASKED}".encode()


@pytest.mark.parametrize("body", [b"\x89PNG\x00\x01", b'{"a": 1', b"[1, 2,]", b"\xff\xfe{}",
                                  b'{"a": NaN}'])
async def test_binary_or_broken_json_is_refused(body: bytes) -> None:
    with pytest.raises(InspectionError):
        await go(upstream(body), RULE)
    with pytest.raises(InspectionError):
        await go(upstream(body))


async def test_duplicate_keys_never_leak_the_earlier_value() -> None:
    body = b'{"id": 1, "name": "' + NIR.encode() + b'", "name": "B", "nir": "' + \
        NIR.encode() + b'", "nir": "x"}'
    _, out, _ = await go(upstream(body), RULE)
    assert NIR.encode() not in out
    assert orjson.loads(out) == {"id": 1, "name": "B"}
    _, out, _ = await go(upstream(body))
    assert NIR.encode() not in out


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 5000, 100_000])
async def test_deep_nesting_is_refused_without_crashing(depth: int) -> None:
    body = b'{"a":' * depth + b"1" + b"}" * depth
    with pytest.raises(InspectionError):
        await go(upstream(body))
    with pytest.raises(InspectionError):
        await go(upstream(b"[" * depth + b"]" * depth), response_rule("$[*]", {"id": "keep"}))
    with pytest.raises(InspectionError):
        await go(upstream(b"[" * depth + b"]" * depth, content_type="application/x-ndjson"))


async def test_nesting_within_the_limit_is_fine() -> None:
    doc: Any = NIR
    for _ in range(MAX_DEPTH - 2):
        doc = {"a": doc}
    _, out, dec = await go(json_upstream(doc))
    assert NIR.encode() not in out and dec.nir_detections["field"] == 1


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data)


def _zlib(data: bytes) -> bytes:
    return zlib.compress(data)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


CODINGS = [("gzip", _gzip), ("x-gzip", _gzip), ("deflate", _zlib), ("deflate", _raw_deflate),
           ("br", brotli.compress)]


@pytest.mark.parametrize(("coding", "compress"), CODINGS)
async def test_compressed_bodies_are_decoded_then_minimized(coding: str, compress: Any) -> None:
    body = compress(orjson.dumps({"id": 1, "name": "A", "nir": NIR}))
    response, out, dec = await go(upstream([body[:5], body[5:]], headers=[
        ("Content-Encoding", coding), ("Content-Length", str(len(body))), ("ETag", '"x"')]), RULE)
    assert orjson.loads(out) == {"id": 1, "name": "A"}
    for name in ("content-encoding", "content-length", "etag"):
        assert header(response, name) is None


async def test_stacked_codings_are_undone_in_reverse() -> None:
    body = brotli.compress(gzip.compress(f"nir {NIR}".encode()))
    _, out, _ = await go(upstream(body, content_type="text/plain",
                                  headers=[("Content-Encoding", "gzip, br")]))
    assert out == f"nir {MASKED}".encode()


@pytest.mark.parametrize(("coding", "compress"), CODINGS)
async def test_decompression_bomb_is_refused(coding: str, compress: Any) -> None:
    bomb = compress(b" " * 5_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(InspectionError):
        await go(upstream(bomb, headers=[("Content-Encoding", coding)]), max_bytes=1_000_000)


@pytest.mark.parametrize("coding", ["compress", "zstd", "gzip2"])
async def test_unknown_coding_is_refused(coding: str) -> None:
    with pytest.raises(InspectionError):
        await go(upstream(b"{}", headers=[("Content-Encoding", coding)]))


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
async def test_corrupt_or_truncated_compressed_body_is_refused(coding: str) -> None:
    good = dict(CODINGS)[coding](orjson.dumps({"a": "b" * 1000}))
    for body in (good[: len(good) // 2], b"garbage!" * 4):
        with pytest.raises(InspectionError):
            await go(upstream(body, headers=[("Content-Encoding", coding)]))


async def test_oversize_bodies_are_refused() -> None:
    big = orjson.dumps({"a": "x" * 2000})
    with pytest.raises(InspectionError):
        await go(upstream([big[:1000], big[1000:]]), max_bytes=1000)
    with pytest.raises(InspectionError):
        await go(upstream(b"{}", headers=[("Content-Length", "5000")]), max_bytes=1000)
    with pytest.raises(InspectionError):
        await go(upstream(b"x" * 2000, content_type="text/plain"), max_bytes=1000)


@pytest.mark.parametrize(("charset", "text"), [("iso-8859-1", "Lefèvre"), ("utf-16", "Lefèvre"),
                                               ("windows-1252", "Œuvre")])
async def test_text_charsets_round_trip(charset: str, text: str) -> None:
    body = f"{text} {NIR}".encode(charset)
    response, out, _ = await go(upstream(body, content_type=f"text/plain; charset={charset}"))
    assert out.decode(charset) == f"{text} {MASKED}"


async def test_json_in_another_charset() -> None:
    body = orjson.dumps({"name": "Lefèvre", "nir": NIR}).decode().encode("latin-1")
    response, out, _ = await go(upstream(body, content_type="application/json; charset=latin-1"))
    assert orjson.loads(out) == {"name": "Lefèvre", "nir": MASKED}
    assert header(response, "content-type") == "application/json"


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8",
                                          "text/plain; charset=nope"])
async def test_bad_charset_is_refused(content_type: str) -> None:
    with pytest.raises(InspectionError):
        await go(upstream(b"caf\xe9 \xff\xfe", content_type=content_type))


@pytest.mark.parametrize(("method", "status", "rule"), [
    ("HEAD", 200, None), ("GET", 204, RULE), ("GET", 304, RULE)])
async def test_no_body_responses(method: str, status: int, rule: ResponseRule | None) -> None:
    response, out, dec = await go(upstream(b"", status=status, headers=[
        ("Content-Length", "99"), ("X-Nir", NIR)]), rule, method=method)
    assert out == b""
    assert header(response, "x-nir") == MASKED
    assert header(response, "content-length") is None


@pytest.mark.parametrize("content_type", ["application/fhir+json", "application/problem+json",
                                          "application/json; charset=utf-8"])
async def test_json_flavours_keep_their_type(content_type: str) -> None:
    response, out, _ = await go(json_upstream({"nir": NIR}, content_type=content_type))
    assert orjson.loads(out) == {"nir": MASKED}
    assert header(response, "content-type") == content_type


async def test_upstream_is_closed_after_reading_and_on_errors() -> None:
    closed: list[bool] = []

    async def close() -> None:
        closed.append(True)

    up = upstream(b"{}")
    up.aclose = close
    await go(up)
    up = upstream(b"{", content_type="application/json")
    up.aclose = close
    with pytest.raises(InspectionError):
        await go(up)
    assert len(closed) >= 2
