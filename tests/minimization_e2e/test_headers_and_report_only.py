"""Conditional and Range headers on masking routes, and report-only minimization."""

from __future__ import annotations

import orjson
import pytest

from support.harness import Harness

NIR = "185057800608491"
CONDITIONAL = {"range": "bytes=0-99", "if-none-match": '"abc"',
               "if-modified-since": "Wed, 21 Oct 2015 07:28:00 GMT", "if-range": '"abc"',
               "if-match": '"abc"', "if-unmodified-since": "Wed, 21 Oct 2015 07:28:00 GMT"}


@pytest.mark.parametrize("path", ["/patients/p1", "/list", "/export.ndjson", "/loose/1"])
def test_not_forwarded_on_masking_routes(h: Harness, token: str, path: str) -> None:
    document = [{"id": "p1"}] if path == "/list" else {"id": "p1"}
    h.upstream.reply(json=document, headers={"etag": '"abc"'})
    response = h.get(path, token, headers=CONDITIONAL)
    seen = h.upstream.requests[-1].headers
    assert not set(CONDITIONAL) & set(seen), seen
    assert response.status_code == 200  # never a 304/206 for a body nobody inspected
    assert "etag" not in response.headers  # it named the upstream's bytes, not ours


def test_forwarded_on_routes_without_response_rules(h: Harness, token: str) -> None:
    h.upstream.reply(body=b"partial", status=206, content_type="text/plain")
    h.get("/raw/doc", token, headers=CONDITIONAL)
    seen = h.upstream.requests[-1].headers
    for name, value in CONDITIONAL.items():
        assert seen.get(name) == value


def counter(h: Harness, name: str, client: str, route: str) -> float:
    total = 0.0
    for line in h.metrics_text().splitlines():
        if line.startswith(name + "{") and f'client="{client}"' in line \
                and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_report_only_passes_the_body_and_counts_what_enforce_would_mask(
        h: Harness) -> None:
    watcher = h.token("watcher", scope="r")
    body = orjson.dumps({"id": "p1", "last_name": "Martin", "first_name": "Paul", "nir": NIR,
                         "notes": f"call about {NIR}", "birth_date": "1985-05-17"})
    masked_before = counter(h, "vigie_masked_values_total", "watcher", "patient")
    nir_before = counter(h, "vigie_nir_detections_total", "watcher", "patient")
    h.upstream.reply(body=body, headers={"x-ref": NIR})
    response = h.get("/patients/p1", watcher)
    assert response.status_code == 200
    assert response.content == body  # byte for byte
    assert response.headers["x-ref"] == NIR
    line = h.audit_lines()[-1]
    assert line["client"] == "watcher" and line["mode"] == "report-only"
    # first_name dropped, nir masked, birth_date generalized, NIR in notes and header
    assert line["masked"] >= 5
    assert NIR not in orjson.dumps(line).decode()
    assert counter(h, "vigie_masked_values_total", "watcher", "patient") - masked_before \
        == line["masked"]
    assert counter(h, "vigie_nir_detections_total", "watcher", "patient") - nir_before == 2


def test_report_only_streamed_export_records_unchanged(h: Harness) -> None:
    watcher = h.token("watcher", scope="r")
    records = [{"id": f"p{i}", "nir": NIR, "first_name": "Paul"} for i in range(50)]
    body = b"".join(orjson.dumps(r) + b"\n" for r in records)
    h.upstream.reply(body=body, content_type="application/x-ndjson")
    response = h.get("/export.ndjson", watcher)
    assert [orjson.loads(x) for x in response.content.splitlines()] == records
    line = h.audit_lines()[-1]
    assert line["records"] == 50 and line["masked"] >= 100


def test_report_only_still_refuses_what_cannot_be_inspected(h: Harness) -> None:
    watcher = h.token("watcher", scope="r")
    h.upstream.reply(body=b'{"id": "p1", "nir": "' + NIR.encode(), content_type="application/json")
    response = h.get("/patients/p1", watcher)
    assert response.status_code == 502 and NIR not in response.text
