"""`verify`: check the hash chain of one audit file or of a rotated set, in order.

Each line must end with its seal, its hash must match its canonical bytes, and
its `prev` must equal the previous line's hash (across files too). The first
line of the first file may start from any `prev` (a file whose predecessor was
rotated away): that starting hash is reported so the previous file can be
matched, and `start` pins it (e.g. to the genesis). `head` pins the expected
last hash, which is the only way to detect lines cut from the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from vigie.audit.line import GENESIS, digest, is_hash, unseal


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    lines: int  # lines whose seal and link were checked and found intact
    file: str | None = None  # where the first broken line is
    line: int | None = None  # its 1-based number in that file
    reason: str | None = None
    start: str = GENESIS  # the `prev` the chain starts from
    head: str = GENESIS  # the hash of the last intact line

    def describe(self) -> str:
        if not self.ok:
            return f"{self.file}:{self.line}: {self.reason}"
        origin = "genesis" if self.start == GENESIS else f"prev {self.start}"
        return f"OK: {self.lines} lines, chain from {origin} to head {self.head}"


def verify(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
           start: str | None = None, head: str | None = None) -> VerifyResult:
    """Verify the files in order as one chain. `start`/`head` pin its two ends when given."""
    files = [os.fspath(paths)] if isinstance(paths, str | os.PathLike) else [
        os.fspath(p) for p in paths]
    expected = start
    origin: str | None = None
    checked = 0
    name, number = "", 0
    for name in files:
        number = 0
        with open(name, "rb") as handle:
            for raw in handle:
                number += 1
                outcome = _check(raw, expected)
                if isinstance(outcome, str):
                    return VerifyResult(False, checked, name, number, outcome,
                                        origin or start or GENESIS, expected or GENESIS)
                prev, expected = outcome
                origin = origin or prev
                checked += 1
    origin = origin or start or GENESIS
    last = expected or origin
    if head is not None and last != head:
        return VerifyResult(False, checked, name or None, number + 1,
                            f"chain ends at {last}, expected head {head}: lines are missing "
                            "at the end", origin, last)
    return VerifyResult(True, checked, start=origin, head=last)


def check_line(raw: bytes, expected: str | None) -> str | tuple[str, str]:
    """One line with its newline: why it breaks the chain, or its (prev, hash)."""
    return _check(raw, expected)


def _check(raw: bytes, expected: str | None) -> str | tuple[str, str]:
    """Why this line breaks the chain, or its (prev, hash) when it is intact."""
    if not raw.endswith(b"\n"):
        return "truncated line (no newline at the end of the file)"
    line = raw[:-1]
    if not line.strip():
        return "empty line"
    sealed = unseal(line)
    if sealed is None:
        return "no seal: the line does not end with a \"hash\" member"
    canonical, stated = sealed
    if digest(canonical) != stated:
        return "hash mismatch: the line was altered"
    try:
        record = orjson.loads(canonical)
    except orjson.JSONDecodeError:
        return "not a JSON object"
    if not isinstance(record, dict) or "hash" in record:
        return "not a single audit record"
    prev = record.get("prev")
    if not is_hash(prev):
        return "missing or malformed prev"
    if expected is not None and prev != expected:
        if expected == GENESIS:
            return f"prev {prev} but the chain must start at genesis"
        return (f"prev does not match the hash of the previous line ({expected}): "
                "a line was removed, inserted or reordered before this one")
    return prev, stated
