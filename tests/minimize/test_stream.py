"""Streaming: NDJSON and top-level JSON arrays record by record, bounded memory, aborts."""

from __future__ import annotations

import gzip
import sys
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from support.minimize import body_of, grant, identity, minimizer, response_rule, upstream
from support.minimize import decision as new_decision
from vigie.errors import InspectionError
from vigie.minimize.stream import ArraySplitter
from vigie.policy.model import Mode

NIR = "185057800608491"
RULE = response_rule("$", {"id": "keep", "name": "keep"}, bind={"practice": "practice"})
ARRAY_RULE = response_rule("$[*]", {"id": "keep", "name": "keep"},
                           bind={"practice": "practice"})


def record(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"Patient {i}", "nir": NIR, "practice": "P1" if i % 10 else "P2",
            "notes": "x" * 100}


async def ndjson(count: int, per_chunk: int = 50) -> AsyncIterator[bytes]:
    batch: list[bytes] = []
    for i in range(count):
        batch.append(orjson.dumps(record(i)) + b"\n")
        if len(batch) == per_chunk:
            yield b"".join(batch)
            batch = []
    if batch:
        yield b"".join(batch)


async def stream(up: Any, rule: Any, *, mode: Mode = Mode.ENFORCE,
                 max_bytes: int = 1 << 30) -> tuple[Any, Any]:
    dec = new_decision()
    response = await minimizer(max_bytes).minimize(up, grant(rule, mode=mode),
                                                   identity(practice="P1"), dec)
    return response, dec


async def test_ndjson_export_in_bounded_memory() -> None:
    # 30k records (~5 MB) keep tracemalloc's overhead reasonable; the Decision's list of
    # patient references grows with the export by design (the audit needs it) and is
    # subtracted from the peak.
    count = 30_000
    response, dec = await stream(upstream(ndjson(count), content_type="application/x-ndjson"),
                                 RULE)
    assert not isinstance(response.body, bytes)
    tracemalloc.start()
    lines = 0
    size = 0
    async for piece in response.body:
        lines += piece.count(b"\n")
        size += len(piece)
        assert NIR.encode() not in piece and b"notes" not in piece
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert lines == count - count // 10
    assert dec.records == lines and dec.withheld == count // 10
    assert len(dec.patients) == lines
    assert size > 800_000  # and about 5 MB went in
    references = sys.getsizeof(dec.patients) + sum(sys.getsizeof(p) for p in dec.patients)
    assert peak - references < 1_500_000, (peak, references)


async def test_json_array_streams_record_by_record() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b" [\n"
        for i in range(8_000):
            text = orjson.dumps(record(i)).decode()
            yield (("," if i else "") + text).encode()
        yield b"]\n"

    response, dec = await stream(upstream(body()), ARRAY_RULE)
    assert not isinstance(response.body, bytes)
    tracemalloc.start()
    out = b"".join([piece async for piece in response.body])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    parsed = orjson.loads(out)
    assert len(parsed) == 7_200 and parsed[0] == {"id": 1, "name": "Patient 1"}
    assert dec.records == 7_200 and dec.withheld == 800
    assert peak < len(out) + 2_000_000


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_array_splitter_with_any_chunking(size: int) -> None:
    doc = [{"a": "x,]}\"[{", "b": [1, {"c": "\\\""}]}, 2, "s\\\\", [], {}, None, -1.5e3]
    raw = b" \xef\xbb\xbf[ " + b" , ".join(orjson.dumps(e) for e in doc) + b" ]  \n"
    splitter = ArraySplitter(10_000)
    elements: list[bytes] = []
    for i in range(0, len(raw), size):
        elements.extend(splitter.feed(raw[i:i + size]))
    elements.extend(splitter.finish())
    assert [orjson.loads(e) for e in elements] == doc


@pytest.mark.parametrize("raw", [b"[1,]", b"[,1]", b"[1 2]", b"{}", b"[1]x", b"[1", b"[}",
                                 b"[1,,2]", b'["a]'])
async def test_broken_arrays_are_refused(raw: bytes) -> None:
    with pytest.raises(InspectionError):
        response, _ = await stream(upstream([raw[:2], raw[2:]]), ARRAY_RULE)
        await body_of(response)


async def test_empty_array_and_empty_ndjson() -> None:
    response, dec = await stream(upstream(b"[]"), ARRAY_RULE)
    assert await body_of(response) == b"[]"
    response, dec = await stream(upstream(b"", content_type="application/x-ndjson"), RULE)
    assert await body_of(response) == b""


async def test_error_mid_stream_aborts_without_emitting_unscanned_bytes() -> None:
    async def body() -> AsyncIterator[bytes]:
        for i in range(3000):
            yield orjson.dumps(record(i)) + b"\n"
        yield b'{"id": 1, "nir": "' + NIR.encode() + b'"\n'  # broken line

    response, dec = await stream(upstream(body(), content_type="application/x-ndjson"), RULE)
    assert not isinstance(response.body, bytes)
    seen = b""
    with pytest.raises(InspectionError):
        async for piece in response.body:
            seen += piece
    assert NIR.encode() not in seen
    assert seen.count(b"\n") < 3000  # the tail was never sent


async def test_early_errors_are_raised_before_the_response_starts() -> None:
    with pytest.raises(InspectionError):
        await stream(upstream(b"not json\n", content_type="application/x-ndjson"), RULE)


async def test_ndjson_without_rules_is_scanned_line_by_line() -> None:
    response, dec = await stream(upstream(ndjson(10), content_type="application/x-ndjson"),
                                 None)
    lines = (await body_of(response)).splitlines()
    assert len(lines) == 10 and all(orjson.loads(x)["nir"] == "*" * 15 for x in lines)
    assert dec.nir_detections["field"] == 10


async def test_gzip_ndjson_is_decoded_while_streaming() -> None:
    raw = b"".join([orjson.dumps(record(i)) + b"\n" for i in range(500)])
    packed = gzip.compress(raw)
    chunks = [packed[i:i + 100] for i in range(0, len(packed), 100)]
    response, dec = await stream(upstream(chunks, content_type="application/x-ndjson",
                                          headers=[("Content-Encoding", "gzip")]), RULE)
    out = await body_of(response)
    assert out.count(b"\n") == 450 and NIR.encode() not in out


async def test_stream_size_cap() -> None:
    with pytest.raises(InspectionError):
        response, _ = await stream(upstream(ndjson(100_000),
                                            content_type="application/x-ndjson"),
                                   RULE, max_bytes=100_000)
        await body_of(response)


async def test_metrics_are_flushed_when_the_stream_ends() -> None:
    from support.minimize import metrics

    registry = metrics()
    dec = new_decision()
    response = await minimizer(registry=registry).minimize(
        upstream(ndjson(100), content_type="application/x-ndjson"), grant(RULE),
        identity(practice="P1"), dec)
    value = registry.registry.get_sample_value
    labels = {"client": "test-client", "route": "read-patient"}
    assert value("vigie_records_returned_total", labels) is None
    await body_of(response)
    assert value("vigie_records_returned_total", labels) == 90
    assert value("vigie_records_withheld_total", labels) == 10
