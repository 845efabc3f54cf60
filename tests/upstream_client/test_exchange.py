"""The native client against a byte-by-byte scripted server: framing, reuse, errors."""

from __future__ import annotations

import asyncio
import gc
import socket

import pytest

from support.upstream_client import RawServer, keep_answering, ok, raw_server
from vigie.errors import UpstreamError, UpstreamTimeout
from vigie.upstream.client import NativeForwarder

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


def forwarder(url: str, timeout: float = 5.0, **kw: int) -> NativeForwarder:
    return NativeForwarder(url, timeout=timeout, connect_timeout=1.0, **kw)


async def get(fwd: NativeForwarder, path: str = "/x", method: str = "GET") -> tuple[int, bytes]:
    response = await fwd.send(method, path, "", [("accept", "*/*")], None)
    try:
        return response.status, await response.read(1 << 30)
    finally:
        await response.aclose()


async def test_keep_alive_reuses_one_connection_and_sends_only_host_and_given_headers() -> None:
    async with raw_server(keep_answering) as server:
        fwd = forwarder(server.url + "/base/")
        for i in range(5):
            assert await get(fwd, f"/p/{i}") == (200, b"GET /base/p/%d HTTP/1.1" % i)
        response = await fwd.send("GET", "/q", "a=1&b=%2F", [("x-vigie-client", "c")], None)
        await response.aclose()
        await fwd.close()
    assert server.connections == 1
    assert server.requests[-1].line == b"GET /base/q?a=1&b=%2F HTTP/1.1"
    assert server.requests[-1].headers() == [("host", f"127.0.0.1:{server.port}"),
                                              ("x-vigie-client", "c")]


