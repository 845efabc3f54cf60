"""Encoded NIRs: percent-encoding, HTML entities, `\\uXXXX` escapes and base64.

Each form is found by decoding a view of the text and running the plain scanner
(`nir.find`, passed in as `find`) over it, and is masked in its own encoding, so
the result keeps its length and stays a valid URL, HTML text or base64 run:

- Escapes (`%31%38`, `1%2085%2005`, `&#49;`, `&nbsp;`, `\\u0031`): decoded in
  a view that remembers where each decoded character came from; a NIR found
  in the view masks the original characters it came from with `*` (a valid
  URL character, valid HTML text). Up to three layers (`%26%2349%3B`).
- Base64 and base64url runs of 20 characters or more (15 bytes, the shortest
  encoded NIR): decoded at each of the four alignments (a run may begin with
  a path or a prefix), the bytes read as UTF-8 (else latin-1) and scanned;
  the NIR's bytes become `*` and the run is re-encoded in its own alphabet,
  same length, same padding.

Cheap pre-filters: nothing is decoded unless the text holds `%`, `&` or `\\u`,
or a base64-alphabet run of 20 characters (found with `bytes.translate`, in C)
with a letter in it.
"""

from __future__ import annotations

import binascii
import re
from bisect import bisect_right
from collections.abc import Callable
from html.entities import html5

Span = tuple[int, int]
Finder = Callable[[str], list[Span]]

_ESCAPE = re.compile(r"(?:%[0-9A-Fa-f]{2})+|&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}"
                     r"|[A-Za-z][A-Za-z0-9]{1,31});?|\\u[0-9A-Fa-f]{4}")
_LAYERS = 3
B64_MIN = 20  # base64 of 15 bytes
_B64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{20,}={0,2}")
# Base64 characters (both alphabets) -> `b`, any other byte -> `x`: runs found in C.
BASE64_CHARS = bytes(ord("b") if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "+/_-")
                     else ord("x") for b in range(256))
BASE64_RUN = b"b" * B64_MIN
_HAS_LETTER = re.compile(r"[A-Za-z]")
_TO_STANDARD = str.maketrans("-_", "+/")
_TO_URL = str.maketrans("+/", "-_")
_MASK_BYTE = ord("*")

# A view segment: (view start, view end, original start, original end, literal).
_Segment = tuple[int, int, int, int, bool]


def might_hold_escapes(text: str) -> bool:
    return "%" in text or "&" in text or "\\u" in text


def _decode_escape(token: str) -> list[tuple[str, int, int]] | None:
    """(character, start, end within the token) for each decoded character; None when
    the token is not an escape after all (an unknown entity name)."""
    if token[0] == "%":
        raw = bytes.fromhex(token.replace("%", ""))
        try:
            text = raw.decode("utf-8")
            sizes = [len(char.encode("utf-8")) for char in text]
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
            sizes = [1] * len(text)
        out, pos = [], 0
        for char, size in zip(text, sizes, strict=True):
            out.append((char, pos * 3, (pos + size) * 3))
            pos += size
        return out
    if token[0] == "\\":
        return [(chr(int(token[2:], 16)), 0, len(token))]
    body = token[1:].rstrip(";")
    if body.startswith(("#x", "#X")):
        code = int(body[2:], 16)
    elif body.startswith("#"):
        code = int(body[1:])
    else:
        value = html5.get(body + ";") if token.endswith(";") else html5.get(body)
        return None if value is None else [(value, 0, len(token))]
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return [(chr(code), 0, len(token))]


def _view(text: str) -> tuple[str, list[_Segment]] | None:
    """The text with its escapes decoded, and where each part came from."""
    parts: list[str] = []
    segments: list[_Segment] = []
    view_pos = last = 0
    for match in _ESCAPE.finditer(text):
        decoded = _decode_escape(match.group())
        if decoded is None:
            continue
        start = match.start()
        if start > last:
            segments.append((view_pos, view_pos + start - last, last, start, True))
            parts.append(text[last:start])
            view_pos += start - last
        for char, begin, end in decoded:
            segments.append((view_pos, view_pos + len(char), start + begin, start + end, False))
            parts.append(char)
            view_pos += len(char)
        last = match.end()
    if not segments:
        return None
    if last < len(text):
        segments.append((view_pos, view_pos + len(text) - last, last, len(text), True))
        parts.append(text[last:])
    return "".join(parts), segments


