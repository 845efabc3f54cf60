"""One HTTP/1.1 connection to the upstream: write a request, parse its response.

An asyncio Protocol fed by `httptools.HttpResponseParser` (llhttp, as in
uvicorn). The response body is buffered in a deque with backpressure: reading
pauses above `HIGH_WATER` bytes and resumes when the consumer drains below
`LOW_WATER`. Every wait (headers, body, drain) is bounded by one
`loop.call_later` timer armed only while something waits. Errors become
UpstreamError / UpstreamTimeout and never name the upstream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import httptools

from vigie.errors import UpstreamError, UpstreamTimeout

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
UNAVAILABLE = "the upstream service is unavailable"
TOO_SLOW = "the upstream service did not answer in time"


class StaleConnection(UpstreamError):
    """The connection died before any response byte: safe to resend a bodyless request."""


class Connection(asyncio.Protocol):
    """Idle in the pool, or carrying exactly one request/response exchange."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float,
                 on_closed: Callable[[Connection], None],
                 on_discard: Callable[[str], None] = lambda reason: None) -> None:
        self.loop = loop
        self.timeout = timeout
        self.on_closed = on_closed
        self.on_discard = on_discard
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle = False  # in the pool: any byte now is a response nobody asked for
        self.discard_reason: str | None = None  # why it must never be reused, once known
        self.idle_since = 0.0
        self.uses = 0
        self.chunks: deque[bytes] = deque()
        self._reset("GET")

    def _reset(self, method: str) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = method == "HEAD"
        self.status = 0
        self.raw_headers: list[tuple[str, str]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.dirty = False  # bytes beyond this response: never reuse
        self.framed = False  # Content-Length or chunked: EOF is not the end
        self.received = 0
        self.chunks.clear()
        self.buffered = 0
        self.reading_paused = False
        self.error: UpstreamError | UpstreamTimeout | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.writing_paused = False

    def begin(self, method: str, head: bytes) -> None:
        """Start an exchange: fresh parser and state, then one write for the head."""
        self._reset(method)
        self.uses += 1
        self.write(head)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    # ---- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream socket's transport

    def data_received(self, data: bytes) -> None:
        if self.complete:  # nothing may follow a complete response (no pipelining)
            self.spoil("idle_bytes" if self.idle else "extra_bytes")
            self.close()
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.discard_reason is None:
                self.discard_reason = "extra_bytes" if self.complete else "malformed"
            self._fail(UpstreamError(UNAVAILABLE))
            return
        if not self.headers_done and self.received > MAX_HEAD_BYTES:
            self.discard_reason = self.discard_reason or "malformed"
            self._fail(UpstreamError(UNAVAILABLE))
            return
        if self.buffered > HIGH_WATER and not self.reading_paused and not self.complete:
            self.reading_paused = True
            if self.transport is not None:
                self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost decides what EOF means

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.on_closed(self)
        if not self.complete and self.error is None:
            if self.headers_done and not self.framed and exc is None:
                self.complete = True  # a close-delimited body ends here
            elif self.received == 0:
                self.error = StaleConnection(UNAVAILABLE)
            else:
                self.error = UpstreamError(UNAVAILABLE)
        self._wake()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake()

    # ---- httptools callbacks ----------------------------------------------------------

    # Once `dirty`, the parser is reading bytes nobody asked for: they change nothing.

    def spoil(self, reason: str) -> None:
        """Bytes beyond this response, or framing that cannot be trusted: never reuse."""
        self.dirty = True
        if self.discard_reason is None:
            self.discard_reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.dirty:
            return
        self.raw_headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self.dirty:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:  # never asked for an upgrade
                self.discard_reason = "interim_upgrade"
                raise httptools.HttpParserError("unexpected upgrade")
            self.raw_headers = []  # 100 Continue and friends: skipped
            return
        self.status = status
        self.headers_done = True
        lengths = 0
        for name, value in self.raw_headers:
            if name == "content-length" or (name == "transfer-encoding"
                                            and "chunked" in value.lower()):
                self.framed = True
            if name in ("content-length", "transfer-encoding"):
                lengths += 1
        if lengths > 1:  # both, or twice (llhttp may tolerate it): the end is a guess
            self.discard_reason = "malformed"
            raise httptools.HttpParserError("ambiguous framing")
        if self.head_only or status in (204, 304):
            self.framed = True
            if self.head_only:  # llhttp would wait for the announced body
                self.complete = True
                self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.head_only or self.dirty:
            self.spoil("extra_bytes")
            return
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.dirty or not self.headers_done:  # the end of a 1xx
            return
        if self.head_only:
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_begin(self) -> None:
        if self.complete:  # a second response nobody asked for
            self.spoil("extra_bytes")

    # ---- waiting ----------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError | UpstreamTimeout) -> None:
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def _timed_out(self) -> None:
        self.discard_reason = self.discard_reason or "timeout"
        self._fail(UpstreamTimeout(TOO_SLOW))

    async def wait(self) -> None:
        """Until something happens (data, EOF, drain) or `timeout` of silence."""
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(self.timeout, self._timed_out)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    async def wait_headers(self) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            if self.closed:
                raise UpstreamError(UNAVAILABLE)
            await self.wait()

    async def drain(self) -> None:
        """Write-side flow control; stops early if the response started or failed."""
        while self.writing_paused and not self.headers_done:
            if self.error is not None:
                raise self.error
            if self.closed:
                raise UpstreamError(UNAVAILABLE)
            await self.wait()

    def next_chunk(self) -> bytes | None:
        """A buffered chunk, resuming reads once below the low-water mark; None if empty."""
        if not self.chunks:
            return None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.reading_paused and self.buffered <= LOW_WATER:
            self.reading_paused = False
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()
        return chunk

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.dirty and not self.closed \
            and self.error is None

    def close(self, reason: str | None = None) -> None:
        """Abort now: a half-read connection never goes back into anyone's hands.

        `reason` (or the one already known) is counted as a discarded connection;
        a connection closed because the exchange simply ended is not counted.
        """
        if self.closed:
            return
        self.closed = True
        counted = self.discard_reason or reason
        if counted is None and not self.complete:
            counted = "incomplete"
        if counted is not None:
            self.on_discard(counted)
        if not self.complete and self.error is None:
            self.error = UpstreamError(UNAVAILABLE)
        if self.transport is not None:
            self.transport.abort()
        self.on_closed(self)
        self._wake()