async def test_connection_close_is_not_reused() -> None:
    async def close_each(reader: Reader, writer: Writer, server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(ok(b"bye", b"connection: close\r\n"))
        await writer.drain()
        await asyncio.sleep(0.2)  # keep it open: the client must not wait for our FIN

    async with raw_server(close_each) as server:
        fwd = forwarder(server.url)
        assert await get(fwd) == (200, b"bye")
        assert await get(fwd) == (200, b"bye")
        await fwd.close()
    assert server.connections == 2


async def test_http_1_0_response_is_not_reused() -> None:
    async def old(reader: Reader, writer: Writer, server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.2)

    async with raw_server(old) as server:
        fwd = forwarder(server.url)
        assert await get(fwd) == (200, b"ok")
        assert await get(fwd) == (200, b"ok")
        await fwd.close()
    assert server.connections == 2


async def test_chunked_body_split_anywhere_then_reused() -> None:
    wire = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Thing: \xe9t\xe9\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\n")

    async def dribble(reader: Reader, writer: Writer, server: RawServer) -> None:
        while await server.read_request(reader) is not None:
            for i in range(0, len(wire), 7):
                writer.write(wire[i:i + 7])
                await writer.drain()
                await asyncio.sleep(0)

    async with raw_server(dribble) as server:
        fwd = forwarder(server.url)
        response = await fwd.send("GET", "/", "", [], None)
        assert ("x-thing", "été") in response.headers
        assert all(name != "transfer-encoding" for name, _ in response.headers)
        assert await response.read(100) == b"hello world"
        await response.aclose()
        assert await get(fwd) == (200, b"hello world")
        await fwd.close()
    assert server.connections == 1


async def test_close_delimited_body_ends_at_eof_and_is_not_reused() -> None:
    async def until_close(reader: Reader, writer: Writer, server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one,")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b" part two")

    async with raw_server(until_close) as server:
        fwd = forwarder(server.url)
        assert await get(fwd) == (200, b"part one, part two")
        assert await get(fwd) == (200, b"part one, part two")
        await fwd.close()
    assert server.connections == 2


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
async def test_bodyless_responses_end_at_the_headers_and_keep_the_connection(
        method: str, status: int) -> None:
    async def bodyless(reader: Reader, writer: Writer, server: RawServer) -> None:
        while (request := await server.read_request(reader)) is not None:
            if request.line.startswith(b"GET /next"):
                writer.write(ok(b"next"))
            else:  # the length a GET would have had, as HEAD and 304 may say
                writer.write(b"HTTP/1.1 %d X\r\ncontent-length: 1234\r\n\r\n" % status
                             if status != 204 else b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async with raw_server(bodyless) as server:
        fwd = forwarder(server.url, timeout=1.0)
        assert await get(fwd, "/", method) == (status, b"")
        assert await get(fwd, "/next") == (200, b"next")
        await fwd.close()
    assert server.connections == 1


async def test_interim_100_continue_is_skipped() -> None:
    async def continues(reader: Reader, writer: Writer, server: RawServer) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + ok(b"done"))

    async with raw_server(continues) as server:
        fwd = forwarder(server.url)
        response = await fwd.send("POST", "/", "", [("expect", "100-continue"),
                                                    ("content-length", "3")], b"abc")
        assert response.status == 200
        assert response.headers == [("content-length", "4")]
        assert await response.read(10) == b"done"
        await fwd.close()
    assert server.requests[0].body == b"abc"


async def test_request_bodies_are_framed_by_vigie_never_by_the_caller() -> None:
    async with raw_server(keep_answering) as server:
        fwd = forwarder(server.url)
        big = b"z" * 400_000
        for headers, body in (([("content-length", "3")], b"hello world"),
                              ([("transfer-encoding", "chunked")], b"hello world"),
                              ([], None),
                              ([], big)):
            response = await fwd.send("POST", "/in", "", headers, body)
            assert response.status == 200
            await response.read(100)
            await response.aclose()
        await fwd.close()
    assert [r.line for r in server.requests] == [b"POST /in HTTP/1.1"] * 4
    lied, chunked, empty, sized = server.requests
    assert lied.body == b"hello world" and ("content-length", "11") in lied.headers()
    assert ("content-length", "3") not in lied.headers()
    assert chunked.body == b"hello world" and ("content-length", "11") in chunked.headers()
    assert all(name != "transfer-encoding" for name, _ in chunked.headers())
    assert empty.body == b"" and ("content-length", "0") in empty.headers()
    assert sized.body == big
    assert server.connections == 1


async def test_slow_headers_time_out_with_504_and_close_the_connection() -> None:
    async def silent(reader: Reader, writer: Writer, server: RawServer) -> None:
        await server.read_request(reader)
        await asyncio.sleep(2)

    async with raw_server(silent) as server:
        fwd = forwarder(server.url, timeout=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamTimeout):
            await fwd.send("GET", "/", "", [], None)
        assert 0.15 < loop.time() - started < 1.0
        assert fwd.pool.open == 0
        await fwd.close()


async def test_stalled_body_times_out_in_the_iterator() -> None:
    async def stall(reader: Reader, writer: Writer, server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst")
        await writer.drain()
        await asyncio.sleep(2)

    async with raw_server(stall) as server:
        fwd = forwarder(server.url, timeout=0.2)
        response = await fwd.send("GET", "/", "", [], None)
        assert await anext(response.body) == b"first"
        with pytest.raises(UpstreamTimeout):
            await anext(response.body)
        await response.aclose()
        assert fwd.pool.open == 0
        await fwd.close()


async def test_refused_connection_is_502_without_naming_the_upstream() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fwd = forwarder(f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamError) as caught:
        await fwd.send("GET", "/", "", [], None)
    assert str(port) not in str(caught.value) and "127.0.0.1" not in str(caught.value)
    assert fwd.pool.open == 0
    await fwd.close()


async def test_reset_mid_body_raises_in_the_iterator() -> None:
    async def reset(reader: Reader, writer: Writer, server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"a" * 1000)
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    async with raw_server(reset) as server:
        fwd = forwarder(server.url)
        response = await fwd.send("GET", "/", "", [], None)
        with pytest.raises(UpstreamError):
            await response.read(1 << 20)
        await response.aclose()
        assert fwd.pool.open == 0
        await fwd.close()


@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc",
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nx: " + b"a" * 70_000,
])
async def test_malformed_response_is_502(wire: bytes) -> None:
    async def malformed(reader: Reader, writer: Writer, server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(wire)
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_server(malformed) as server:
        fwd = forwarder(server.url, timeout=0.5)
        with pytest.raises(UpstreamError):
            await fwd.send("GET", "/", "", [], None)
        assert fwd.pool.open == 0
        await fwd.close()


async def test_bytes_after_a_complete_response_spoil_the_connection() -> None:
    async def chatty(reader: Reader, writer: Writer, server: RawServer) -> None:
        while await server.read_request(reader) is not None:
            writer.write(ok(b"one") + b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nsmug!")
            await writer.drain()

    async with raw_server(chatty) as server:
        fwd = forwarder(server.url)
        assert await get(fwd) == (200, b"one")
        assert await get(fwd) == (200, b"one")  # never "smug!"
        await fwd.close()
    assert server.connections == 2


async def test_stale_idle_connection_is_retried_once_for_a_bodyless_request() -> None:
    async def one_then_drop(reader: Reader, writer: Writer, server: RawServer) -> None:
        await server.read_request(reader)
        writer.write(ok(b"first"))
        await writer.drain()
        await server.read_request(reader)  # the second request: closed without an answer

    async with raw_server(one_then_drop) as server:
        fwd = forwarder(server.url)
        assert await get(fwd) == (200, b"first")
        assert await get(fwd) == (200, b"first")  # via a fresh connection
        assert server.connections == 2
        # a POST, with or without a body, is never resent: the failure is the answer
        assert await get(fwd) == (200, b"first")
        with pytest.raises(UpstreamError):
            await fwd.send("POST", "/", "", [], b"once")
        assert await get(fwd) == (200, b"first")
        with pytest.raises(UpstreamError):
            await get(fwd, "/", "POST")
        await fwd.close()
    assert server.connections == 4


async def test_the_retry_happens_once_only() -> None:
    async def always_drop(reader: Reader, writer: Writer, server: RawServer) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            writer.write(ok(b"first"))
            await writer.drain()
        await server.read_request(reader)

    async with raw_server(always_drop) as server:
        fwd = forwarder(server.url)
        assert await get(fwd) == (200, b"first")
        with pytest.raises(UpstreamError):
            await get(fwd)
        await fwd.close()
    assert server.connections == 2


async def test_cancelled_while_waiting_for_headers_closes_the_connection() -> None:
    seen_eof = asyncio.Event()

    async def slow(reader: Reader, writer: Writer, server: RawServer) -> None:
        await server.read_request(reader)
        await reader.read()  # until the client goes away
        seen_eof.set()

    async with raw_server(slow) as server:
        fwd = forwarder(server.url)
        task = asyncio.create_task(fwd.send("GET", "/", "", [], None))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(2):
            await seen_eof.wait()
        assert fwd.pool.open == 0 and not fwd.pool.idle
        await fwd.close()


async def test_cancelled_mid_body_and_early_aclose_never_return_the_connection() -> None:
    async def half(reader: Reader, writer: Writer, server: RawServer) -> None:
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf!")
            await writer.drain()

    async with raw_server(half) as server:
        fwd = forwarder(server.url)
        response = await fwd.send("GET", "/", "", [], None)
        assert await anext(response.body) == b"half!"
        task = asyncio.create_task(anext(response.body))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await response.aclose()
        response = await fwd.send("GET", "/", "", [], None)
        await response.aclose()  # unread
        await asyncio.sleep(0.05)
        assert fwd.pool.open == 0 and not fwd.pool.idle
        await fwd.close()
    assert server.connections == 2


async def test_idle_connections_expire() -> None:
    async with raw_server(keep_answering) as server:
        fwd = forwarder(server.url)
        fwd.pool.idle_expiry = 0.1
        await get(fwd)
        await get(fwd)
        await asyncio.sleep(0.3)  # the sweeper closes it even without traffic
        assert fwd.pool.open == 0
        await get(fwd)
        await fwd.close()
    assert server.connections == 2


async def test_header_injection_and_foreign_targets_are_refused() -> None:
    async with raw_server(keep_answering) as server:
        fwd = forwarder(server.url)
        for path, headers in (("/a", [("x", "1\r\nhost: evil")]), ("/a b", []),
                              ("/a\r\nx: y", []), ("/a", [("x\nz", "1")]), ("/é", [])):
            with pytest.raises(UpstreamError):
                await fwd.send("GET", path, "", headers, None)
        with pytest.raises(UpstreamError):
            await fwd.send("GET", "/a", "q=\r\n", [], None)
        # an absolute URL as the path stays a path on the configured host
        assert await get(fwd, "http://evil.example/") == (
            200, b"GET http://evil.example/ HTTP/1.1")
        await fwd.close()
    assert len(server.requests) == 1


async def test_the_pool_is_bounded_and_lifo() -> None:
    async with raw_server(keep_answering) as server:
        fwd = forwarder(server.url, max_connections=3)
        results = await asyncio.gather(*(get(fwd, f"/{i}") for i in range(40)))
        assert [status for status, _ in results] == [200] * 40
        assert server.connections <= 3
        warmest = fwd.pool.idle[-1]
        response = await fwd.send("GET", "/", "", [], None)
        assert warmest not in fwd.pool.idle
        await response.aclose()
        assert fwd.pool.idle[-1] is warmest
        await fwd.close()


async def test_a_body_closed_early_never_reads_the_next_exchange() -> None:
    async with raw_server(keep_answering) as server:
        fwd = forwarder(server.url)
        first = await fwd.send("GET", "/one", "", [], None)
        await asyncio.sleep(0.05)  # the whole response is buffered: the connection is clean
        await first.aclose()
        second = await fwd.send("GET", "/two", "", [], None)
        with pytest.raises(UpstreamError):
            await anext(first.body)  # closed before its end: an error, never the next body
        assert await second.read(100) == b"GET /two HTTP/1.1"
        assert await anext(second.body, None) is None
        await fwd.close()
    assert server.connections == 1


async def test_a_dropped_response_gives_its_connection_back_to_the_count() -> None:
    async with raw_server(keep_answering) as server:
        fwd = forwarder(server.url)
        response = await fwd.send("GET", "/one", "", [("x", "1")], None)
        assert fwd.pool.open == 1
        del response
        gc.collect()
        assert fwd.pool.open == 0
        await fwd.close()
