"""The native upstream client: a keep-alive pool of `Connection`s behind the Forwarder seam.

Why not aiohttp: its per-request Python layer (ClientSession._request,
ClientRequest, timeout contexts, streams) was half the forwarder's CPU. Here a
request is one `transport.write` of a pre-joined head, the response is parsed
in C by llhttp (httptools) and the body is a plain async iterator over a deque.

The pool is per upstream, bounded (`max_connections` open at once; others wait),
LIFO (the warmest connection first), and forgets connections idle for more than
`idle_expiry` seconds. A connection goes back only after its response was read
to the end and the server kept it alive; a reused connection that dies before
any response byte is retried once on a fresh one, for bodyless idempotent
requests only (a bodyless POST may have been acted upon before the close).

Only the configured scheme, host and port are ever contacted; the request path
is appended to the configured base path. Headers sent: the caller's, plus Host
and the framing header (Content-Length given by the caller, else chunked).
http:// only: `app._forwarder` keeps aiohttp for https:// upstreams.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from vigie.errors import UpstreamError
from vigie.forward import UpstreamTarget, response_headers
from vigie.messages import Headers, UpstreamResponse
from vigie.upstream_connection import UNAVAILABLE, Connection, StaleConnection

IDLE_EXPIRY_SECONDS = 30.0
_SMALL_BODY = 64 * 1024  # below this, the body's first chunk joins the head's write
# RFC 9110 §9.2.2: resent only if a second copy cannot do what the first did
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class ConnectionPool:
    """Open, lend and take back connections to one host:port."""

    def __init__(self, host: str, port: int, *, timeout: float, connect_timeout: float,
                 max_connections: int = 512, idle_expiry: float = IDLE_EXPIRY_SECONDS) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.idle_expiry = idle_expiry
        self.idle: deque[Connection] = deque()  # oldest left, warmest right
        self.open = 0  # connecting, lent or idle
        self.opened_total = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing = False

    async def acquire(self) -> tuple[Connection, bool]:
        """A connection and whether it was reused; waits while `max_connections` are open."""
        while True:
            idle = self.idle
            if idle:
                now = asyncio.get_running_loop().time()
                while idle:
                    conn = idle.pop()
                    if conn.closed:
                        continue
                    if now - conn.idle_since > self.idle_expiry:
                        conn.close()  # the rest is older still
                        continue
                    return conn, True
            if self.open < self.max_connections:
                return await self.connect(), False
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()

    async def connect(self) -> Connection:
        if self._closing:
            raise UpstreamError(UNAVAILABLE)
        loop = asyncio.get_running_loop()
        self.open += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, self.timeout, self._forget), self.host, self.port)
        except (OSError, TimeoutError) as exc:
            self.open -= 1
            self._wake_one()
            raise UpstreamError(UNAVAILABLE) from exc
        except BaseException:
            self.open -= 1
            self._wake_one()
            raise
        self.opened_total += 1
        return conn

    def release(self, conn: Connection) -> None:
        """Back into the pool if clean and kept alive; closed otherwise."""
        if self._closing or not conn.reusable:
            conn.close()
            return
        loop = conn.loop
        now = conn.idle_since = loop.time()
        idle = self.idle
        idle.append(conn)
        while idle and now - idle[0].idle_since > self.idle_expiry:
            idle.popleft().close()
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.idle_expiry, self._sweep)
        self._wake_one()

    def _sweep(self) -> None:
        self._sweeper = None
        if not self.idle:
            return
        now = self.idle[-1].loop.time()
        while self.idle and (self.idle[0].closed
                             or now - self.idle[0].idle_since > self.idle_expiry):
            self.idle.popleft().close()
        if self.idle:
            self._sweeper = self.idle[0].loop.call_later(self.idle_expiry, self._sweep)

    def _forget(self, conn: Connection) -> None:
        self.open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        while self.idle:
            self.idle.pop().close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


class UpstreamBody:
    """The response body as it arrives; hands the connection back once read to the end."""

    __slots__ = ("_conn", "_pool", "_done", "_ended")

    def __init__(self, conn: Connection, pool: ConnectionPool) -> None:
        self._conn = conn
        self._pool = pool
        self._done = False  # the connection is no longer ours: never touch it again
        self._ended = False  # ...because the body was read to its end

    def __aiter__(self) -> UpstreamBody:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            if self._ended:
                raise StopAsyncIteration
            raise UpstreamError(UNAVAILABLE)  # failed, cancelled or closed before the end
        conn = self._conn
        while True:
            chunk = conn.next_chunk()
            if chunk is not None:
                return chunk
            if conn.complete:
                self._ended = True
                await self.aclose()
                raise StopAsyncIteration
            if conn.error is not None:
                await self.aclose()
                raise conn.error
            try:
                await conn.wait()
            except BaseException:  # cancelled: the connection is half-read
                await self.aclose()
                raise

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        if self._conn.complete:
            self._pool.release(self._conn)
        else:
            self._conn.close()

    def __del__(self) -> None:
        if not self._done:  # dropped unread: the pool must not count it forever
            self._conn.close()


class NativeForwarder:
    """The Forwarder seam over `ConnectionPool`: http:// upstreams only."""

    def __init__(self, upstream: str, *, timeout: float, connect_timeout: float,
                 max_connections: int = 512) -> None:
        target = UpstreamTarget.parse(upstream)
        if target.scheme != "http":
            raise ValueError("the native forwarder needs an http:// upstream")
        self._base_path = target.base_path
        self._host_line = f"host: {target.netloc}\r\n"
        self.pool = ConnectionPool(target.host, target.port or 80, timeout=timeout,
                                   connect_timeout=connect_timeout,
                                   max_connections=max_connections)

    def head(self, method: str, path: str, query: str, headers: Headers,
             chunked: bool) -> bytes:
        """Request line and headers, refused if anything would split a line."""
        target = self._base_path + path
        if query:
            target += "?" + query
        parts = [method, " ", target, " HTTP/1.1\r\n", self._host_line]
        lines = 2
        for name, value in headers:
            if name == "host" or name == "transfer-encoding":
                continue  # the configured host, and our own framing
            parts += (name, ": ", value, "\r\n")
            lines += 1
        if chunked:
            parts.append("transfer-encoding: chunked\r\n")
            lines += 1
        parts.append("\r\n")
        text = "".join(parts)
        # one C pass instead of a check per header: a CR or LF too many is refused
        if (text.count("\n") != lines + 1 or text.count("\r") != lines + 1
                or " " in target or " " in method or not target.isascii()):
            raise UpstreamError(UNAVAILABLE)
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise UpstreamError(UNAVAILABLE) from exc

    async def send(self, method: str, path: str, query: str, headers: Headers,
                   body: AsyncIterator[bytes] | None) -> UpstreamResponse:
        pool = self.pool
        if body is None:
            head = self.head(method, path, query, headers, False)
            conn, reused = await pool.acquire()
            try:
                conn.begin(method, head)
                await conn.wait_headers()
            except StaleConnection:
                conn.close()
                if not reused or method not in _IDEMPOTENT:
                    raise
                conn = await pool.connect()  # the idle one was dead: once more, fresh
                try:
                    conn.begin(method, head)
                    await conn.wait_headers()
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                conn.close()
                raise
        else:
            conn = await self._send_with_body(method, path, query, headers, body)
        return UpstreamResponse(status=conn.status, headers=response_headers(conn.raw_headers),
                                body=(stream := UpstreamBody(conn, pool)), aclose=stream.aclose)

    async def _send_with_body(self, method: str, path: str, query: str, headers: Headers,
                              body: AsyncIterator[bytes]) -> Connection:
        declared = next((value for name, value in headers if name == "content-length"), None)
        expected = -1
        if declared is not None:
            try:
                expected = int(declared)
            except ValueError as exc:
                raise UpstreamError(UNAVAILABLE) from exc
        chunked = declared is None
        head = self.head(method, path, query, headers, chunked)
        first = await anext(body, None)
        while first == b"":  # an empty chunk would end a chunked body
            first = await anext(body, None)
        conn, _ = await self.pool.acquire()
        try:
            sent = 0
            if first is None:
                conn.begin(method, head)
            else:
                sent = len(first)
                framed = _chunk(first) if chunked else first
                if len(framed) < _SMALL_BODY:
                    conn.begin(method, head + framed)
                else:
                    conn.begin(method, head)
                    conn.write(framed)
            async for chunk in body:
                if conn.headers_done or conn.closed:
                    conn.dirty = True  # answered early: the rest is not sent
                    break
                if not chunk:
                    continue
                sent += len(chunk)
                conn.write(_chunk(chunk) if chunked else chunk)
                if conn.writing_paused:
                    await conn.drain()
            else:
                if chunked:
                    conn.write(b"0\r\n\r\n")
                elif sent != expected:
                    raise UpstreamError(UNAVAILABLE)
            await conn.wait_headers()
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        await self.pool.close()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)
