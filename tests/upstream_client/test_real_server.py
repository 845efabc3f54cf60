"""The native client against uvicorn + starlette: concurrency, big streams, bodies."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from support.servers import serve_in_thread
from vigie.upstream.client import NativeForwarder
from vigie.upstream.connection import HIGH_WATER

BIG_CHUNK = bytes(range(256)) * 256  # 64 KiB
BIG_COUNT = 320  # 20 MiB
peers: set[tuple[str, int]] = set()


async def record(request: Request) -> Response:
    client = request.client
    if client is not None:
        peers.add((client.host, client.port))
    return JSONResponse({"id": request.path_params["id"], "q": str(request.query_params)})


async def big(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(BIG_COUNT):
            yield BIG_CHUNK
    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def echo(request: Request) -> Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"size": size, "sha256": digest.hexdigest(),
                         "te": request.headers.get("transfer-encoding"),
                         "cl": request.headers.get("content-length")})


app = Starlette(routes=[Route("/patients/{id}", record), Route("/big", big),
                        Route("/echo", echo, methods=["POST", "PUT"])])


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(app, http="httptools", loop="asyncio") as url:
        yield url


async def test_many_concurrent_requests_share_a_bounded_pool(upstream: str) -> None:
    peers.clear()
    fwd = NativeForwarder(upstream + "/", timeout=10, connect_timeout=2, max_connections=16)

    async def one(i: int) -> bytes:
        response = await fwd.send("GET", f"/patients/{i}", f"page={i}", [], None)
        assert response.status == 200
        return await response.read(10_000)

    for _ in range(3):
        bodies = await asyncio.gather(*(one(i) for i in range(300)))
        assert bodies == [b'{"id":"%d","q":"page=%d"}' % (i, i) for i in range(300)]
    assert len(peers) <= 16
    assert fwd.pool.opened_total == len(peers)
    await fwd.close()


async def test_a_big_stream_is_read_with_bounded_buffering(upstream: str) -> None:
    fwd = NativeForwarder(upstream, timeout=10, connect_timeout=2)
    response = await fwd.send("GET", "/big", "", [], None)
    assert response.status == 200
    assert ("transfer-encoding", "chunked") not in response.headers
    digest = hashlib.sha256()
    size = peak = 0
    conn = fwd.pool.idle[-1] if fwd.pool.idle else None
    assert conn is None  # lent out
    async for chunk in response.body:
        digest.update(chunk)
        size += len(chunk)
        if size % (2 << 20) < len(chunk):
            await asyncio.sleep(0.05)  # a slow consumer: the socket must pause
            peak = max(peak, _buffered(response.body))
    assert size == len(BIG_CHUNK) * BIG_COUNT
    assert digest.hexdigest() == hashlib.sha256(BIG_CHUNK * BIG_COUNT).hexdigest()
    assert 0 < peak < HIGH_WATER + 512 * 1024
    await response.aclose()
    assert len(fwd.pool.idle) == 1  # read to the end: reused
    await fwd.close()


def _buffered(body: object) -> int:
    return int(body._conn.buffered)  # type: ignore[attr-defined]


async def test_request_bodies_reach_the_server_whole(upstream: str) -> None:
    fwd = NativeForwarder(upstream, timeout=10, connect_timeout=2)
    payload = bytes(range(251)) * 20_000  # ~5 MB

    for headers in ([("content-length", "12")], [("transfer-encoding", "chunked")], []):
        response = await fwd.send("PUT", "/echo", "", headers, payload)
        answer = orjson.loads(await response.read(10_000))
        assert answer["size"] == len(payload)
        assert answer["sha256"] == hashlib.sha256(payload).hexdigest()
        assert (answer["te"], answer["cl"]) == (None, str(len(payload)))  # ours, never theirs
    assert fwd.pool.opened_total == 1
    await fwd.close()
