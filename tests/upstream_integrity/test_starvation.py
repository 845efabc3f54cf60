"""Stalled and huge clients cannot starve the others (bodies, headers, the pool).

One Vigie with a pool of two upstream connections and one-second deadlines: clients
that stall in their body or their headers, or send huge headers, are answered
408/431 and closed, while a normal client is served throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from support.harness import Harness
from support.legacy_patients import LegacyServer, patient_json
from upstream_integrity.conftest import vigie_before_legacy

CONFIG = """\
upstream_max_connections: 2
upstream_pool_timeout_seconds: 1
request_body_timeout_seconds: 1
"""
LISTEN = {"VIGIE_LISTEN__MAX_HEADER_BYTES": "8192", "VIGIE_LISTEN__HEADER_TIMEOUT_SECONDS": "1"}


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, LegacyServer]]:
    with vigie_before_legacy(tmp_path_factory.mktemp("starvation"), config=CONFIG,
                             env=LISTEN) as pair:
        yield pair


async def _open(h: Harness, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = h.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    return reader, writer


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Everything until the server closes (a refusal closes: nothing else is read)."""
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def _flood(h: Harness, total: int) -> bytes:
    """Headers that never end, `total` bytes of them; what came back before the cut."""
    reader, writer = await _open(h, b"GET /patients/7 HTTP/1.1\r\nX-Huge: ")
    try:
        for _ in range(total // 65536):
            writer.write(b"a" * 65536)
            await writer.drain()
    except ConnectionError:
        pass  # cut off while still sending: the point
    try:
        return await _answer(reader, writer)
    except ConnectionError:
        return b"reset"


def _served_meanwhile(h: Harness) -> None:
    response = h.get("/patients/7", h.token("app"))
    assert response.content == patient_json("7")


def test_stalled_bodies_hold_no_upstream_connection(
        bounded: tuple[Harness, LegacyServer]) -> None:
    h, server = bounded
    token = h.token("app").encode()
    stalled_post = (b"POST /notes HTTP/1.1\r\nHost: vigie\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + token + b"\r\nContent-Length: 100\r\n\r\n{")

    async def scenario() -> list[bytes]:
        stalled = [await _open(h, stalled_post) for _ in range(6)]  # more than the pool
        await asyncio.to_thread(_served_meanwhile, h)
        return [await _answer(*pair) for pair in stalled]

    answers = asyncio.run(scenario())
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), answers
    assert b"POST /notes HTTP/1.1" not in server.seen


def test_slow_and_huge_headers_are_cut_off_while_others_are_served(
        bounded: tuple[Harness, LegacyServer]) -> None:
    h, _ = bounded

    async def scenario() -> tuple[list[bytes], bytes]:
        slow = [await _open(h, b"GET /patients/7 HTTP/1.1\r\nHost: vigie\r\nX-Slow: a")
                for _ in range(20)]
        silent = await _open(h, b"")
        large = await _open(h, b"GET /patients/7 HTTP/1.1\r\nX-Large: " + b"a" * 12_000)
        flood = asyncio.create_task(_flood(h, 64 << 20))  # 64 MiB of one header
        await asyncio.to_thread(_served_meanwhile, h)
        large_answer = await _answer(*large)
        assert (await flood) in (b"reset", large_answer)
        return [await _answer(*pair) for pair in (*slow, silent)], large_answer

    slow_answers, large_answer = asyncio.run(scenario())
    assert large_answer.startswith(b"HTTP/1.1 431 "), large_answer[:60]
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in slow_answers), slow_answers
    _served_meanwhile(h)
