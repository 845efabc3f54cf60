"""Streamed bodies in bounded memory: NDJSON and JSON arrays record by record
(bodies labelled binary are scanned as bytes in `bytescan.py`).

The splitters cut decoded bytes into one record at a time (an NDJSON line, a
top-level array element) without parsing the rest; each record is then parsed,
minimized and serialized alone. Output is batched into pieces of about 64 KiB.
Any error raises out of the iterator: the stream is aborted, and no byte of a
record is ever emitted before that record was scanned.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol

import orjson

from vigie.errors import InspectionError
from vigie.minimize.bodies import WITHHELD, Job, dump_json
from vigie.minimize.decode import PIECE
from vigie.minimize.tree import MAX_DEPTH

# A whole string in one match, or a lone quote when its end has not arrived yet.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{},]', re.DOTALL)
_INSIDE = re.compile(rb'["\\]')
_BLANK = b" \t\r\n"


class Splitter(Protocol):
    def feed(self, data: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


class LineSplitter:
    """NDJSON lines (without their newline)."""

    def __init__(self, max_line: int) -> None:
        self._tail = b""
        self._max = max_line

    def feed(self, data: bytes) -> list[bytes]:
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > self._max:
            raise InspectionError("NDJSON line too long to inspect")
        return lines

    def finish(self) -> list[bytes]:
        tail, self._tail = self._tail, b""
        return [tail] if tail.strip(_BLANK) else []


class ArraySplitter:
    """The elements of one top-level JSON array, as raw bytes, as they complete."""

    def __init__(self, max_element: int) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._start = 0  # where the current element began in _buf
        self._depth = 0  # 1 inside the top-level array
        self._in_string = False
        self._done = False
        self._count = 0
        self._max = max_element

    def feed(self, data: bytes) -> list[bytes]:
        if self._done:
            if data.strip(_BLANK):
                raise InspectionError("data after the JSON array")
            return []
        buf = self._buf
        buf += data
        out: list[bytes] = []
        if self._depth == 0 and not self._open():
            return out
        pos = self._pos
        while not self._done:
            if self._in_string:
                match = _INSIDE.search(buf, pos)
                if match is None:
                    pos = len(buf)
                    break
                if buf[match.start()] == 0x5C:  # backslash: skip the escaped byte
                    if match.end() >= len(buf):
                        pos = match.start()
                        break
                    pos = match.end() + 1
                    continue
                self._in_string = False
                pos = match.end()
                continue
            match = _TOKEN.search(buf, pos)
            if match is None:
                pos = len(buf)
                break
            pos = match.end()
            char = buf[match.start()]
            if char == 0x22:
                if pos - match.start() == 1:  # a string that has not ended yet
                    self._in_string = True
            elif char in (0x5B, 0x7B):
                self._depth += 1
                if self._depth > MAX_DEPTH:
                    raise InspectionError("response nested too deeply to inspect")
            elif char in (0x5D, 0x7D):
                self._depth -= 1
                if self._depth == 0:
                    if char != 0x5D:
                        raise InspectionError("response body is not valid JSON")
                    self._element(out, match.start(), closing=True)
                    self._done = True
                    if bytes(buf[pos:]).strip(_BLANK):
                        raise InspectionError("data after the JSON array")
            elif self._depth == 1:  # a top-level comma
                self._element(out, match.start(), closing=False)
                self._start = pos
        if self._done:
            buf.clear()
            self._pos = self._start = 0
            return out
        if self._start > 0:
            del buf[: self._start]
            pos -= self._start
            self._start = 0
        self._pos = pos
        if len(buf) > self._max:
            raise InspectionError("JSON array element too large to inspect")
        return out

    def _open(self) -> bool:
        body = bytes(self._buf).lstrip(_BLANK)
        if body.startswith(b"\xef\xbb\xbf"):
            body = body[3:].lstrip(_BLANK)
        if not body or b"\xef\xbb\xbf".startswith(body):  # nothing yet, or a split BOM
            self._buf[:] = body
            return False
        if body[:1] != b"[":
            raise InspectionError("records are not where the policy says")
        self._buf[:] = body[1:]
        self._depth = 1
        self._pos = self._start = 0
        return True

    def _element(self, out: list[bytes], end: int, *, closing: bool) -> None:
        element = bytes(self._buf[self._start:end]).strip(_BLANK)
        if element:
            out.append(element)
            self._count += 1
        elif not closing or self._count:
            raise InspectionError("response body is not valid JSON")

    def finish(self) -> list[bytes]:
        if not self._done:
            raise InspectionError("truncated JSON array")
        return []


async def minimize_records(source: AsyncIterator[bytes], splitter: Splitter, job: Job, *,
                           start: int, array: bool, report_only: bool) -> AsyncIterator[bytes]:
    """Minimized output pieces; `start` is the step where a record selector begins."""
    out = bytearray(b"[" if array else b"")
    first = True

    def emit(raw: bytes) -> None:
        nonlocal first
        if not raw.strip(_BLANK):
            if report_only and not array:
                out.extend(raw + b"\n")
            return
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InspectionError("a record is not valid JSON") from exc
        result = job.visit(value, start)
        if report_only:
            data = raw
        elif result is WITHHELD:
            return
        else:
            data = dump_json(result)
        if array:
            if not first:
                out.extend(b",")
            first = False
            out.extend(data)
        else:
            out.extend(data + b"\n")

    async for piece in source:
        for raw in splitter.feed(piece):
            emit(raw)
        if len(out) >= PIECE:
            yield bytes(out)
            out.clear()
    for raw in splitter.finish():
        emit(raw)
    if array:
        out.extend(b"]")
    if out:
        yield bytes(out)
