"""Differential fuzzing of the upstream clients against h11 (used only here, as reference).

Hypothesis writes the raw bytes of a first upstream response (status line variants,
header casing and folding, duplicate and conflicting Content-Length, chunked with
extensions, trailers and bad sizes, 1xx before the final response, bodies on HEAD,
extra bytes after the response, early close). The client under test and h11 read the
same bytes. Any disagreement fails, except where the client refuses while h11 accepts
(stricter is allowed); then the connection must not be reused. A second request, for
another patient, always follows: its answer must be its own, never a byte of the first.
`VIGIE_FUZZ_EXAMPLES` raises the number of examples (the long mode).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.upstream_client import RawServer, raw_server
from vigie.errors import UpstreamError, UpstreamTimeout
from vigie.forward import AiohttpForwarder
from vigie.upstream_client import NativeForwarder

EXAMPLES = int(os.environ.get("VIGIE_FUZZ_EXAMPLES", "60"))
FIRST = b'{"id":"A","last_name":"Patient-A"}'
TIMEOUT = 1.0  # a response that never completes is cut by the client's read timeout


@dataclass(frozen=True)
class Scripted:
    method: str
    raw: bytes  # what the upstream writes for the first request
    close: bool  # the upstream closes the connection after writing it


def _chunked(body: bytes, sizes: list[int], extension: bytes, trailer: bytes,
             lie: int) -> bytes:
    out, rest = b"", body
    for size in sizes:
        part, rest = rest[:size], rest[size:]
        if part:
            out += b"%x%s\r\n%s\r\n" % (len(part) + lie, extension, part)
    if rest:
        out += b"%x\r\n%s\r\n" % (len(rest), rest)
    return out + b"0\r\n" + trailer + b"\r\n"


@st.composite
def scripted(draw: st.DrawFn) -> Scripted:
    method = draw(st.sampled_from(["GET", "GET", "HEAD"]))
    status = draw(st.sampled_from([b"200 OK", b"200 OK", b"204 No Content", b"304 Not Modified",
                                   b"404 Not Found", b"200", b"200 ", b"999 Odd"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"http/1.1"]))
    informational = draw(st.lists(st.sampled_from([
        b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n",
    ]), max_size=2))
    body = FIRST
    framing = draw(st.sampled_from(["cl", "cl", "chunked", "none", "cl+te", "cl-dup",
                                    "cl-conflict", "cl-short", "cl-long", "cl-sign"]))
    name = draw(st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]))
    headers = [b"content-type: application/json"]
    payload = body
    if framing == "cl":
        headers.append(name + b": %d" % len(body))
    elif framing == "cl-dup":
        headers += [name + b": %d" % len(body)] * 2
    elif framing == "cl-conflict":
        headers += [name + b": %d" % len(body), name + b": %d" % (len(body) - 3)]
    elif framing == "cl-short":
        headers.append(name + b": %d" % (len(body) - 5))
    elif framing == "cl-long":
        headers.append(name + b": %d" % (len(body) + 5))
    elif framing == "cl-sign":
        headers.append(name + b": +%d" % len(body))
    if framing in ("chunked", "cl+te"):
        headers.append(draw(st.sampled_from([b"Transfer-Encoding: chunked",
                                             b"transfer-encoding: CHUNKED",
                                             b"Transfer-Encoding: gzip, chunked"])))
        if framing == "cl+te":
            headers.append(b"Content-Length: 3")
        sizes = draw(st.lists(st.integers(1, 20), min_size=1, max_size=4))
        extension = draw(st.sampled_from([b"", b"", b";ext=1", b";a=\"b\""]))
        trailer = draw(st.sampled_from([b"", b"", b"x-trailer: 1\r\n"]))
        lie = draw(st.sampled_from([0, 0, 0, 1, -1]))
        payload = _chunked(body, sizes, extension, trailer, lie)
    if draw(st.booleans()):
        headers.append(b"X-Folded: a\r\n b")
    if draw(st.integers(0, 9)) == 0:
        headers.append(b"Connection: close")
    if method == "HEAD" and draw(st.booleans()):
        payload = b""  # a correct HEAD answer
    extra = draw(st.sampled_from([b"", b"", b"", b"stray",
                                  b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nPatient-A-2!"]))
    if draw(st.integers(0, 9)) == 0:
        payload = payload[: len(payload) // 2]  # early close mid-body
        extra = b""
    raw = (b"".join(informational) + version + b" " + status + b"\r\n"
           + b"\r\n".join(headers) + b"\r\n\r\n" + payload + extra)
    return Scripted(method, raw, close=draw(st.booleans()))


def reference(script: Scripted) -> tuple[int, bytes] | None:
    """What h11 makes of the bytes: (status, body), or None when it refuses or is unsure."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=script.method, target="/patients/A",
                          headers=[("host", "upstream")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(script.raw)
    if script.close:
        conn.receive_data(b"")
    status, body = 0, b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return None
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, body
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return None
    except h11.RemoteProtocolError:
        return None


def _answer(request_line: bytes) -> bytes:
    body = b"own:" + request_line.split(b" ")[1]
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


def _handler(script: Scripted):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: RawServer) -> None:
        first = server.connections == 1
        while (request := await server.read_request(reader)) is not None:
            if first:
                first = False
                writer.write(script.raw)
                await writer.drain()
                if script.close:
                    return
                continue
            writer.write(_answer(request.line))
            await writer.drain()
    return handle


def _forwarder(kind: str, url: str) -> NativeForwarder | AiohttpForwarder:
    if kind == "native":
        return NativeForwarder(url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
    return AiohttpForwarder(url, timeout=TIMEOUT, connect_timeout=TIMEOUT)


async def _fetch(forwarder: NativeForwarder | AiohttpForwarder, method: str,
                 path: str) -> tuple[int, bytes] | None:
    try:
        response = await forwarder.send(method, path, "", [("accept", "*/*")], None)
        try:
            body = b"".join([chunk async for chunk in response.body])
        finally:
            await response.aclose()
    except (UpstreamError, UpstreamTimeout):
        return None
    return response.status, body


async def _run(kind: str, script: Scripted) -> tuple[tuple[int, bytes] | None,
                                                     tuple[int, bytes] | None, int]:
    async with raw_server(_handler(script)) as server:
        forwarder = _forwarder(kind, server.url)
        try:
            first = await _fetch(forwarder, script.method, "/patients/A")
            second = await _fetch(forwarder, "GET", "/patients/B")
        finally:
            await forwarder.close()
        return first, second, server.connections


@pytest.mark.parametrize("kind", ["native", "aiohttp"])
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(script=scripted())
def test_a_client_reads_what_h11_reads_and_never_shifts_a_response(
        kind: str, script: Scripted) -> None:
    first, second, connections = asyncio.run(_run(kind, script))
    expected = reference(script)
    if first is not None:
        assert expected is not None, f"{kind} accepted what h11 refuses: {first}"
        assert first == expected, (first, expected)
    # Whatever happened to the first, the second request gets its own answer.
    assert second == (200, b"own:/patients/B"), second
    if first is None and not script.close:
        assert connections == 2, "a refused response left its connection in the pool"
