"""The audit line format and its canonical hashed bytes, shared by writer and readers.

A line is the orjson serialization of one object whose keys come in the fixed
order of `LINE_KEYS`, followed by a newline. The last member is always
`"hash":"<64 lowercase hex>"`. The hashed bytes are the line's exact bytes up to
(not including) `,"hash":"` followed by a single `}`; in other words the line as
it would be written without its `hash` member. Verifying therefore never needs
to re-serialize JSON: any tool can strip the 75-byte suffix
`,"hash":"<64 hex>"}` and hash what remains plus `}`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, TypeGuard

import orjson

GENESIS = "0" * 64

# The documented keys, in the order they are written. `hash` is always last.
LINE_KEYS: tuple[str, ...] = (
    "ts", "request_id", "client", "principal", "route", "method", "status", "decision",
    "patients", "fields", "masked", "records", "withheld", "anomaly_score", "mode", "reason",
    "would_block", "forms", "prev", "hash",
)

_HASH_MEMBER = b',"hash":"'
_SUFFIX_LENGTH = len(_HASH_MEMBER) + 64 + len(b'"}')
_HEX64 = re.compile(rb"[0-9a-f]{64}\Z")
TS_START = len(b'{"ts":"')  # the timestamp is always at this byte offset of a line
TS_LENGTH = len("2026-11-28T10:15:30.123Z")


def seal(record: dict[str, Any]) -> tuple[bytes, str]:
    """The full line (newline included) and its hash for `record`, which ends with `prev`."""
    canonical = orjson.dumps(record)
    digest = hashlib.sha256(canonical).hexdigest()
    return canonical[:-1] + _HASH_MEMBER + digest.encode() + b'"}\n', digest


def unseal(line: bytes) -> tuple[bytes, str] | None:
    """(canonical bytes, stated hash) of a line without its newline; None if it has no seal."""
    if len(line) <= _SUFFIX_LENGTH or not line.endswith(b'"}'):
        return None
    cut = len(line) - _SUFFIX_LENGTH
    if line[cut:cut + len(_HASH_MEMBER)] != _HASH_MEMBER:
        return None
    stated = line[cut + len(_HASH_MEMBER):-2]
    if not _HEX64.match(stated):
        return None
    return line[:cut] + b"}", stated.decode()


def digest(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def is_hash(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _HEX64.match(value.encode()) is not None
