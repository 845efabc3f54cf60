"""aiohttp's response parser made as strict as h11 for the `aiohttp` upstream client option.

aiohttp parses responses leniently unless Python runs in dev mode (`-X dev`): its C
parser (llhttp) gets the lenient-headers, optional-CR and spaces-after-chunk-size flags,
its pure-Python parser `lax = True`. So it accepts framings h11 and the native client
refuse: an obs-fold continuation line, a bare LF, a chunk size followed by junk, and
`Transfer-Encoding: gzip, chunked` (a transfer coding we never asked for, passed through
undecoded). Neither the session nor the connector exposes a switch (the C parser's
flags are set in its constructor from a module constant), so here:

- `StrictResponseParser`: aiohttp's pure-Python parser with `lax = False`, lines ending
  in CRLF only, and a `Transfer-Encoding` other than exactly `chunked` refused;
- `StrictResponseHandler` builds it in place of the C parser on each connection;
- `StrictConnector` makes its connections with that handler.

It reaches into aiohttp's `ResponseHandler` (`_parser`, `_tail`) and `TCPConnector`
(`_factory`): tests/upstream_fuzz fails if an aiohttp release moves them. The pure-Python
parser is slower than llhttp; the `aiohttp` option is not the fast path (the native
client is), and correctness of framing comes first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import DEFAULT_CHUNK_SIZE
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.http_parser import HttpResponseParserPy, RawResponseMessage


class StrictResponseParser(HttpResponseParserPy):
    """No obs-fold, no bare LF, no lax chunk sizes, `chunked` as the only transfer coding."""

    lax = False

    def feed_data(self, data: bytes, SEP: Any = None,  # noqa: N803 - aiohttp's name
                  *args: Any, **kwargs: Any) -> Any:
        return super().feed_data(data, b"\r\n", *args, **kwargs)

    def parse_message(self, lines: list[bytes]) -> RawResponseMessage:
        message = super().parse_message(lines)
        codings = message.headers.getall("Transfer-Encoding", [])
        if codings and [c.strip().lower() for c in codings] != ["chunked"]:
            raise BadHttpMessage("transfer coding other than chunked")
        return message


class StrictResponseHandler(ResponseHandler):
    def set_response_params(self, **kwargs: Any) -> None:
        tail, self._tail = self._tail, b""  # fed to the strict parser, not the lenient one
        super().set_response_params(**kwargs)
        self._parser = StrictResponseParser(
            self, self._loop, kwargs.get("read_bufsize", DEFAULT_CHUNK_SIZE),
            timer=kwargs.get("timer"),
            payload_exception=aiohttp.ClientPayloadError,
            response_with_body=not kwargs.get("skip_payload", False),
            read_until_eof=kwargs.get("read_until_eof", False),
            auto_decompress=kwargs.get("auto_decompress", True),
            max_line_size=kwargs.get("max_line_size", 8190),
            max_field_size=kwargs.get("max_field_size", 8190),
            max_headers=kwargs.get("max_headers", 128))
        self._tail = tail
        self._drain_tail()


class StrictConnector(aiohttp.TCPConnector):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        strict: Callable[[], ResponseHandler] = functools.partial(StrictResponseHandler,
                                                                 loop=self._loop)
        self._factory = strict  # type: ignore[assignment]  # a ResponseHandler all the same
