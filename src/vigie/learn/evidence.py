"""Read what one client did from the audit log (chain verified) and the usage log.

The audit files are streamed line by line, in order, and checked with
`vigie audit verify`'s rules (`audit.verify.check_line`): a truncated, altered,
removed or reordered line stops the reading with `EvidenceError` naming file and
line, because a policy must not be learnt from evidence that was tampered with.
Only the client's lines are parsed. Per principal (limits are per principal),
the busiest minute, hour and day give the request, record and distinct-patient
peaks; the client's own busiest minute and day give its `client_limits`.
Progress goes to stderr at most every two seconds.

A usage log carries the audit head of each of its lines (`audit_head`): when
none of them occurs in the audit chain, the usage log comes from another
deployment (or the audit files are incomplete) and it is refused.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from vigie.audit.exposed import timestamp_bound
from vigie.audit.line import GENESIS
from vigie.audit.verify import check_line
from vigie.learn.usage import KIND, ShapeUse


class EvidenceError(Exception):
    """The evidence cannot be used; the message says which file, line and why."""


@dataclass(slots=True)
class RouteUse:
    """One audit route name as the client used it."""

    methods: set[str] = field(default_factory=set)
    requests: int = 0
    served: int = 0  # 2xx answers
    fields: set[str] = field(default_factory=set)  # disclosed unmasked (audit `fields`)
    would_block: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _Peak:
    """The busiest bucket (minute, hour or day) of a count, per key, in a time-ordered log."""

    width: int  # characters of the timestamp that name the bucket
    bucket: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    peak: int = 0

    def add(self, ts: str, key: str, amount: int = 1) -> None:
        if ts[:self.width] != self.bucket:
            self._close()
            self.bucket = ts[:self.width]
        self.counts[key] += amount

    def _close(self) -> None:
        if self.counts:
            self.peak = max(self.peak, max(self.counts.values()))
        self.counts.clear()

    def result(self) -> int:
        self._close()
        return self.peak


@dataclass(slots=True)
class _DistinctPeak:
    """The most distinct patients in one day, per key."""

    bucket: str = ""
    seen: dict[str, set[int]] = field(default_factory=dict)
    peak: int = 0

    def add(self, ts: str, key: str, refs: Iterable[str]) -> None:
        if ts[:10] != self.bucket:
            self._close()
            self.bucket = ts[:10]
        self.seen.setdefault(key, set()).update(hash(ref) for ref in refs)

    def _close(self) -> None:
        if self.seen:
            self.peak = max(self.peak, max(len(s) for s in self.seen.values()))
        self.seen.clear()

    def result(self) -> int:
        self._close()
        return self.peak


@dataclass(slots=True)
class Evidence:
    client: str
    lines: int = 0  # audit lines read (all clients)
    client_lines: int = 0  # this client's lines in the window
    first: str | None = None
    last: str | None = None
    chain_start: str = GENESIS
    chain_head: str = GENESIS
    routes: dict[str, RouteUse] = field(default_factory=dict)
    shapes: dict[tuple[str, str], ShapeUse] = field(default_factory=dict)
    other_clients: Counter[str] = field(default_factory=Counter)
    peak_requests_minute: int = 0  # per principal
    peak_records_hour: int = 0
    peak_patients_day: int = 0
    client_requests_minute: int = 0  # all principals
    client_patients_day: int = 0
    usage_lines: int = 0
    issuers: set[str] = field(default_factory=set)  # token issuers the usage log saw
    warnings: list[str] = field(default_factory=list)


Progress = Callable[[str], None]


def stderr_progress(stream: TextIO = sys.stderr, every: float = 2.0) -> Progress:
    last = [0.0]

    def report(message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            print(message, file=stream, flush=True)
    return report


def read_evidence(audit_files: list[str], client: str, *, usage_files: Iterable[str] = (),
                  since: str | None = None, progress: Progress | None = None) -> Evidence:
    """The client's evidence; EvidenceError when the audit is broken or the usage is foreign."""
    evidence = Evidence(client)
    anchors: set[str] = set()
    for name in usage_files:
        anchors |= _read_usage(name, evidence)
    bound = None if since is None else timestamp_bound(since, end_of_day=False).decode()
    found = _read_audit(audit_files, evidence, bound, anchors, progress or (lambda _: None))
    if anchors and not found:
        raise EvidenceError(
            f"{', '.join(usage_files)}: none of the {len(anchors)} audit heads it records "
            "occurs in the audit chain read: a usage log from another deployment, or audit "
            "files missing")
    return evidence


