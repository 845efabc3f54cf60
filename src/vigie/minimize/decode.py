"""Content types and content codings: what a body is, and its decoded bytes.

Decoding is incremental and every step's output is bounded, so a small
compressed body that expands past `cap` (a decompression bomb) is refused with
InspectionError after at most one piece past the cap, never held whole.
Supported codings: gzip (x-gzip, several members), deflate (zlib-wrapped, or
raw as some servers send it), br, identity, from every `Content-Encoding` header
combined. Anything else cannot be inspected.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from enum import Enum

import brotli

from vigie.errors import InspectionError
from vigie.messages import Headers

PIECE = 64 * 1024


class Kind(Enum):
    JSON = "json"
    NDJSON = "ndjson"
    TEXT = "text"
    XML = "xml"
    BINARY = "binary"  # passed through untouched where the route does not mask
    UNKNOWN = "unknown"


_BINARY_PREFIXES = ("image/", "audio/", "video/", "font/")
_BINARY_TYPES = frozenset({
    "application/octet-stream", "application/pdf", "application/zip", "application/gzip",
    "application/x-gzip", "application/x-tar", "application/x-7z-compressed",
    "application/vnd.ms-excel", "application/msword", "application/wasm",
    "application/dicom",
})
_NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson",
                           "application/jsonl", "application/x-jsonlines",
                           "application/jsonlines"})


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    """(media type in lower case, charset or None)."""
    if not value:
        return "", None
    media, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, arg = param.partition("=")
        if name.strip().lower() == "charset":
            charset = arg.strip().strip('"').lower() or None
    return media.strip().lower(), charset


def classify(media: str) -> Kind:
    if media in _NDJSON_TYPES:
        return Kind.NDJSON
    if media == "application/json" or media.endswith("+json"):
        return Kind.JSON
    if media in ("application/xml", "text/xml") or media.endswith("+xml"):
        return Kind.XML
    if media.startswith("text/"):
        return Kind.TEXT
    if media.startswith(_BINARY_PREFIXES) or media in _BINARY_TYPES:
        return Kind.BINARY
    return Kind.UNKNOWN


# The one list of content codings Vigie can undo: what `forward.py` lets the client ask
# the upstream for (Accept-Encoding), and what the minimizer decodes.
SUPPORTED_CODINGS = ("gzip", "deflate", "br")
_ALIASES = {"x-gzip": "gzip"}
_MAX_CODINGS = 4  # more layers than this is an attack on the decoder, not a response


def codings(headers: Headers) -> list[str]:
    """The content codings to undo, in the order they must be undone: every
    `Content-Encoding` header combined, in order (a list, or several headers, as RFC
    9110 says). An unknown coding, or too many, cannot be inspected (502)."""
    names = []
    for name, value in headers:
        if name != "content-encoding":
            continue
        for item in value.split(","):
            coding = item.strip().lower()
            coding = _ALIASES.get(coding, coding)
            if not coding or coding == "identity":
                continue
            if coding not in SUPPORTED_CODINGS:
                raise InspectionError("unsupported content encoding")
            names.append(coding)
    if len(names) > _MAX_CODINGS:
        raise InspectionError("unsupported content encoding")
    return list(reversed(names))


class _Stage:
    """One content coding, undone incrementally with bounded output pieces."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._zlib: zlib._Decompress | None = None
        self._brotli = brotli.Decompressor() if name == "br" else None
        self._head = b""  # deflate: the first bytes tell zlib-wrapped from raw
        if name == "gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            if self._brotli is not None:
                yield from _feed_brotli(self._brotli, data)
            else:
                yield from self._feed_zlib(data)
        except (zlib.error, brotli.error) as exc:
            raise InspectionError("undecodable compressed body") from exc

    def _feed_zlib(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        while data:
            decoder = self._zlib
            out = decoder.decompress(data, PIECE)
            if out:
                yield out
            data = decoder.unconsumed_tail
            if decoder.eof:
                rest = decoder.unused_data
                if rest and self.name != "deflate" and rest.strip(b"\0"):
                    # another gzip member follows
                    self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = rest
                elif rest.strip(b"\0"):
                    raise InspectionError("trailing data after compressed body")

    def finish(self) -> Iterator[bytes]:
        if self._brotli is not None:
            if not self._brotli.is_finished():
                raise InspectionError("truncated compressed body")
            return
        if self._zlib is None:
            if self._head:
                raise InspectionError("truncated compressed body")
            return
        tail = self._zlib.flush()
        if tail:
            yield tail
        if not self._zlib.eof:
            raise InspectionError("truncated compressed body")


def _feed_brotli(decoder: brotli.Decompressor, data: bytes) -> Iterator[bytes]:
    # With a limit, output may stay pending even once more input is accepted:
    # drain with empty input until a call yields nothing.
    out = decoder.process(data, output_buffer_limit=PIECE)
    idle = 0
    while True:
        if out:
            idle = 0
            yield out
        elif decoder.can_accept_more_data() or decoder.is_finished():
            return
        else:
            idle += 1
            if idle > 64:
                raise InspectionError("undecodable compressed body")
        out = decoder.process(b"", output_buffer_limit=PIECE)


class Decoder:
    """Undo a chain of content codings, refusing more than `cap` decoded bytes."""

    def __init__(self, names: list[str], cap: int) -> None:
        self._stages = [_Stage(name) for name in names]
        self._cap = cap
        self.size = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield from self._through(0, data)

    def finish(self) -> Iterator[bytes]:
        for index, stage in enumerate(self._stages):
            for piece in stage.finish():
                yield from self._through(index + 1, piece)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            if data:
                self.size += len(data)
                if self.size > self._cap:
                    raise InspectionError("decoded response too large to inspect")
                yield data
            return
        for piece in self._stages[index].feed(data):
            yield from self._through(index + 1, piece)


def decode_all(raw: bytes, names: list[str], cap: int) -> bytes:
    if not names:
        if len(raw) > cap:
            raise InspectionError("response too large to inspect")
        return raw
    decoder = Decoder(names, cap)
    pieces = list(decoder.feed(raw))
    pieces.extend(decoder.finish())
    return b"".join(pieces)


async def decode_stream(body: AsyncIterator[bytes], names: list[str],
                        cap: int) -> AsyncIterator[bytes]:
    """Decoded pieces of a streamed body; the raw and decoded sizes are both capped."""
    decoder = Decoder(names, cap)
    raw_size = 0
    async for chunk in body:
        raw_size += len(chunk)
        if raw_size > cap:
            raise InspectionError("response too large to inspect")
        for piece in decoder.feed(chunk):
            yield piece
    for piece in decoder.finish():
        yield piece
