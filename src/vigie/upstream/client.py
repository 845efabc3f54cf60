"""The native upstream client: a keep-alive pool of `Connection`s behind the Forwarder seam.

Why not aiohttp: its per-request Python layer (ClientSession._request,
ClientRequest, timeout contexts, streams) was half the forwarder's CPU. Here a
request is one `transport.write` of a pre-joined head and its (buffered) body,
the response is parsed in C by llhttp (httptools) and the body is a plain async
iterator over a deque.

The pool is per upstream, bounded (`max_connections` open at once; others wait
at most `pool_timeout`, then 504), LIFO (the warmest connection first), and
forgets connections idle for more than `idle_expiry` seconds. A connection goes
back only after its response was read to the end, framed without ambiguity, and
the server kept it alive; any byte that arrives while it is idle, or beyond the
response, discards it (counted by reason). A reused connection that dies before
any response byte is retried once on a fresh one, for idempotent requests only.

Integrity: the request is framed by Vigie (Content-Length of the buffered body,
never the caller's framing); with `echoes_request_id` a response that does not
carry the request's X-Request-ID is refused (502) and its connection discarded;
with `keepalive` off every exchange has its own connection. https:// upstreams
use `ssl_context` (verification, hostname, TLS 1.2+, see options.py).
Only the configured scheme, host and port are ever contacted; the request path
is appended to the configured base path.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import replace

from vigie.errors import UpstreamError, UpstreamTimeout
from vigie.forward import UpstreamTarget, echoed_request_id, response_headers
from vigie.messages import Headers, UpstreamResponse
from vigie.upstream.connection import TOO_SLOW, UNAVAILABLE, Connection, StaleConnection
from vigie.upstream.options import UpstreamOptions

IDLE_EXPIRY_SECONDS = 30.0
# RFC 9110 §9.2.2: resent only if a second copy cannot do what the first did
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Methods whose empty body is still announced (RFC 9110 §8.6: a POST without it is ambiguous)
_ANNOUNCE_EMPTY = frozenset({"POST", "PUT", "PATCH"})


class ConnectionPool:
    """Open, lend and take back connections to one host:port."""

    def __init__(self, host: str, port: int, options: UpstreamOptions,
                 idle_expiry: float = IDLE_EXPIRY_SECONDS) -> None:
        self.host = host
        self.port = port
        self.options = options
        self.timeout = options.timeout
        self.max_connections = options.max_connections
        self.idle_expiry = idle_expiry
        self.ssl: ssl.SSLContext | None = options.ssl_context
        self.idle: deque[Connection] = deque()  # oldest left, warmest right
        self.open = 0  # connecting, lent or idle
        self.opened_total = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing = False

    async def acquire(self) -> tuple[Connection, bool]:
        """A connection and whether it was reused; waits (bounded) while the pool is full."""
        try:
            async with asyncio.timeout(self.options.pool_timeout):
                return await self._acquire()
        except TimeoutError as exc:
            self.options.on_pool_timeout()
            raise UpstreamTimeout(TOO_SLOW) from exc

    async def _acquire(self) -> tuple[Connection, bool]:
        while True:
            idle = self.idle
            if idle:
                now = asyncio.get_running_loop().time()
                while idle:
                    conn = idle.pop()
                    conn.idle = False
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
        options = self.options
        try:
            async with asyncio.timeout(options.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, self.timeout, self._forget, options.on_discard),
                    self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None)
        except (OSError, TimeoutError, ssl.SSLError) as exc:  # SSLError: not verified
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
        if self._closing or not conn.reusable or not self.options.keepalive:
            conn.close()
            return
        loop = conn.loop
        now = conn.idle_since = loop.time()
        conn.idle = True
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
    """The Forwarder seam over `ConnectionPool`, for http:// and https:// upstreams."""

    def __init__(self, upstream: str, options: UpstreamOptions | None = None, *,
                 timeout: float | None = None, connect_timeout: float | None = None,
                 max_connections: int | None = None) -> None:
        options = options or UpstreamOptions()
        options = replace(options, timeout=timeout or options.timeout,
                          connect_timeout=connect_timeout or options.connect_timeout,
                          max_connections=max_connections or options.max_connections)
        target = UpstreamTarget.parse(upstream)
        if target.scheme not in ("http", "https"):
            raise ValueError("the native forwarder needs an http:// or https:// upstream")
        if target.scheme == "https" and options.ssl_context is None:
            options = replace(options, ssl_context=ssl.create_default_context())
        elif target.scheme == "http":
            options = replace(options, ssl_context=None)
        self.options = options
        self._base_path = target.base_path
        self._host_line = f"host: {target.netloc}\r\n"
        default_port = 443 if target.scheme == "https" else 80
        self.pool = ConnectionPool(target.host, target.port or default_port, options)

    def head(self, method: str, path: str, query: str, headers: Headers,
             length: int | None) -> bytes:
        """Request line and headers, refused if anything would split a line.

        The framing is Vigie's: Content-Length of the body it holds, never the caller's.
        """
        target = self._base_path + path
        if query:
            target += "?" + query
        parts = [method, " ", target, " HTTP/1.1\r\n", self._host_line]
        lines = 2
        for name, value in headers:
            if name in ("host", "transfer-encoding", "content-length", "connection"):
                continue  # the configured host, and our own framing
            parts += (name, ": ", value, "\r\n")
            lines += 1
        if length is not None:
            parts.append(f"content-length: {length}\r\n")
            lines += 1
        if not self.options.keepalive:
            parts.append("connection: close\r\n")
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
                   body: bytes | None) -> UpstreamResponse:
        length = len(body) if body is not None else (0 if method in _ANNOUNCE_EMPTY else None)
        message = self.head(method, path, query, headers, length)
        if body:
            message += body
        pool = self.pool
        conn, reused = await pool.acquire()
        try:
            conn.begin(method, message)
            await conn.wait_headers()
        except StaleConnection:
            conn.close()
            if not reused or method not in _IDEMPOTENT:
                raise
            conn = await pool.connect()  # the idle one was dead: once more, fresh
            try:
                conn.begin(method, message)
                await conn.wait_headers()
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        if self.options.echoes_request_id and not echoed_request_id(headers, conn.raw_headers):
            conn.close("request_id_mismatch")  # a stray response: nobody may read this line
            raise UpstreamError(UNAVAILABLE)
        return UpstreamResponse(status=conn.status, headers=response_headers(conn.raw_headers),
                                body=(stream := UpstreamBody(conn, pool)), aclose=stream.aclose)

    async def close(self) -> None:
        await self.pool.close()
