"""The guard's state: the store protocol, its value types, and the in-memory store.

A store answers one question on the hot path (`admit`: may these subjects make one
more request?) and takes late facts off it (`record`: records and patients disclosed).
Quarantines live beside the budgets. Subjects are hash tags: `<client>:<pseudonym>`
for a principal, `<client>` for a client's aggregate (`client_limits`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from vigie.guard.limits import Budget, add_records, gcra, records_refused
from vigie.guard.sketch import DistinctCounter


def _escape(text: str) -> str:
    # Braces would break the Redis Cluster hash tag; '%' keeps the escaping reversible.
    return text.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def principal_tag(client: str, pseudonym: str) -> str:
    return f"{_escape(client)}:{pseudonym}"


def client_tag(client: str) -> str:
    return _escape(client)


@dataclass(frozen=True, slots=True)
class Quarantine:
    client: str
    subject: str  # the principal's pseudonym, never the raw `sub`
    until: float  # epoch seconds
    reason: str  # decoy, sequential_ids, not_found_ratio, ..., or operator
    mode: str = "enforce"  # report-only quarantines are recorded, not enforced

    def as_dict(self) -> dict[str, object]:
        until = datetime.fromtimestamp(self.until, UTC).isoformat(timespec="seconds")
        return {"client": self.client, "subject": self.subject,
                "until": until.replace("+00:00", "Z"), "reason": self.reason,
                "mode": self.mode}


@dataclass(frozen=True, slots=True)
class Check:
    """One admission to test: a principal (with its quarantine) or a client aggregate."""

    tag: str
    budget: Budget
    penalty: float = 1.0  # > 1 slows the request rate (anomaly throttle)
    principal: tuple[str, str] | None = None  # (client, pseudonym): look up a quarantine


@dataclass(frozen=True, slots=True)
class Verdict:
    quarantine: Quarantine | None = None
    refused: str | None = None  # requests | records | patients
    retry_after_s: float = 0.0
    remaining: int = -1  # requests left right now; -1 when there is no request budget
    reset_s: float = 0.0


class GuardStore(Protocol):
    """Budgets and quarantines, shared by replicas or not."""

    backend: str  # the vigie_state_backend_up label: memory or redis

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def admit(self, checks: Sequence[Check]) -> list[Verdict]:
        """One atomic decision per check; consumes a request when a check passes."""
        ...

    def record(self, tag: str, budget: Budget, records: int, patients: Sequence[str]) -> None:
        """Late facts; never blocks (a shared store batches them)."""
        ...

    def quarantine(self, quarantine: Quarantine) -> None:
        """Takes effect at once on this replica; shared stores propagate it promptly."""
        ...

    async def lift(self, client: str, subject: str) -> bool: ...

    async def quarantines(self) -> list[Quarantine]: ...

    async def flush(self) -> None:
        """Write out pending late facts (tests and shutdown)."""
        ...


class _Bucket:
    __slots__ = ("patients", "records_tat", "request_tat", "window")

    def __init__(self) -> None:
        self.request_tat = 0.0
        self.records_tat = 0.0
        self.window = -1
        self.patients = DistinctCounter()

    def patients_in(self, window: int) -> DistinctCounter:
        if window != self.window:
            self.window, self.patients = window, DistinctCounter()
        return self.patients


class MemoryStore:
    """Per-process state, bounded by LRU over subjects that are not penalized.

    A subject currently refused by one of its budgets is not evicted (evicting it would
    hand it a fresh budget) unless the store reaches twice `max_subjects`, its hard
    ceiling; quarantines are kept apart, never evicted, and expire on their own.
    """

    backend = "memory"

    def __init__(self, max_subjects: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_subjects = max_subjects
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[_Bucket, Budget]] = OrderedDict()
        self._quarantined: dict[tuple[str, str], Quarantine] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def flush(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._buckets)

    async def admit(self, checks: Sequence[Check]) -> list[Verdict]:
        return self.admit_now(checks)

    def admit_now(self, checks: Sequence[Check]) -> list[Verdict]:
        now_s = self._clock()
        return [self._admit_one(check, now_s) for check in checks]

    def active_quarantine(self, client: str, subject: str) -> Quarantine | None:
        found = self._quarantined.get((client, subject))
        if found is not None and found.until <= self._clock():
            del self._quarantined[(client, subject)]
            return None
        return found

    def _admit_one(self, check: Check, now_s: float) -> Verdict:
        if check.principal is not None:
            found = self.active_quarantine(*check.principal)
            if found is not None:
                return Verdict(quarantine=found, retry_after_s=found.until - now_s)
        budget = check.budget
        if not budget.any:
            return Verdict()
        now_ms = now_s * 1000.0
        bucket = self._bucket(check.tag, budget, now_ms)
        if budget.records_interval_ms:
            over = records_refused(bucket.records_tat, now_ms, budget.records_interval_ms,
                                   budget.records_window_ms)
            if over:
                return Verdict(refused="records", retry_after_s=over / 1000.0,
                               reset_s=over / 1000.0)
        if budget.patients_limit:
            window = int(now_s // budget.patients_window_s)
            if bucket.patients_in(window).count() >= budget.patients_limit:
                wait = (window + 1) * budget.patients_window_s - now_s
                return Verdict(refused="patients", retry_after_s=wait, reset_s=wait)
        if not budget.request_interval_ms:
            return Verdict()
        result = gcra(bucket.request_tat, now_ms, budget.request_interval_ms,
                      budget.request_tolerance_ms, check.penalty)
        if not result.allowed:
            return Verdict(refused="requests", retry_after_s=result.retry_after_ms / 1000.0,
                           remaining=0, reset_s=result.reset_ms / 1000.0)
        bucket.request_tat = result.tat_ms
        return Verdict(remaining=result.remaining, reset_s=result.reset_ms / 1000.0)

    def record(self, tag: str, budget: Budget, records: int, patients: Sequence[str]) -> None:
        if not (budget.records_interval_ms or budget.patients_limit):
            return
        now_s = self._clock()
        bucket = self._bucket(tag, budget, now_s * 1000.0)
        if records > 0 and budget.records_interval_ms:
            bucket.records_tat = add_records(bucket.records_tat, now_s * 1000.0,
                                             budget.records_interval_ms, records)
        if patients and budget.patients_limit:
            bucket.patients_in(int(now_s // budget.patients_window_s)).add(patients)

    def _bucket(self, tag: str, budget: Budget, now_ms: float) -> _Bucket:
        entry = self._buckets.get(tag)
        if entry is not None:
            self._buckets.move_to_end(tag)
            if entry[1] is not budget:
                self._buckets[tag] = (entry[0], budget)
            return entry[0]
        bucket = _Bucket()
        self._buckets[tag] = (bucket, budget)
        if len(self._buckets) > self.max_subjects:
            self._evict(now_ms)
        return bucket

    def _evict(self, now_ms: float) -> None:
        if len(self._buckets) > 2 * self.max_subjects:
            # The hard ceiling: memory stays bounded even under a flood of penalized
            # principals (a flood only many valid accounts can make).
            self._buckets.popitem(last=False)
            return
        for _ in range(min(32, len(self._buckets) - 1)):
            tag, (bucket, budget) = next(iter(self._buckets.items()))
            if self._penalized(bucket, budget, now_ms):
                self._buckets.move_to_end(tag)
                continue
            del self._buckets[tag]
            return
        # Every candidate is penalized: grow (up to the ceiling) rather than forgive one.

    @staticmethod
    def _penalized(bucket: _Bucket, budget: Budget, now_ms: float) -> bool:
        if budget.request_interval_ms and (
                bucket.request_tat - now_ms > budget.request_tolerance_ms):
            return True
        if budget.records_interval_ms and records_refused(
                bucket.records_tat, now_ms, budget.records_interval_ms, budget.records_window_ms):
            return True
        if budget.patients_limit and bucket.window == int(now_ms / 1000.0
                                                          // budget.patients_window_s):
            return bucket.patients.count() >= budget.patients_limit
        return False

    def quarantine(self, quarantine: Quarantine) -> None:
        key = (quarantine.client, quarantine.subject)
        current = self._quarantined.get(key)
        if current is None or current.until < quarantine.until:
            self._quarantined[key] = quarantine

    async def lift(self, client: str, subject: str) -> bool:
        return self.lift_now(client, subject)

    def lift_now(self, client: str, subject: str) -> bool:
        return self._quarantined.pop((client, subject), None) is not None

    async def quarantines(self) -> list[Quarantine]:
        return self.quarantines_now()

    def quarantines_now(self) -> list[Quarantine]:
        now = self._clock()
        for key in [k for k, q in self._quarantined.items() if q.until <= now]:
            del self._quarantined[key]
        return sorted(self._quarantined.values(), key=lambda q: (q.client, q.subject))
