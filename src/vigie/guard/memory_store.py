"""The in-memory guard store: one process, every decision synchronous (so atomic).

Each subject has a bucket: the request and records GCRA, the distinct patients of the
current window, and its live leases (`guard.reservation`). An admission checks
everything first and writes only when it admits; it and a settlement run without an
`await`, so on the event loop nothing interleaves with them (the "one lock").
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from vigie.guard.limits import Budget, add_records, gcra, records_refused
from vigie.guard.reservation import Reservation, Settlement, holdings
from vigie.guard.sketch import DistinctCounter
from vigie.guard.store import Check, Quarantine, Verdict

CONCURRENCY_RETRY_S = 1.0
_MAX_SUSPECTS = 1024  # per client: the alert needs a handful, not every account


class _Bucket:
    __slots__ = ("leases", "patients", "records_tat", "request_tat", "window")

    def __init__(self) -> None:
        self.request_tat = 0.0
        self.records_tat = 0.0
        self.window = -1
        self.patients = DistinctCounter()
        self.leases: dict[str, float] = {}  # stored member -> expiry (epoch s)

    def patients_in(self, window: int) -> DistinctCounter:
        if window != self.window:
            self.window, self.patients = window, DistinctCounter()
        return self.patients

    def live_leases(self, now_s: float) -> dict[str, float]:
        if self.leases:
            for member in [m for m, until in self.leases.items() if until <= now_s]:
                del self.leases[member]
        return self.leases


def _held(leases: dict[str, float]) -> tuple[int, int]:
    records = patients = 0
    for member in leases:
        held_records, held_patients = holdings(member)
        records += held_records
        patients += held_patients
    return records, patients


class MemoryStore:
    """Per-process state, bounded by LRU over subjects that are not penalized.

    A subject currently refused by one of its budgets, or holding leases, is not evicted
    (evicting it would hand it a fresh budget) unless the store reaches twice
    `max_subjects`, its hard ceiling; quarantines are kept apart, never evicted, and
    expire on their own.
    """

    backend = "memory"

    def __init__(self, max_subjects: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_subjects = max_subjects
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[_Bucket, Budget]] = OrderedDict()
        self._quarantined: dict[tuple[str, str], Quarantine] = {}
        self._suspects: dict[str, dict[str, float]] = {}  # client -> pseudonym -> last seen
        self._alerts: dict[str, float] = {}  # client -> alert until

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
        held = check.reservation
        leases = bucket.live_leases(now_s)
        if budget.concurrency and held is not None and len(leases) >= budget.concurrency:
            return Verdict(refused="concurrency", retry_after_s=CONCURRENCY_RETRY_S,
                           reset_s=CONCURRENCY_RETRY_S)
        held_records, held_patients = _held(leases)
        if budget.records_interval_ms:
            held_tat = max(bucket.records_tat, now_ms) + held_records * budget.records_interval_ms
            over = records_refused(held_tat, now_ms, budget.records_interval_ms,
                                   budget.records_window_ms)
            if over:
                return Verdict(refused="records", retry_after_s=over / 1000.0,
                               reset_s=over / 1000.0)
        add_patient = ""
        if budget.patients_limit:
            window = int(now_s // budget.patients_window_s)
            seen = bucket.patients_in(window)
            known = held is not None and bool(held.patient) and seen.contains(held.patient)
            if not known and seen.count() + held_patients >= budget.patients_limit:
                wait = (window + 1) * budget.patients_window_s - now_s
                return Verdict(refused="patients", retry_after_s=wait, reset_s=wait)
            if held is not None and not known:
                add_patient = held.patient
        verdict = Verdict()
        if budget.request_interval_ms:
            result = gcra(bucket.request_tat, now_ms, budget.request_interval_ms,
                          budget.request_tolerance_ms, check.penalty)
            if not result.allowed:
                return Verdict(refused="requests",
                               retry_after_s=result.retry_after_ms / 1000.0,
                               remaining=0, reset_s=result.reset_ms / 1000.0)
            bucket.request_tat = result.tat_ms
            verdict = Verdict(remaining=result.remaining, reset_s=result.reset_ms / 1000.0)
        if add_patient:
            bucket.patients.add([add_patient])  # patients_in(window) above made it current
        return self._hold(bucket, held, now_s, verdict)

    @staticmethod
    def _hold(bucket: _Bucket, held: Reservation | None, now_s: float,
              verdict: Verdict) -> Verdict:
        if held is None:
            return verdict
        member = held.member
        bucket.leases[member] = now_s + held.lease_ms / 1000.0
        return Verdict(remaining=verdict.remaining, reset_s=verdict.reset_s, lease=member)

    async def settle(self, settlements: Sequence[Settlement]) -> list[tuple[str, str]]:
        return self.settle_now(settlements)

    def settle_now(self, settlements: Sequence[Settlement]) -> list[tuple[str, str]]:
        own = [("", s.observation) for s in settlements if s.observation]
        for settled in settlements:
            if settled.lease:
                entry = self._buckets.get(settled.tag)
                if entry is not None:
                    entry[0].leases.pop(settled.lease, None)
            self.record(settled.tag, settled.budget, settled.records, settled.patients)
        return own

    def record(self, tag: str, budget: Budget, records: int, patients: Sequence[str]) -> None:
        if not (budget.records_interval_ms or budget.patients_limit):
            return
        if not (records > 0 or patients):
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
        if bucket.live_leases(now_ms / 1000.0):
            return True
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

    async def suspect(self, client: str, subject: str, window_s: float, threshold: int,
                      alert_s: float) -> tuple[float, bool]:
        return self.suspect_now(client, subject, window_s, threshold, alert_s)

    def suspect_now(self, client: str, subject: str, window_s: float, threshold: int,
                    alert_s: float) -> tuple[float, bool]:
        now = self._clock()
        suspects = self._suspects.setdefault(client, {})
        suspects.pop(subject, None)
        suspects[subject] = now
        for old in [p for p, seen in suspects.items() if seen < now - window_s]:
            del suspects[old]
        while len(suspects) > _MAX_SUSPECTS:
            del suspects[next(iter(suspects))]
        until = self._alerts.get(client, 0.0)
        if until > now:
            return until, False
        if len(suspects) < threshold:
            return 0.0, False
        self._alerts[client] = now + alert_s
        return now + alert_s, True

    async def alerts(self, clients: Sequence[str]) -> dict[str, float]:
        return self.alerts_now(clients)

    def alerts_now(self, clients: Sequence[str]) -> dict[str, float]:
        now = self._clock()
        return {c: self._alerts[c] for c in clients if self._alerts.get(c, 0.0) > now}

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