def _to_original(span: Span, segments: list[_Segment], starts: list[int]) -> Span:
    def locate(pos: int, end: bool) -> int:
        view_start, _, orig_start, orig_end, literal = segments[bisect_right(starts, pos) - 1]
        if literal:
            return orig_start + pos - view_start + (1 if end else 0)
        return orig_end if end else orig_start
    return locate(span[0], False), locate(span[1] - 1, True)


def escaped_spans(text: str, find: Finder) -> list[Span]:
    """Spans of `text` (original offsets) that spell a NIR once their escapes are decoded."""
    if not might_hold_escapes(text):
        return []
    layers: list[list[_Segment]] = []
    current = text
    found: list[Span] = []
    for _ in range(_LAYERS):
        view = _view(current)
        if view is None:
            break
        current, segments = view
        layers.append(segments)
        for span in find(current):
            for segments_of in reversed(layers):
                span = _to_original(span, segments_of, [s[0] for s in segments_of])
            found.append(span)
        if not might_hold_escapes(current):
            break
    return _disjoint(found)


def _disjoint(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end in sorted(set(spans)):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


def _base64_run(run: str, find: Finder) -> tuple[str, int]:
    """The run with every NIR its decoded bytes hold masked and re-encoded; the count."""
    body = run.rstrip("=")
    url = "-" in body or "_" in body
    standard = body.translate(_TO_STANDARD)
    for shift in range(4):
        part = standard[shift:]
        if len(part) % 4 == 1:
            part = part[:-1]
        if len(part) < B64_MIN:
            break
        try:
            raw = binascii.a2b_base64(part + "=" * (-len(part) % 4), strict_mode=True)
        except binascii.Error:
            continue
        try:
            text, utf8 = raw.decode("utf-8"), True
        except UnicodeDecodeError:
            text, utf8 = raw.decode("latin-1"), False
        spans = _disjoint(find(text) + escaped_spans(text, find)) or _tail_spans(text, find)
        if not spans:
            continue
        masked = bytearray(raw)
        for start, end in spans:
            if utf8:
                start, end = len(text[:start].encode()), len(text[:end].encode())
            masked[start:end] = bytes([_MASK_BYTE]) * (end - start)
        encoded = binascii.b2a_base64(bytes(masked), newline=False).decode("ascii")
        encoded = encoded[:len(part)]
        if url:
            encoded = encoded.translate(_TO_URL)
        return run[:shift] + encoded + run[shift + len(part):], len(spans)
    return run, 0


def has_base64_run(data: bytes, between: bytes = b"") -> bool:
    """The pre-filter, in C (~1 ns a byte): a run of `B64_MIN` base64 characters, once the
    bytes in `between` are deleted."""
    return BASE64_RUN in data.translate(BASE64_CHARS, between)


def _tail_spans(text: str, find: Finder) -> list[Span]:
    """Characters glued after a base64 run (`...Nzc` + `x`) decode into a last byte or
    two that may be a digit, making the NIR look longer than it is: retried without."""
    for cut in (1, 2):
        if len(text) <= cut or not text[-cut].isdigit():
            break
        spans = find(text[:-cut])
        if spans:
            return spans
    return []


def mask_base64(text: str, find: Finder) -> tuple[str, list[Span]]:
    """`text` with the NIRs hidden in base64 runs masked, and the runs that changed."""
    if len(text) < B64_MIN or not has_base64_run(text.encode("utf-8", "surrogatepass")):
        return text, []
    parts: list[str] = []
    spans: list[Span] = []
    last = 0
    for match in _B64_RUN.finditer(text):
        run = match.group()
        if not _HAS_LETTER.search(run):
            continue
        masked, count = _base64_run(run, find)
        if count:
            parts.append(text[last:match.start()])
            parts.append(masked)
            last = match.end()
            spans.extend([match.span()] * count)
    if not spans:
        return text, []
    parts.append(text[last:])
    return "".join(parts), spans


def mask_encoded(text: str, find: Finder) -> tuple[str, list[Span]]:
    """`text` (whose plain NIRs are already masked) with its encoded NIRs masked too."""
    spans = escaped_spans(text, find)
    if spans:
        parts: list[str] = []
        last = 0
        for start, end in spans:
            parts.append(text[last:start])
            parts.append("*" * (end - start))
            last = end
        parts.append(text[last:])
        text = "".join(parts)
    text, more = mask_base64(text, find)
    return text, spans + more
