"""Bodies labelled binary, scanned as bytes for the NIR rule, in bounded memory.

Real binary data (a known signature, or NUL bytes that are not UTF-16 text) is
streamed untouched. Anything else (a CSV export labelled octet-stream, a
content-encoded body) is read in every plausible reading at once: latin-1 (each
byte a character), UTF-8 (undecodable bytes kept apart), and UTF-16 in the byte
order its first bytes show (a BOM or NULs at one parity). A NIR any reading
finds, in any form, is masked in place with `*` in that reading's encoding, so
the length never changes. A window of the last `_TAIL` bytes is kept back so a
NIR that straddles two chunks is always seen whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from vigie.minimize import nir
from vigie.minimize.bodies import Job
from vigie.minimize.charset import utf16_order
from vigie.minimize.encoded import Span
from vigie.minimize.tree import count_nir

# Longer than any written NIR, in UTF-16 too, and than any escaped one (15 entities with
# `&nbsp;` between them: ~200 characters). A base64 run longer than this that straddles
# two chunks is the one form this scan can miss (docs/security.md).
_TAIL = 1024
_BINARY_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04", b"\x1f\x8b", b"BZh",
                 b"\xfd7zXZ", b"7z\xbc\xaf", b"%PDF-", b"II*\x00", b"MM\x00*", b"RIFF",
                 b"\x00\x00\x00", b"OggS", b"ID3", b"wOF", b"\xd0\xcf\x11\xe0")
_ERRORS = {"latin-1": "strict", "utf-8": "surrogateescape", "utf-16-le": "surrogatepass",
           "utf-16-be": "surrogatepass"}


def looks_binary(head: bytes) -> bool:
    """Known binary signatures, or a NUL byte early on that is not UTF-16 text."""
    if head.startswith(_BINARY_MAGIC) or head[128:132] == b"DICM":
        return True
    return b"\x00" in head[:1024] and _utf16(head) is None


def _utf16(head: bytes) -> str | None:
    if head.startswith(b"\xff\xfe"):
        return "utf-16-le"
    if head.startswith(b"\xfe\xff"):
        return "utf-16-be"
    return utf16_order(head)


def _byte_spans(window: bytes, codec: str) -> list[Span]:
    """Where `window`, read as `codec`, holds a NIR in any form (byte offsets)."""
    wide = codec.startswith("utf-16")
    data = window[: len(window) // 2 * 2] if wide else window
    text = data.decode(codec, _ERRORS[codec])
    spans = nir.scan(text)[1]
    if codec == "latin-1" or not spans:
        return spans
    errors = _ERRORS[codec]
    return [(len(text[:start].encode(codec, errors)), len(text[:end].encode(codec, errors)))
            for start, end in spans]


def _mask_before(window: bytes, cut: int, codecs: list[str], job: Job,
                 report_only: bool) -> tuple[bytes, bytes]:
    """(the bytes of `window` that can leave, masked; the bytes kept for the next chunk)."""
    found: dict[Span, str] = {}
    for codec in codecs:
        for span in _byte_spans(window, codec):
            found.setdefault(span, codec)
    wide = any(codec.startswith("utf-16") for codec in codecs)
    cut -= cut % 2 if wide else 0  # a window always starts on a code unit
    moved = True
    while moved:  # a NIR that may continue in the next chunk is kept whole for then
        moved = False
        for start, end in found:
            if start < cut < end:
                cut = start - start % 2 if wide else start
                moved = True
    masked = bytearray(window)
    count = 0
    for (start, end), codec in found.items():
        if end <= cut:
            star = nir.MASK_CHAR.encode(codec)
            masked[start:end] = (star * ((end - start) // len(star) + 1))[: end - start]
            count += 1
    if count:
        count_nir(job.decision, "text", count)
    out = window if report_only else masked
    return bytes(out[:cut]), window[cut:]


async def scan_bytes(source: AsyncIterator[bytes], job: Job, *,
                     report_only: bool) -> AsyncIterator[bytes]:
    """The body with every NIR masked in place (same length), in bounded memory.

    For bodies labelled binary: a mislabelled text export still gets the NIR rule,
    and real binary data is unchanged unless one of its readings spells a valid NIR.
    """
    window = b""
    codecs: list[str] | None = None
    async for chunk in source:
        window += chunk
        if codecs is None:
            codecs = _readings(window)
        if len(window) <= _TAIL:
            continue
        out, window = _mask_before(window, len(window) - _TAIL, codecs, job, report_only)
        if out:
            yield out
    if window:
        yield _mask_before(window, len(window), codecs or _readings(window), job,
                           report_only)[0]


def _readings(head: bytes) -> list[str]:
    wide = _utf16(head)
    return ["latin-1", "utf-8"] + ([wide] if wide is not None else [])
