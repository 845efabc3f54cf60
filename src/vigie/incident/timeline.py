"""`timeline`: what happened with one principal, from the audit log and the security events.

What a CNIL notification (72 h) and an ANS report ask first: when the principal's first
request came, when Vigie first raised a signal, its throttles and quarantines, when it was
revoked or its client contained, what it got, and its activity per hour. Audit lines are
found by their exact `"principal":"P",` member before any parsing; several files
(rotated ones, other replicas') are merged and sorted by time.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

REFUSED = ("denied", "throttled", "quarantined", "error")


@dataclass
class Hour:
    requests: int = 0
    allowed: int = 0
    refused: int = 0
    patients: set[str] = field(default_factory=set)


@dataclass
class Timeline:
    principal: str
    clients: set[str] = field(default_factory=set)
    first_request: dict[str, Any] | None = None
    last_request: dict[str, Any] | None = None
    first_signal: dict[str, Any] | None = None
    throttles: list[dict[str, Any]] = field(default_factory=list)
    quarantines: list[dict[str, Any]] = field(default_factory=list)
    revocations: list[dict[str, Any]] = field(default_factory=list)
    containments: list[dict[str, Any]] = field(default_factory=list)
    first_revoked_request: dict[str, Any] | None = None
    decisions: Counter[str] = field(default_factory=Counter)
    patients: set[str] = field(default_factory=set)
    hours: dict[str, Hour] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "principal": self.principal, "clients": sorted(self.clients),
            "first_request": self.first_request, "last_request": self.last_request,
            "first_signal": self.first_signal, "throttles": len(self.throttles),
            "first_throttle": self.throttles[0] if self.throttles else None,
            "quarantines": self.quarantines, "revocations": self.revocations,
            "containments": self.containments,
            "first_revoked_request": self.first_revoked_request,
            "decisions": dict(self.decisions), "patients_disclosed": len(self.patients),
            "per_hour": [{"hour": hour, "requests": h.requests, "allowed": h.allowed,
                          "refused": h.refused, "patients": len(h.patients)}
                         for hour, h in sorted(self.hours.items())],
        }


def timeline(principal: str, audit_files: Iterable[str | os.PathLike[str]],
             event_files: Iterable[str | os.PathLike[str]], since: str | None = None,
             until: str | None = None) -> Timeline:
    """`since`/`until` are timestamps in the files' format (`YYYY-MM-DDTHH:MM:SS.mmmZ`)."""
    found = Timeline(principal)
    needle = b'"principal":' + orjson.dumps(principal) + b","
    lines = sorted(_matching(audit_files, needle, since, until), key=lambda x: x["ts"])
    for line in lines:
        _request(found, line)
    events = [e for e in _matching(event_files, None, since, until)
              if e.get("principal") == principal or _concerns_client(e, found.clients)]
    for event in sorted(events, key=lambda x: str(x.get("ts"))):
        _event(found, event)
    return found


def _concerns_client(event: dict[str, Any], clients: set[str]) -> bool:
    """A switch or a client-wide revocation of the principal's client (or of every client)."""
    return (event.get("event") in ("containment", "revocation")
            and event.get("principal") is None
            and (event.get("client") in clients or event.get("client") == "*"))


def _request(found: Timeline, line: dict[str, Any]) -> None:
    summary = {"ts": line["ts"], "client": line.get("client"), "route": line.get("route"),
               "method": line.get("method"), "status": line.get("status"),
               "decision": line.get("decision"), "reason": line.get("reason")}
    if found.first_request is None:
        found.first_request = summary
    found.last_request = summary
    if line.get("client"):
        found.clients.add(str(line["client"]))
    decision = str(line.get("decision"))
    if line.get("reason") == "revoked":
        decision = "revoked"
        if found.first_revoked_request is None:
            found.first_revoked_request = summary
    found.decisions[decision] += 1
    hour = found.hours.setdefault(str(line["ts"])[:13] + ":00Z", Hour())
    hour.requests += 1
    status = line.get("status")
    if isinstance(status, int) and 200 <= status < 300:
        hour.allowed += 1
        refs = [str(ref) for ref in line.get("patients") or ()]
        hour.patients.update(refs)
        found.patients.update(refs)
    elif decision in (*REFUSED, "revoked") or (isinstance(status, int) and status >= 400):
        hour.refused += 1


def _event(found: Timeline, event: dict[str, Any]) -> None:
    kind, action = event.get("event"), event.get("action")
    brief = {k: event.get(k) for k in ("ts", "event", "client", "signal", "action", "score",
                                       "id", "by", "reason", "expires", "confirmed")
             if event.get(k) is not None}
    if kind == "revocation":
        found.revocations.append(brief)
    elif kind == "containment":
        found.containments.append(brief)
    else:
        if found.first_signal is None and action in ("throttle", "quarantine"):
            found.first_signal = brief
        if action == "throttle":
            found.throttles.append(brief)
        elif action == "quarantine":
            found.quarantines.append(brief)


def _matching(files: Iterable[str | os.PathLike[str]], needle: bytes | None,
              since: str | None, until: str | None) -> Iterator[dict[str, Any]]:
    for name in files:
        with open(name, "rb") as handle:
            for raw in handle:
                if needle is not None and needle not in raw:
                    continue
                try:
                    record = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue  # a torn last line; `vigie audit verify` reports damage
                if not isinstance(record, dict):
                    continue
                stamp = str(record.get("ts", ""))
                if (since is not None and stamp < since) or (until is not None
                                                             and stamp > until):
                    continue
                yield record


def render(found: Timeline, since: str | None) -> str:
    """The timeline as text for a person (times UTC)."""
    def when(entry: dict[str, Any] | None) -> str:
        return "-" if entry is None else str(entry["ts"])

    out = [f"Incident timeline of principal {found.principal}"
           f" (client {', '.join(sorted(found.clients)) or 'unknown'})"
           f"{f', since {since}' if since else ''}, times UTC", ""]
    first, signal = found.first_request, found.first_signal
    out.append(f"first request      {when(first)}"
               + (f"  {first['method']} {first['route']} -> {first['status']}" if first else ""))
    out.append(f"first signal       {when(signal)}"
               + (f"  {signal.get('signal')} ({signal.get('action')})" if signal else ""))
    out.append(f"throttles          {len(found.throttles)}"
               + (f", first {found.throttles[0]['ts']}" if found.throttles else ""))
    for q in found.quarantines:
        out.append(f"quarantine         {q['ts']}  {q.get('signal')}")
    for r in found.revocations:
        out.append(f"revocation         {r['ts']}  {r.get('action')} {r.get('id')} by "
                   f"{r.get('by')}: {r.get('reason')}"
                   + ("" if r.get("confirmed", True) else " (NOT confirmed)"))
    for c in found.containments:
        out.append(f"containment        {c['ts']}  {c.get('action')} {c.get('signal')} "
                   f"({c.get('client')}) by {c.get('by')}: {c.get('reason')}")
    out.append(f"first refused as revoked {when(found.first_revoked_request)}")
    out.append(f"last request       {when(found.last_request)}")
    decisions = ", ".join(f"{k} {v}" for k, v in sorted(found.decisions.items()))
    out.append(f"requests           {sum(found.decisions.values())} ({decisions or 'none'})")
    out.append(f"patients disclosed {len(found.patients)} distinct "
               "(`vigie audit exposed --principal` lists them)")
    out += ["", "per hour            requests  allowed  refused  patients"]
    for hour, h in sorted(found.hours.items()):
        out.append(f"{hour:<20}{h.requests:>8}{h.allowed:>9}{h.refused:>9}{len(h.patients):>10}")
    return "\n".join(out)
