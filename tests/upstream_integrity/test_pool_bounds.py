"""The pool cannot be starved: bounded waits (504) and a per-principal share (429)."""

from __future__ import annotations

import asyncio

import pytest

from support.upstream_client import RawServer, ok, raw_server
from upstream_integrity.conftest import CLIENTS, client_for
from vigie.errors import Throttled, UpstreamTimeout
from vigie.messages import Headers, UpstreamResponse
from vigie.upstream.client import NativeForwarder
from vigie.upstream.options import UpstreamOptions
from vigie.upstream.share import PrincipalShare

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


def stalling(release: asyncio.Event) -> object:
    """/stall waits for `release`; anything else is answered at once."""
    async def handler(reader: Reader, writer: Writer, server: RawServer) -> None:
        while (request := await server.read_request(reader)) is not None:
            if b"/stall" in request.line:
                await release.wait()
            writer.write(ok(request.line))
            await writer.drain()
    return handler


def who(client: str, user: str) -> Headers:
    return [("x-vigie-client", client), ("x-vigie-user", user)]


async def until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def read_all(response: UpstreamResponse) -> bytes:
    try:
        return await response.read(1 << 16)
    finally:
        await response.aclose()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_full_pool_answers_504_after_the_pool_timeout(kind: str) -> None:
    release = asyncio.Event()
    timeouts: list[None] = []
    async with raw_server(stalling(release)) as server:  # type: ignore[arg-type]
        fwd = client_for(kind, server.url, max_connections=2, pool_timeout=0.2, timeout=5.0,
                         on_pool_timeout=lambda: timeouts.append(None))
        held = [asyncio.create_task(fwd.send("GET", "/stall", "", [], None))
                for _ in range(2)]
        await until(lambda: len(server.requests) == 2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamTimeout):
            await fwd.send("GET", "/fast", "", [], None)
        assert loop.time() - started < 2.0
        assert len(timeouts) == 1
        release.set()
        for task in held:
            assert await read_all(await task) == b"GET /stall HTTP/1.1"
        assert await read_all(await fwd.send("GET", "/fast", "", [], None)) == \
            b"GET /fast HTTP/1.1"
        await fwd.close()


async def test_one_principal_cannot_hold_more_than_its_share() -> None:
    release = asyncio.Event()
    refused: list[None] = []
    async with raw_server(stalling(release)) as server:  # type: ignore[arg-type]
        inner = NativeForwarder(server.url, UpstreamOptions(max_connections=8, timeout=5.0))
        share = PrincipalShare(inner, 2, lambda: refused.append(None))
        greedy = [asyncio.create_task(share.send("GET", "/stall", "", who("app", "psn_a"),
                                                 None)) for _ in range(2)]
        await until(lambda: len(server.requests) == 2)
        with pytest.raises(Throttled) as caught:
            await share.send("GET", "/fast", "", who("app", "psn_a"), None)
        assert caught.value.status == 429 and len(refused) == 1
        # another user of the same client, and another client, are served meanwhile
        for other in (who("app", "psn_b"), who("billing", "psn_a")):
            assert await read_all(await share.send("GET", "/fast", "", other, None)) == \
                b"GET /fast HTTP/1.1"
        release.set()
        for task in greedy:
            await read_all(await task)
        assert share.held == {}
        assert await read_all(await share.send("GET", "/fast", "", who("app", "psn_a"),
                                               None)) == b"GET /fast HTTP/1.1"
        await share.close()
