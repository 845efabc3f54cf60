"""`AuditLog`: writes one sealed, hash-chained line per request before the response leaves.

Each line is flushed to the operating system with one `write(2)` (optionally
fsync'ed). The chain survives restarts (the last hash of the existing file, or
of its newest rotated sibling, is the next `prev`) and rotations (the first line
of a new file carries the last hash of the previous one). Rotated files are
renamed `FILE.YYYYMMDDTHHMMSS.ffffffZ`, so that a shell glob lists them in
chronological order. A failed write is never silent: fail-closed raises
`AuditUnavailable` (503), fail-open counts `vigie_audit_write_failures_total`
and logs.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from vigie.audit.line import GENESIS, seal, unseal
from vigie.audit.shared import SharedChain
from vigie.config import AuditSettings
from vigie.context import Decision
from vigie.errors import AuditUnavailable
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.audit")

_ROTATED_SUFFIX = re.compile(r"\.\d{8}T\d{6}\.\d{6}Z(-\d+)?\Z")
_TAIL_BLOCK = 65536
_RESUME_SCAN_LIMIT = 64 * 1024 * 1024


class AuditLog:
    """The audit sink the proxy calls once per authenticated request."""

    def __init__(self, settings: AuditSettings, metrics: Metrics, *, fsync: bool = False,
                 shared: SharedChain | None = None) -> None:
        """`shared`: the chain of several worker processes (audit/shared.py), else own."""
        self._settings = settings
        self._shared = shared
        self._rotations = 0
        self._metrics = metrics
        self._fsync = fsync
        self._closed_mode = settings.on_failure != "open"
        self._stdout = settings.path == "-"
        self._path = None if self._stdout else Path(settings.path)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._prev = GENESIS
        self._resumed = False
        self._broken_tail = False  # the file ends inside a line: start the next on a new line
        self._ts_second = -1
        self._ts_prefix = ""
        if self._path is not None:
            try:
                self._open()
            except OSError as exc:
                log.error("audit log %s cannot be opened: %s", self._path, exc.strerror)

    @property
    def head(self) -> str:
        """The hash of the last line written: anchor it elsewhere to detect truncation."""
        return self._prev

    def record(self, decision: Decision, principal: str | None) -> None:
        """Write the line for `decision`; raise AuditUnavailable when it cannot (fail-closed)."""
        with self._lock:
            if self._shared is None:
                self._record(decision, principal)
                return
            with self._shared as shared:
                self._follow(shared)
                self._record(decision, principal)
                shared.wrote(self._prev, self._size)

    def _record(self, decision: Decision, principal: str | None) -> None:
        line, digest = seal(self._fields(decision, principal))
        try:
            self._write(line)
        except (OSError, ValueError) as exc:  # ValueError: a closed stdout
            self._fail(exc)
            return
        self._prev = digest
        rotate_bytes = self._settings.rotate_bytes
        if rotate_bytes > 0 and self._size >= rotate_bytes and self._fd is not None:
            self._rotate()
            if self._shared is not None:
                self._shared.rotated(self._size)
                self._rotations = self._shared.rotations

    def _follow(self, shared: SharedChain) -> None:
        """Take up the chain where another worker left it (and its rotation, if any)."""
        self._prev = shared.prev(self._prev)
        if shared.rotations != self._rotations:
            self._rotations = shared.rotations
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)  # renamed by another worker: the next write opens the live file
        self._size = shared.size(self._size)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)

    def _fields(self, decision: Decision, principal: str | None) -> dict[str, Any]:
        # Keys in the order of vigie.audit.line.LINE_KEYS; `exposed` relies on it.
        return {
            "ts": self._timestamp(decision.wall_time),
            "request_id": decision.request_id,
            "client": decision.client,
            "principal": principal,
            "route": decision.route,
            "method": decision.method,
            "status": decision.status,
            "decision": decision.decision,
            "patients": [ref if type(ref) is str else str(ref) for ref in decision.patients],
            "fields": sorted(decision.fields),
            "masked": decision.masked_total,
            "records": decision.records - decision.records_flushed,  # this line's share
            "withheld": decision.withheld,
            "anomaly_score": round(decision.anomaly_score, 4) if decision.anomaly_score else 0.0,
            "mode": str(decision.mode),
            "reason": decision.reason,
            "would_block": decision.would_block,
            "forms": decision.forms if decision.patients else None,  # value-free field forms
            "prev": self._prev,
        }

    def _timestamp(self, wall_time: float) -> str:
        second = int(wall_time)
        if second != self._ts_second:
            self._ts_second = second
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        millis = min(999, int((wall_time - second) * 1000))
        return f"{self._ts_prefix}.{millis:03d}Z"

    def _write(self, line: bytes) -> None:
        if self._stdout:
            stream = sys.stdout
            binary = getattr(stream, "buffer", None)
            if binary is not None:
                binary.write(line)
            else:
                stream.write(line.decode())
            stream.flush()
            return
        if self._fd is None:
            self._open()
        assert self._fd is not None  # noqa: S101 - _open either sets it or raises
        if self._broken_tail:
            line = b"\n" + line
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)")
        self._broken_tail = False
        if self._fsync:
            os.fsync(self._fd)
        self._size += written

    def _fail(self, exc: OSError | ValueError) -> None:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        self._metrics.audit_write_failures.inc()
        if self._fd is not None:
            # Reopen for the next line: the file may have been replaced, the disk remounted,
            # or half a line written (reopening looks at the last byte).
            fd, self._fd = self._fd, None
            os.close(fd)
        if self._closed_mode:
            log.error("audit line not written (fail-closed, request refused): %s", reason)
            raise AuditUnavailable("the audit log is unavailable") from exc
        log.error("audit line not written (fail-open, request served unaudited): %s", reason)

    def _open(self) -> None:
        assert self._path is not None  # noqa: S101 - only file sinks open
        if not self._resumed:
            self._resume()
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self._path, flags, 0o640)
        try:
            self._size = os.fstat(fd).st_size
            # A crash or a failed write may have left half a line: start on a fresh one.
            self._broken_tail = self._size > 0 and os.pread(fd, 1, self._size - 1) != b"\n"
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def _resume(self) -> None:
        """Continue the chain from the last sealed line of the file or its newest rotation."""
        assert self._path is not None  # noqa: S101
        for candidate in (self._path, *reversed(rotated_files(self._path))):
            found = _last_hash(candidate)
            if found is not None:
                self._prev = found
                break
        self._resumed = True

    def _rotate(self) -> None:
        """Rename the full file; the next line opens a new one (its `prev` keeps the chain)."""
        assert self._path is not None and self._fd is not None  # noqa: S101
        fd, self._fd = self._fd, None
        os.close(fd)
        try:
            self._rename_current()
        except OSError as exc:
            # The line is written; only the rotation failed. Keep appending to the same file.
            log.error("audit log %s could not be rotated: %s", self._path, exc.strerror)
        try:
            self._open()  # at once, so that the live file always exists for shippers
        except OSError as exc:
            log.error("audit log %s cannot be reopened: %s", self._path, exc.strerror)

    def _rename_current(self) -> None:
        assert self._path is not None  # noqa: S101
        # One clock reading for the second and the microseconds: two readings straddling a
        # second named a later rotation before an earlier one, and `verify` read them out
        # of order (the rotated set is ordered by name).
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        base = f"{self._path}.{stamp}.{int(now * 1e6) % 1_000_000:06d}Z"
        target, n = Path(base), 0
        while target.exists():
            n += 1
            target = Path(f"{base}-{n}")
        os.replace(self._path, target)


def rotated_files(path: Path) -> list[Path]:
    """The rotated siblings of an audit file, oldest first."""
    siblings = path.parent.glob(path.name + ".*") if path.parent.exists() else []
    return sorted(p for p in siblings if _ROTATED_SUFFIX.search(p.name[len(path.name):]))


def _last_hash(path: Path) -> str | None:
    """The hash of the last sealed line of `path`, or None (missing, empty or no sealed line)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        size = handle.seek(0, os.SEEK_END)
        end, carry = size, b""
        while end > 0 and size - end < _RESUME_SCAN_LIMIT:
            start = max(0, end - _TAIL_BLOCK)
            handle.seek(start)
            lines = (handle.read(end - start) + carry).split(b"\n")
            carry = lines[0] if start > 0 else b""
            for line in reversed(lines[1:] if start > 0 else lines):
                sealed = unseal(line)
                if sealed is not None:
                    return sealed[1]
            end = start
    if size:
        log.error("audit log %s ends without a sealed line; its chain cannot be resumed", path)
    return None
