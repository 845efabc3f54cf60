"""Issue 12: the NIR in every disguise, masked in its own encoding; look-alikes left alone.

Every form of `tests/data/nir_vectors.json` `disguised` is masked in free text,
in JSON strings, keys and headers, in text bodies without a charset (UTF-8,
UTF-16 without BOM), in bodies labelled octet-stream, and behind several
Content-Encoding headers; the wrong-key forms are never touched.
"""

from __future__ import annotations

import base64
import gzip
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from support.disguises import revealed
from support.minimize import (
    body_of,
    disguised_forms,
    disguised_wrong_keys,
    grant,
    header,
    identity,
    minimizer,
    response_rule,
    run,
    upstream,
    vectors,
)
from support.minimize import decision as new_decision
from vigie.errors import InspectionError
from vigie.messages import OutgoingResponse, UpstreamResponse
from vigie.minimize import nir
from vigie.policy.model import ResponseRule

FORMS = disguised_forms()
WRONG = disguised_wrong_keys()
NIR = "185057800608491"
KEEP_NOTES = response_rule("$", {"id": "keep", "notes": "keep", "aliases": "keep"})


async def go(up: UpstreamResponse, rule: ResponseRule | None = None,
             ) -> tuple[OutgoingResponse, bytes, Any]:
    dec = new_decision()
    response = await minimizer().minimize(up, grant(rule), identity(), dec)
    return response, await body_of(response), dec


@pytest.mark.parametrize(("vector", "number", "name", "form"), FORMS)
def test_every_disguise_is_masked_in_text_keeping_its_length(vector: str, number: str,
                                                             name: str, form: str) -> None:
    text = f"Patient vu le 12/03. NIR: {form}. A rappeler."
    assert revealed(text, number)
    masked, found = nir.mask_text(text)
    assert found == 1
    assert not revealed(masked, number)
    assert len(masked) == len(text)
    assert masked.startswith("Patient vu le 12/03. NIR: ") and masked.endswith(". A rappeler.")


@pytest.mark.parametrize(("vector", "number", "name", "form"),
                         [f for f in FORMS if f[2].startswith("base64")])
def test_base64_stays_valid_base64_after_masking(vector: str, number: str, name: str,
                                                 form: str) -> None:
    masked, found = nir.mask_text(form)
    assert found == 1 and len(masked) == len(form)
    url = "url" in name
    padded = masked + "=" * (-len(masked) % 4)
    raw = (base64.urlsafe_b64decode if url else base64.b64decode)(padded)
    assert b"*" * 15 in raw or raw.count(b"*") >= 15


@pytest.mark.parametrize(("vector", "number", "name", "form"),
                         [f for f in FORMS if f[2].startswith("percent")])
def test_percent_encoded_stays_a_url_after_masking(vector: str, number: str, name: str,
                                                   form: str) -> None:
    link = f"https://example.test/p?nir={form}&x=1"
    masked, found = nir.mask_text(link)
    assert found == 1
    assert masked.startswith("https://example.test/p?nir=") and masked.endswith("&x=1")
    assert not revealed(unquote(masked), number)


@pytest.mark.parametrize(("name", "number", "form"), WRONG)
def test_wrong_key_disguises_are_left_alone(name: str, number: str, form: str) -> None:
    text = f"ref {form} fin"
    assert nir.mask_text(text) == (text, 0)


@pytest.mark.parametrize(("vector", "number", "name", "form"), FORMS)
async def test_every_disguise_in_a_kept_field_key_and_envelope(vector: str, number: str,
                                                               name: str, form: str) -> None:
    rule = response_rule("$.items[*]", {"id": "keep", "notes": "keep", "extra": "keep"},
                         envelope=["next"])
    document = {"next": f"/items?after={form}", "items": [
        {"id": 1, "notes": f"NIR {form}", "extra": {f"k{form}": 1}}, {"id": 2, "notes": form}]}
    out, dec = await run(document, rule)
    if nir.is_whole_nir(form):  # the contract's exception: a named keep, one whole NIR
        assert out["items"][1]["notes"] == form
        out["items"].pop()
    assert not revealed(orjson.dumps(out).decode(), number)
    assert dec.nir_detections["field"] >= 3


@pytest.mark.parametrize(("vector", "number", "name", "form"), FORMS)
async def test_every_disguise_in_a_header(vector: str, number: str, name: str,
                                          form: str) -> None:
    if not form.isascii():
        form = form.encode().decode("latin-1")  # how a header carries UTF-8 bytes
    response, _, dec = await go(upstream(b"{}", headers=[("Location", f"/p?nir={form}")]))
    location = header(response, "location")
    assert location is not None and not revealed(location.encode("latin-1").decode(
        "utf-8", "replace"), number)
    assert dec.nir_detections["header"] == 1


