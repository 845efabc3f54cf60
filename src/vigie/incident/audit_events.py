"""Every revocation and switch, set or lifted, as a security event line (the SIEM stream).

Same stream and keys as the guard's events (`guard.events_path`), plus who did it and
why: `{"ts", "event", "client", "principal", "signal", "score", "action", "mode", "id",
"by", "reason", "expires", "confirmed"}`. `event` is `revocation` or `containment`;
`action` is `revoke`, `lift`, `contain` or `release`; `signal` names the kind or mode.
The line is written with one unbuffered append, so it never interleaves with the guard's.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

import orjson

from vigie.incident.model import Containment, Revocation, iso

log = logging.getLogger("vigie.incident.events")


class IncidentEvents:
    def __init__(self, path: str = "-") -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None

    def revoked(self, r: Revocation, confirmed: bool) -> None:
        self._emit("revocation", "revoke", r.client or "*", r.principal, str(r.kind), r.id,
                   r.by, r.reason, r.expires, confirmed)

    def lifted(self, r: Revocation, by: str) -> None:
        self._emit("revocation", "lift", r.client or "*", r.principal, str(r.kind), r.id, by,
                   r.reason, r.expires, True)

    def contained(self, c: Containment, confirmed: bool) -> None:
        self._emit("containment", "contain", c.scope, None, str(c.mode), c.scope, c.by,
                   c.reason, c.expires, confirmed)

    def released(self, c: Containment, by: str) -> None:
        self._emit("containment", "release", c.scope, None, str(c.mode), c.scope, by,
                   c.reason, c.expires, True)

    def _emit(self, event: str, action: str, client: str, principal: str | None, signal: str,
              ident: str, by: str, reason: str, expires: float, confirmed: bool) -> None:
        now = time.time()
        record: dict[str, Any] = {
            "ts": iso(now)[:-1] + f".{int(now * 1000) % 1000:03d}Z",
            "event": event, "client": client, "principal": principal, "signal": signal,
            "score": 0.0, "action": action, "mode": "enforce", "id": ident, "by": by,
            "reason": reason, "expires": iso(expires), "confirmed": confirmed,
        }
        log.info("%s %s client=%s kind=%s id=%s by=%s confirmed=%s", event, action, client,
                 signal, ident, by, confirmed)
        line = orjson.dumps(record) + b"\n"
        try:
            with self._lock:
                if self.path == "-":
                    sys.stderr.buffer.write(line)
                    sys.stderr.buffer.flush()
                    return
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                       | os.O_CLOEXEC, 0o640)
                os.write(self._fd, line)
        except (OSError, AttributeError, ValueError) as exc:
            log.error("incident event could not be written: %s", type(exc).__name__)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
