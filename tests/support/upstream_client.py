"""A loopback TCP server scripted byte by byte, for the native upstream client's edge cases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


@dataclass(slots=True)
class Request:
    head: bytes
    body: bytes

    @property
    def line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def headers(self) -> list[tuple[str, str]]:
        out = []
        for raw in self.head.split(b"\r\n")[1:]:
            if raw:
                name, _, value = raw.decode("latin-1").partition(":")
                out.append((name.strip().lower(), value.strip()))
        return out


@dataclass
class RawServer:
    handler: Handler
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    closed_by_peer: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_by_peer += 1
        except asyncio.CancelledError:  # the test is over: asyncio would log a cancelled handler
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def read_request(self, reader: asyncio.StreamReader) -> Request | None:
        """One request (Content-Length or chunked body); None at a clean EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None
        request = Request(head, b"")
        headers = dict(request.headers())
        if "content-length" in headers:
            request.body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
                if size == 0:
                    break
            request.body = b"".join(parts)
        self.requests.append(request)
        return request


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    tcp = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    server.port = tcp.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        tcp.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await tcp.wait_closed()


def ok(body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), extra, body)


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         server: RawServer) -> None:
    """Answer every request on the connection with 200 and the request line as body."""
    while (request := await server.read_request(reader)) is not None:
        writer.write(ok(request.line))
        await writer.drain()
