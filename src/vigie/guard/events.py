"""Security events for the SIEM: one JSON line per detection, quarantine or lift.

Separate from the audit log. A line names the client and the principal's pseudonym,
never a raw `sub`, a token, a NIR or a name: the envelope shared with JSON logs
(vigie.telemetry.logs: `ts`, `kind: security_event`, `level`, `logger`, `service`,
`version`), then `{"event", "client", "principal", "signal", "score", "action", "mode"}`.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import IO

import orjson

from vigie.telemetry.logs import envelope

log = logging.getLogger("vigie.guard.events")


class SecurityEvents:
    def __init__(self, path: str = "-") -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None

    def emit(self, event: str, *, client: str, principal: str, signal: str, score: float,
             action: str, mode: str = "enforce") -> None:
        line = orjson.dumps({
            **envelope("security_event", "warning", "vigie.security"),
            "event": event, "client": client, "principal": principal, "signal": signal,
            "score": round(score, 3), "action": action, "mode": mode,
        }) + b"\n"
        try:
            with self._lock:
                self._stream().write(line)
                self._stream().flush()
        except OSError as exc:
            log.error("security event could not be written: %s", type(exc).__name__)

    def _stream(self) -> IO[bytes]:
        if self.path == "-":
            stream: IO[bytes] | None = getattr(sys.stderr, "buffer", None)
            if stream is None:  # pragma: no cover - stderr replaced by a text-only object
                raise OSError("stderr has no binary buffer")
            return stream
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the process
        return self._file

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
