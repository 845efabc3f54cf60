"""The NIR rule through the proxy: every valid vector, every written form, everywhere.

Vectors come from tests/data/nir_vectors.json (a copy of shared/data) (40 valid NIRs in 5 forms,
Corsica 2A/2B and overseas included). One request carries every vector of a form
in every place a NIR can hide; each form is then looked for in what the client got.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from support.harness import Harness
from support.minimize import WRONG_KEY_IDS, invalid_numbers, vectors

FORMATS = ["compact", "spaced", "dotted", "dashed", "key_separated"]
VALID = vectors()["valid"]
WRONG_KEY = [number for _, number in invalid_numbers(WRONG_KEY_IDS)]
# Correct key, impossible structure: masked by design (minimize/nir.py: fail closed).
BAD_STRUCTURE = [number for _, number in invalid_numbers(
    ["I05", "I06", "I07", "I08", "I09", "I10", "I11", "I12", "I13"])]


def forms(fmt: str) -> list[str]:
    return [v["formats"][fmt] for v in VALID]


def assert_absent(text: str, written: list[str]) -> None:
    leaked = [form for form in written if form in text]
    assert not leaked, f"NIR leaked: {leaked}"


def nir_detections(h: Harness, client: str, where: str) -> float:
    prefix = f'vigie_nir_detections_total{{client="{client}",'
    total = 0.0
    for line in h.metrics_text().splitlines():
        if line.startswith(prefix) and f'where="{where}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def patient_with_everything(fmt: str) -> dict[str, Any]:
    written = forms(fmt)
    record: dict[str, Any] = {
        "id": "p1",
        "last_name": f"Martin {written[0]}",  # kept, but longer than the NIR
        "notes": " ; ".join(f"NIR patient {i}: {form}." for i, form in enumerate(written)),
        "measures": {form: {"deep": [[[{"deeper": f"x{form}y"}]]]} for form in written},
        "first_name": written,  # unlisted: dropped anyway
    }
    if fmt == "compact":
        record["measures"]["numbers"] = [int(f) for f in written if f.isdigit()]
        record["measures"]["float"] = float(written[0])
    return record


@pytest.mark.parametrize("fmt", FORMATS)
def test_json_every_place_inside_and_outside_records(h: Harness, token: str, fmt: str) -> None:
    written = forms(fmt)
    document = {"items": [patient_with_everything(fmt)],
                "envelope": {"free": " / ".join(written), "keys": {f: 1 for f in written}},
                "count": len(written)}
    before = nir_detections(h, "mini", "field")
    h.upstream.reply(json=document)
    response = h.get("/search", token)
    assert response.status_code == 200
    assert_absent(response.text, written)
    out = response.json()
    record = out["items"][0]
    assert record["last_name"] == "Martin " + "*" * len(written[0])
    assert record["notes"].startswith("NIR patient 0: " + "*" * len(written[0]) + ".")
    assert out["count"] == len(written)
    if fmt == "compact":
        assert all(n == "*" * 15 for n in record["measures"]["numbers"])
    assert nir_detections(h, "mini", "field") - before >= 4 * len(written)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_vector_in_a_kept_whole_field_passes(h: Harness, token: str, fmt: str) -> None:
    written = forms(fmt)
    h.upstream.reply(json=[{"id": str(i), "billing_nir": f} for i, f in enumerate(written)])
    out = h.get("/list", token).json()
    assert [record["billing_nir"] for record in out] == written


def test_kept_field_exception_only_for_a_whole_nir(h: Harness, token: str) -> None:
    nir = VALID[0]["nir"]
    h.upstream.reply(json={"id": "p1", "billing_nir": int(nir), "notes": nir,
                           "measures": {"nir": nir}})
    out = h.get("/patients/p1", token).json()
    assert out["billing_nir"] == int(nir)  # a kept number that is one NIR
    assert out["notes"] == nir  # `notes: keep` names it, and it is a whole NIR
    assert out["measures"] == {"nir": "*" * 15}  # kept through a parent: not named itself
    for text in (f"NIR {nir}", f"{nir} ", f"{nir},{nir}", f"a{nir}"):
        h.upstream.reply(json={"id": "p1", "billing_nir": text})
        assert nir not in h.get("/patients/p1", token).json()["billing_nir"]


@pytest.mark.parametrize("number", WRONG_KEY)
def test_wrong_key_numbers_are_left_alone(h: Harness, token: str, number: str) -> None:
    h.upstream.reply(json={"id": "p1", "notes": f"ref {number} end", "billing_nir": number},
                     headers={"x-ref": number})
    response = h.get("/patients/p1", token)
    assert response.json() == {"id": "p1", "notes": f"ref {number} end", "billing_nir": number}
    assert response.headers["x-ref"] == number
    h.upstream.reply(body=f"<p>{number}</p>".encode(), content_type="text/html")
    assert h.get("/raw/page", token).text == f"<p>{number}</p>"


@pytest.mark.parametrize("number", BAD_STRUCTURE)
def test_right_key_impossible_structure_is_masked(h: Harness, token: str, number: str) -> None:
    h.upstream.reply(json={"id": "p1", "notes": f"ref {number}"})
    assert h.get("/patients/p1", token).json()["notes"] == "ref " + "*" * 15


def text_bodies(fmt: str) -> dict[str, tuple[str, bytes]]:
    written = forms(fmt)
    rows = "\n".join(f"{i},Durand,{form},1985" for i, form in enumerate(written))
    return {
        "text": ("text/plain; charset=utf-8",
                 "\n".join(f"patient {i}: {f}" for i, f in enumerate(written)).encode()),
        "html": ("text/html; charset=utf-8",
                 ("<html><body><table>" + "".join(f"<tr><td>{f}</td></tr>" for f in written)
                  + "</table></body></html>").encode()),
        "xml": ("application/xml",
                ("<?xml version='1.0'?><patients>" + "".join(
                    f'<patient nir="{f}"><note>NIR {f}</note></patient>' for f in written)
                 + "</patients>").encode()),
        "fhir-xml": ("application/fhir+xml", ("<Bundle>" + "".join(
            f'<value value="{f}"/>' for f in written) + "</Bundle>").encode()),
        "csv": ("text/csv; charset=utf-8", ("id,last_name,nir,year\n" + rows + "\n").encode()),
        "ndjson": ("application/x-ndjson", b"\n".join(
            orjson.dumps({"id": str(i), "nir": f, f: "key", "n": [f]})
            for i, f in enumerate(written)) + b"\n"),
    }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["text", "html", "xml", "fhir-xml", "csv", "ndjson"])
@pytest.mark.parametrize("path", ["/raw/doc", "/loose/1"])  # without, with response rules
def test_non_json_bodies(h: Harness, token: str, fmt: str, kind: str, path: str) -> None:
    content_type, body = text_bodies(fmt)[kind]
    h.upstream.reply(body=body, content_type=content_type)
    response = h.get(path, token)
    assert response.status_code == 200
    assert_absent(response.text, forms(fmt))
    if kind == "html":
        assert response.text.startswith("<html><body><table><tr><td>*")
    if kind == "csv":
        assert response.text.splitlines()[1] == f"0,Durand,{'*' * len(forms(fmt)[0])},1985"
    if kind == "ndjson":
        assert len(response.content.splitlines()) == len(VALID)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("path", ["/raw/doc", "/patients/p1"])
def test_response_headers(h: Harness, token: str, fmt: str, path: str) -> None:
    written = forms(fmt)
    before = nir_detections(h, "mini", "header")
    headers = {f"x-nir-{i}": f"patient={form}" for i, form in enumerate(written)}
    headers["location"] = f"/patients/{written[0]}"
    h.upstream.reply(json={"id": "p1"}, headers=headers)
    response = h.get(path, token)
    assert response.status_code == 200
    for name, value in response.headers.items():
        assert_absent(f"{name}: {value}", written)
    assert response.headers["x-nir-0"] == "patient=" + "*" * len(written[0])
    assert nir_detections(h, "mini", "header") - before == len(written) + 1


def test_nir_in_a_header_name(h: Harness, token: str) -> None:
    nir = VALID[0]["nir"]
    h.upstream.reply(json={"id": "p1"}, headers={f"x-{nir}": "1"})
    response = h.get("/raw/doc", token)
    assert all(nir not in name for name in response.headers)


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/html", "<p>&#49;85057800608491</p>"),
    ("text/plain", "nir=1%2085%2005%2078%20006%20084%2091"),
])
def test_nir_hidden_behind_escapes_is_masked_in_its_escaped_form(
        h: Harness, token: str, content_type: str, body: str) -> None:
    # 0.2: masked in place (was a 502): every character of the escaped NIR becomes `*`
    h.upstream.reply(body=body.encode(), content_type=content_type)
    response = h.get("/raw/doc", token)
    assert response.status_code == 200
    assert "85057800608491" not in response.text and "%20" not in response.text
    assert len(response.content) == len(body)


def test_json_unicode_escapes_are_decoded_then_masked(h: Harness, token: str) -> None:
    nir = VALID[0]["nir"]
    escaped = "".join(f"\\u{ord(c):04x}" for c in nir)
    h.upstream.reply(body=f'{{"id":"p1","notes":"x {escaped}"}}'.encode())
    response = h.get("/patients/p1", token)
    assert response.json() == {"id": "p1", "notes": "x " + "*" * 15}
