"""Bounds on what a client may send before it is authenticated: header size and time.

uvicorn's httptools protocol keeps reading a request head for as long and as large
as the client likes. `BoundedHeadProtocol` caps the request line and headers at
`max_header_bytes` (431, then close) and gives them `header_timeout` seconds from
the connection's opening, or from the first byte of the next request, to arrive
(408, then close): a client that trickles or inflates its headers holds one
socket and a few kilobytes, never the process.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_PROBLEMS = {
    408: (b"408 Request Timeout", "https://vigie.dev/problems/request-timeout",
          "Request timeout"),
    431: (b"431 Request Header Fields Too Large",
          "https://vigie.dev/problems/request-header-fields-too-large",
          "Request header fields too large"),
}


class BoundedHeadProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a size cap and a deadline on every request head."""

    max_header_bytes = 32_768
    header_timeout = 10.0

    _head_timer: asyncio.TimerHandle | None = None
    _in_head = True
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._refuse, 408)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int) -> None:
        """Answer and close; a head too slow behind a response under way waits for its end."""
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            if status == 408:  # a pipelined head during a long export: not the export's fault
                self._arm()
                return
            self.transport.close()  # too large: never answered in the middle of a response
            return
        line, kind, title = _PROBLEMS[status]
        body = orjson.dumps({"type": kind, "title": title, "status": status})
        self.transport.write(b"HTTP/1.1 %b\r\ncontent-type: application/problem+json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%b"
                             % (line, len(body), body))
        self.transport.close()


def bounded(protocol: type[BoundedHeadProtocol], max_header_bytes: int,
            header_timeout: float) -> type[BoundedHeadProtocol]:
    """`protocol` with these bounds (uvicorn instantiates the class it is given)."""
    return type(protocol.__name__, (protocol,), {"max_header_bytes": max_header_bytes,
                                                  "header_timeout": header_timeout})
