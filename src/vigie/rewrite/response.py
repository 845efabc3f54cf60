"""The last step before a response leaves: upstream links in it point at Vigie instead.

Applied to every response the upstream answered, after minimization and in every
mode (report-only changes what is enforced, not where a client's next request goes):
- every header value (`Location`, `Content-Location`, `Link`, `Refresh`...);
- a body that can be read as text (JSON, FHIR, NDJSON, XML, HTML, CSV, any text, and
  a binary-labelled body whose first bytes are text): every upstream URL rewritten,
  also JSON-escaped or percent-encoded ones; a UTF-16/32 body is decoded first;
  a body still content-encoded (report-only sends what the upstream sent) is decoded
  when it names the upstream, and then sent decoded;
- a body that cannot be rewritten in place (real binary data: a PDF, an image, an
  archive) and names the upstream is refused (502; a stream is cut, as for any
  stream that fails inspection). Empty bodies pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from vigie.errors import InspectionError
from vigie.messages import Headers, OutgoingResponse
from vigie.minimize.bytescan import looks_binary
from vigie.minimize.decode import Kind, classify, codings, decode_all, parse_content_type
from vigie.minimize.minimizer import primed
from vigie.rewrite.urls import Links

_WIDE = ("utf-16", "utf-32", "utf16", "utf32", "ucs-2")  # not ASCII-compatible
# Headers that describe the bytes as the upstream sent them: wrong once rewritten.
_ENCODED_BODY_HEADERS = frozenset({"content-length", "content-encoding", "etag", "content-md5",
                                   "digest", "content-digest", "repr-digest", "content-range",
                                   "accept-ranges"})
UNREWRITABLE = "response names the upstream in a body that cannot be rewritten"


async def rewrite_response(response: OutgoingResponse, links: Links, max_bytes: int) -> None:
    """Rewrites `response` in place (headers now, a streamed body as it is sent; its first
    piece now, so that a refusal there is still a clean 502)."""
    response.headers = [(name, links.in_text(value)) for name, value in response.headers]
    content_type = response.media_type or _header(response.headers, "content-type")
    media, charset = parse_content_type(content_type)
    body = response.body
    if isinstance(body, bytes | bytearray):
        if body:
            response.body = _whole(bytes(body), response, links, media, charset, max_bytes)
    else:
        response.body = await primed(_streamed(body, links, classify(media) is Kind.BINARY,
                                               charset))


def _whole(body: bytes, response: OutgoingResponse, links: Links, media: str,
           charset: str | None, max_bytes: int) -> bytes:
    names = codings(response.headers)
    plain = decode_all(body, names, max_bytes) if names else body
    out = _rewritten(plain, links, media, charset)
    if out is plain:
        return body  # nothing to rewrite: sent as the upstream encoded it
    # New bytes: the upstream's coding, validators and digests no longer describe them.
    response.headers = [(k, v) for k, v in response.headers if k not in _ENCODED_BODY_HEADERS]
    return out


def _rewritten(body: bytes, links: Links, media: str, charset: str | None) -> bytes:
    """The decoded body with its upstream links rewritten (the same object if none)."""
    if charset is not None and charset.startswith(_WIDE):
        try:
            text = body.decode(charset)
            new = links.in_text(text)
            return body if new is text else new.encode(charset)
        except (UnicodeError, LookupError) as exc:
            raise InspectionError("response body does not match its charset") from exc
    if classify(media) is Kind.BINARY and looks_binary(body[:1024]):
        if links.found(body):
            raise InspectionError(UNREWRITABLE)
        return body
    return links.in_bytes(body)


async def _streamed(body: AsyncIterator[bytes], links: Links, binary_type: bool,
                    charset: str | None) -> AsyncIterator[bytes]:
    """Streamed bodies arrive decoded (the minimizer decodes every stream it scans)."""
    try:
        if charset is not None and charset.startswith(_WIDE):
            raise InspectionError("a streamed response in a wide charset cannot be inspected")
        first = True
        feed = links.chunker()
        tail = b""
        checked_only = False
        async for piece in body:
            if first:
                checked_only = binary_type and looks_binary(piece[:1024])
                first = False
            if checked_only:  # real binary data: never changed, refused if it names us
                if links.found(tail + piece):
                    raise InspectionError(UNREWRITABLE)
                tail = (tail + piece)[-links.hold:]
                yield piece
                continue
            out = feed(piece, False)
            if out:
                yield out
        if not checked_only:
            last = feed(b"", True)
            if last:
                yield last
    finally:
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()


def _header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None
