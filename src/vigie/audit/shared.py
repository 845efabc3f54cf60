"""`SharedChain`: one audit hash chain written by several worker processes.

The supervisor (vigie.workers) creates it before forking; every worker's
`AuditLog` then seals and writes its line while holding one cross-process lock,
taking `prev` from shared memory rather than from its own last line. The file
(or stdout) therefore holds a single chain in write order, and `audit verify`,
`audit exposed` and the rotation naming need no change. A rotation done by one
worker bumps a shared counter so that the others reopen the live file.
"""

from __future__ import annotations

import multiprocessing
from ctypes import c_char, c_longlong
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from typing import cast

from vigie.errors import AuditUnavailable

LOCK_TIMEOUT_SECONDS = 2.0  # a worker that died holding the lock: fail, never hang forever


class SharedChain:
    """The lock, the last hash, the live file's size and its rotation count, across forks."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self._lock = context.Lock()
        self._prev = cast("SynchronizedArray[c_char]", context.RawArray(c_char, 64))
        self._size = cast("Synchronized[int]", context.RawValue(c_longlong, -1))
        self._rotations = cast("Synchronized[int]", context.RawValue(c_longlong, 0))

    def __enter__(self) -> SharedChain:
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_SECONDS):
            raise AuditUnavailable("the audit log is unavailable")
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def prev(self, own: str) -> str:
        """The chain's last hash; `own` (this worker's resumed hash) before the first line."""
        value = bytes(self._prev.raw)  # type: ignore[attr-defined]
        return value.decode() if value[:1] != b"\0" else own

    def wrote(self, digest: str, size: int) -> None:
        self._prev.raw = digest.encode()  # type: ignore[attr-defined]
        self._size.value = size

    def size(self, own: int) -> int:
        return own if self._size.value < 0 else self._size.value

    @property
    def rotations(self) -> int:
        return self._rotations.value

    def rotated(self, size: int) -> None:
        self._rotations.value += 1
        self._size.value = size
