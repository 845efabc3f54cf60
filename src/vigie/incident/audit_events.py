"""Every revocation and switch, set or lifted: a security event and an audit line.

The security event goes to the guard's stream (`guard.events_path`) with its keys, plus
who did it and why: `{"ts", "event", "client", "principal", "signal", "score", "action",
"mode", "id", "by", "reason", "expires", "confirmed"}`. `event` is `revocation` or
`containment`; `action` is `revoke`, `lift`, `contain` or `release`; `signal` names the
kind or mode. It is written with one unbuffered append, so it never interleaves with the
guard's lines.

The audit line makes the act tamper-evident in the hash chain: `route` `incident`, the
admin API's `method` and `status`, `principal` the operator (`by`), `client` the target
(`*`: every client), `request_id` the revocation id (or a switch id), `reason`
`<action>:<kind or mode>[:<target principal>]`; no patients, no free text.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
import time
from typing import Any, Protocol

import orjson

from vigie.context import Decision
from vigie.errors import VigieError
from vigie.incident.model import Containment, Revocation, iso

log = logging.getLogger("vigie.incident.events")


METHODS = {"revoke": "POST", "lift": "DELETE", "contain": "PUT", "release": "DELETE"}


class AuditRecorder(Protocol):
    def record(self, decision: Decision, principal: str | None) -> None: ...


class IncidentEvents:
    def __init__(self, path: str = "-", audit: AuditRecorder | None = None) -> None:
        self.path = path
        self._audit = audit
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
        self._record(action, client, principal, signal, ident, by, confirmed)
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

    def _record(self, action: str, client: str, principal: str | None, signal: str,
                ident: str, by: str, confirmed: bool) -> None:
        if self._audit is None:
            return
        decision = Decision(
            request_id=ident if ident.startswith("rev_") else "sw_" + secrets.token_hex(6),
            method=METHODS[action], client=client, route="incident",
            status=204 if METHODS[action] == "DELETE" else 201 if confirmed else 202,
            reason=f"{action}:{signal}" + (f":{principal}" if principal else ""))
        try:
            self._audit.record(decision, by)
        except VigieError as exc:  # the change is made: refusing it now would help nobody
            log.error("audit line of %s %s not written: %s", action, ident, type(exc).__name__)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
