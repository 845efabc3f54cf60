"""Streamed exports are audited in segments, and an interrupted stream is still audited."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from support.harness import Harness
from vigie.proxy import AUDIT_SEGMENT

POLICY = """\
client: research
routes:
  - name: export
    methods: [GET]
    path: /export.ndjson
    response:
      records: "$"
      fields: {id: keep, sex: keep}
limits:
  requests: 100000/minute
  records: 100000000/hour
  distinct_patients: 100000000/day
  enumeration: false
"""


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path, {"research.yaml": POLICY}) as h:
        yield h


def _export(count: int, broken_at: int | None = None) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for start in range(0, count, 1000):
            block = []
            for i in range(start, min(count, start + 1000)):
                if i == broken_at:
                    block.append(b'{"id": "broken", ')  # not JSON: the stream must stop
                else:
                    block.append(orjson.dumps({"id": str(i), "sex": "F",
                                               "nir": "185057800608491"}))
            yield b"\n".join(block) + b"\n"
    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _lines_for(h: Harness, request_id: str) -> list[dict[str, object]]:
    return [line for line in h.audit_lines() if line["request_id"] == request_id]


def test_a_large_export_is_audited_in_segments_covering_every_patient(harness: Harness) -> None:
    count = AUDIT_SEGMENT * 4 + 500

    async def handler(request: Request) -> Response:
        return _export(count)
    harness.upstream.handler = handler
    response = harness.get("/export.ndjson", harness.token("research"))
    assert response.status_code == 200
    received = [orjson.loads(line)["id"] for line in response.content.splitlines()]
    assert len(received) == count
    assert b"185057800608491" not in response.content
    lines = _lines_for(harness, response.headers["x-request-id"])
    assert len(lines) >= 3  # segments cut at chunk boundaries after AUDIT_SEGMENT refs
    assert all(line["reason"] == "partial" for line in lines[:-1])
    assert lines[-1]["reason"] != "partial"
    assert max(len(line["patients"]) for line in lines) < 2 * AUDIT_SEGMENT
    audited = [ref for line in lines for ref in line["patients"]]
    assert sorted(audited) == sorted(received)
    assert sum(line["records"] for line in lines) == count


def test_a_stream_that_breaks_midway_still_leaves_its_audit_line(harness: Harness) -> None:
    async def handler(request: Request) -> Response:
        return _export(5000, broken_at=3500)
    harness.upstream.handler = handler
    with pytest.raises(httpx.HTTPError):  # the proxy aborts: the client never sees it whole
        harness.get("/export.ndjson", harness.token("research")).raise_for_status()
    lines = [line for line in harness.audit_lines() if line["route"] == "export"]
    assert lines, "an aborted export left no audit line"
    final = lines[-1]
    assert final["decision"] == "error"
    audited = {ref for line in lines for ref in line["patients"]}
    assert {str(i) for i in range(3000)} <= audited  # what may have left is listed


def test_a_client_that_disconnects_midway_is_still_audited(harness: Harness) -> None:
    async def handler(request: Request) -> Response:
        return _export(200_000)
    harness.upstream.handler = handler
    token = harness.token("research")
    with httpx.stream("GET", f"{harness.base_url}/export.ndjson",
                      headers={"Authorization": f"Bearer {token}"}, timeout=10) as response:
        assert response.status_code == 200
        for _ in response.iter_bytes():
            break  # read one chunk, then hang up
    deadline = time.monotonic() + 30  # the closing line is written once the stream is cut
    while True:
        lines = [line for line in harness.audit_lines() if line["route"] == "export"]
        if (lines and lines[-1]["reason"] != "partial") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert lines and lines[-1]["decision"] == "error"
    assert sum(len(line["patients"]) for line in lines) > 0