@pytest.mark.parametrize("split", vectors()["split_over_elements"])
async def test_a_nir_split_over_adjacent_array_strings(split: dict[str, Any]) -> None:
    parts = split["parts"]
    cases: list[list[Any]] = [parts, ["x", *parts, "y"]]
    if all(p.isdigit() and p[0] != "0" for p in parts):  # as JSON numbers too
        cases.append([int(p) for p in parts])
    for aliases in cases:
        out, dec = await run({"id": 1, "aliases": aliases}, KEEP_NOTES)
        joined = "".join(str(p) for p in out["aliases"])
        assert split["nir"] not in joined
        assert dec.nir_detections["field"] == 1
    out, dec = await run({"id": 1, "aliases": [parts[0], {"x": 1}, *parts[1:]]}, KEEP_NOTES)
    assert out["aliases"][0] == parts[0]  # a container between: not adjacent


async def test_split_wrong_key_parts_are_left_alone() -> None:
    parts = ["1850578", "00608492"]
    out, dec = await run({"id": 1, "aliases": parts}, KEEP_NOTES)
    assert out["aliases"] == parts and not dec.nir_detections


@pytest.mark.parametrize(("vector", "number", "name", "form"), FORMS)
async def test_one_scan_and_per_value_paths_agree(vector: str, number: str, name: str,
                                                  form: str) -> None:
    doc = {"id": 1, "notes": f"x {form} y", "aliases": ["a", "b"]}
    out, dec = await run(doc, KEEP_NOTES)
    assert out["notes"] != doc["notes"] and not revealed(out["notes"], number)
    assert dec.nir_detections["field"] == 1


# -- text bodies without charset, octet-stream, content codings -------------------------

SPACED_NBSP = "1\u00a085\u00a005\u00a078\u00a0006\u00a0084\u00a091"


@pytest.mark.parametrize("content_type", ["text/plain", "text/csv", "text/html"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be", "utf-16", "utf-8-sig"])
async def test_text_without_charset_is_sniffed(content_type: str, encoding: str) -> None:
    text = f"nom;nir\nDurand;{SPACED_NBSP}\nMartin;{NIR[:3]}\u202f{NIR[3:]}\n"
    response, out, dec = await go(upstream(text.encode(encoding), content_type=content_type))
    decoded = out.decode(encoding)
    assert not revealed(decoded, NIR)
    assert decoded.startswith("nom;nir\nDurand;") and dec.nir_detections["text"] == 2


async def test_text_unsure_of_its_reading_is_refused() -> None:
    # invalid UTF-8 (so read as latin-1), yet its UTF-8 reading spells a NIR
    body = b"caf\xe9 " + SPACED_NBSP.encode()
    with pytest.raises(InspectionError):
        await go(upstream(body, content_type="text/plain"))


async def test_text_with_a_declared_charset_is_read_as_declared() -> None:
    body = f"caf\u00e9 {NIR}".encode("latin-1")
    _, out, _ = await go(upstream(body, content_type="text/plain; charset=iso-8859-1"))
    assert out == "caf\u00e9 ".encode("latin-1") + b"*" * 15


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le"])
@pytest.mark.parametrize("piece", [1, 7, 4096])
async def test_octet_stream_text_in_utf8_or_utf16_across_chunks(encoding: str,
                                                                piece: int) -> None:
    text = ("ligne sans numéro\n" * 100) + f"NIR {SPACED_NBSP} fin\n" + "x\n" * 50
    raw = text.encode(encoding)
    chunks = [raw[i:i + piece] for i in range(0, len(raw), piece)]
    _, out, dec = await go(upstream(chunks, content_type="application/octet-stream"))
    assert len(out) == len(raw)
    assert not revealed(out.decode(encoding, "replace"), NIR)
    assert dec.nir_detections["text"] >= 1


async def test_real_binary_passes_untouched() -> None:
    payload = b"\x89PNG\r\n\x1a\n" + SPACED_NBSP.encode() + b"\x00" * 10
    _, out, dec = await go(upstream(payload, content_type="image/png"))
    assert out == payload and not dec.nir_detections


@pytest.mark.parametrize("headers", [
    [("Content-Encoding", "identity"), ("Content-Encoding", "gzip")],
    [("Content-Encoding", "gzip"), ("Content-Encoding", "identity")],
    [("Content-Encoding", "identity, gzip")],
    [("Content-Encoding", "x-gzip")],
])
@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/json",
                                          "text/plain"])
async def test_every_content_encoding_header_is_combined(headers: list[tuple[str, str]],
                                                         content_type: str) -> None:
    body = gzip.compress(orjson.dumps({"note": f"NIR {NIR}"}))
    response, out, dec = await go(upstream(body, content_type=content_type, headers=headers))
    assert NIR.encode() not in out and b"*" * 15 in out
    assert header(response, "content-encoding") is None


@pytest.mark.parametrize("headers", [
    [("Content-Encoding", "identity"), ("Content-Encoding", "compress")],
    [("Content-Encoding", "gzip, gzip, gzip, gzip, gzip")],
    [("Content-Encoding", "gzip"), ("Content-Encoding", "zstd")],
])
async def test_unknown_or_abusive_encoding_combinations_are_refused(
        headers: list[tuple[str, str]]) -> None:
    with pytest.raises(InspectionError):
        await go(upstream(gzip.compress(b"{}"), content_type="application/octet-stream",
                          headers=headers))