def _read_audit(files: list[str], evidence: Evidence, since: str | None, anchors: set[str],
                progress: Progress) -> bool:
    member = b'"client":' + orjson.dumps(evidence.client) + b","
    total = sum(os.path.getsize(name) for name in files)
    done = 0
    found = GENESIS in anchors
    expected: str | None = None
    origin: str | None = None
    peaks = (_Peak(16), _Peak(13), _Peak(16))  # requests/min, records/hour per principal; client
    distinct, client_distinct = _DistinctPeak(), _DistinctPeak()
    for name in files:
        with open(name, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                outcome = check_line(raw, expected)
                if isinstance(outcome, str):
                    raise EvidenceError(f"{name}:{number}: {outcome} (as `vigie audit verify` "
                                        "reports it): no policy is learnt from a broken audit")
                prev, expected = outcome
                origin = origin or prev
                found = found or expected in anchors
                evidence.lines += 1
                done += len(raw)
                if evidence.lines % 65536 == 0:
                    progress(f"vigie: reading the audit: {100 * done // max(total, 1)}% "
                             f"({done >> 20} of {total >> 20} MiB, {evidence.lines} lines)")
                if member not in raw:
                    if not evidence.client_lines:  # only said when the client is never seen
                        _count_other(raw, evidence)
                    continue
                record = orjson.loads(raw)
                if record.get("client") != evidence.client:
                    continue
                ts = str(record.get("ts", ""))
                if since is not None and ts < since:
                    continue
                _add(record, ts, evidence, peaks, distinct, client_distinct)
    evidence.chain_start = origin or GENESIS
    evidence.chain_head = expected or evidence.chain_start
    evidence.peak_requests_minute = peaks[0].result()
    evidence.peak_records_hour = peaks[1].result()
    evidence.client_requests_minute = peaks[2].result()
    evidence.peak_patients_day = distinct.result()
    evidence.client_patients_day = client_distinct.result()
    return found


def _count_other(raw: bytes, evidence: Evidence) -> None:
    if len(evidence.other_clients) < 1000:
        start = raw.find(b'"client":')
        if start >= 0:
            end = raw.find(b",", start + 9)
            try:
                other = orjson.loads(raw[start + 9:end])
            except orjson.JSONDecodeError:
                return
            if isinstance(other, str):
                evidence.other_clients[other] += 1


def _add(record: dict[str, Any], ts: str, evidence: Evidence, peaks: tuple[_Peak, ...],
         distinct: _DistinctPeak, client_distinct: _DistinctPeak) -> None:
    evidence.client_lines += 1
    evidence.first = evidence.first or ts
    evidence.last = ts
    principal = str(record.get("principal"))
    route = evidence.routes.setdefault(str(record.get("route")), RouteUse())
    if record.get("reason") != "partial":  # a segment of a long stream, not a new request
        route.requests += 1
        route.methods.add(str(record.get("method")))
        peaks[0].add(ts, principal)
        peaks[2].add(ts, "")
    status = record.get("status")
    if isinstance(status, int) and 200 <= status < 300:
        route.served += 1
        route.fields.update(str(f) for f in record.get("fields") or ())
        records = record.get("records")
        if isinstance(records, int) and records > 0:
            peaks[1].add(ts, principal, records)
        patients = [str(p) for p in record.get("patients") or ()]
        distinct.add(ts, principal, patients)
        client_distinct.add(ts, "", patients)
    if record.get("would_block"):
        route.would_block[str(record["would_block"])] += 1


def _read_usage(name: str, evidence: Evidence) -> set[str]:
    anchors: set[str] = set()
    with open(name, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.endswith(b"\n"):  # written at shutdown, cut by a crash: not evidence
                evidence.warnings.append(f"{name}:{number}: truncated last line skipped")
                break
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise EvidenceError(f"{name}:{number}: not a usage log line (truncated?)") \
                    from None
            if not isinstance(line, dict) or line.get("kind") != KIND:
                raise EvidenceError(f"{name}:{number}: not a usage log line (kind {KIND})")
            if isinstance(line.get("audit_head"), str):
                anchors.add(line["audit_head"])
            if line.get("client") != evidence.client:
                continue
            evidence.usage_lines += 1
            evidence.issuers.update(str(i) for i in line.get("issuers") or ())
            for item in line.get("shapes") or ():
                _merge_shape(item, evidence)
    return anchors


def _merge_shape(item: dict[str, Any], evidence: Evidence) -> None:
    key = (str(item.get("method")), str(item.get("path")))
    shape = evidence.shapes.get(key)
    if shape is None:
        shape = evidence.shapes[key] = ShapeUse(key[0], key[1], str(item.get("route")))
    shape.requests += int(item.get("requests") or 0)
    shape.query.update(str(q) for q in item.get("query") or ())
    for name, size in (item.get("page_max") or {}).items():
        if isinstance(size, int):
            shape.page_max[name] = max(shape.page_max.get(name, 0), size)
    shape.records = shape.records or item.get("records")
    shape.media = shape.media or item.get("media")
    shape.fields.update(str(f) for f in item.get("fields") or ())
    if isinstance(item.get("scopes"), list):
        scopes = {str(s) for s in item["scopes"]}
        shape.scopes = scopes if shape.scopes is None else shape.scopes & scopes
