"""Budgets and the GCRA arithmetic shared by every store, plus the 429 header fields.

One principal (or one client, for `client_limits`) has up to three budgets:

- requests: GCRA (generic cell rate algorithm). Emission interval T = period/count,
  burst B (configured, else max(1, ceil(10% of count))) requests at once, tolerance
  tau = (B-1)*T. A request is admitted when the backlog `max(TAT, now) - now` is at most
  tau; it then moves TAT by T.
- records: the same algorithm fed by the records disclosed, with tolerance = one period:
  refused while at least `count` records are outstanding in the sliding window, counting
  those reserved by requests in flight (see `guard.reservation`).
- distinct patients: a distinct count per fixed window of the rate's period, plus the
  patients reserved by requests in flight; refused once it reaches the budget.
- concurrency: requests in flight at once (leases that expire if a replica dies).

Budgets are checked and reserved at admission: one response can overshoot the records
and patient budgets by at most its own reservation (a page), however many are in flight.
The arithmetic here is what the Redis Lua script does too; both work in milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vigie.rates import Limits, Rate

BURST_FRACTION = 0.10
EPSILON_MS = 0.001


def burst_of(rate: Rate) -> int:
    """Requests admitted at once: as configured, else 10% of the count, at least 1."""
    if rate.burst is not None:
        return rate.burst
    return max(1, math.ceil(rate.count * BURST_FRACTION))


@dataclass(frozen=True, slots=True)
class Budget:
    """What one admission checks, in the units the stores use (milliseconds)."""

    request_interval_ms: float = 0.0  # 0: no request budget
    request_tolerance_ms: float = 0.0
    records_interval_ms: float = 0.0  # 0: no records budget
    records_window_ms: float = 0.0
    patients_limit: int = 0  # 0: no distinct-patient budget
    patients_window_s: int = 0
    concurrency: int = 0  # 0: no cap on requests in flight

    @classmethod
    def of(cls, limits: Limits) -> Budget:
        budget = cls()
        if limits.requests is not None:
            interval = limits.requests.period_seconds * 1000.0 / limits.requests.count
            budget = _replace(budget, request_interval_ms=interval,
                              request_tolerance_ms=(burst_of(limits.requests) - 1) * interval)
        if limits.records is not None:
            window = limits.records.period_seconds * 1000.0
            budget = _replace(budget, records_interval_ms=window / limits.records.count,
                              records_window_ms=window)
        if limits.distinct_patients is not None:
            budget = _replace(budget, patients_limit=limits.distinct_patients.count,
                              patients_window_s=limits.distinct_patients.period_seconds)
        if limits.concurrency:
            budget = _replace(budget, concurrency=limits.concurrency)
        return budget

    @property
    def any(self) -> bool:
        return bool(self.request_interval_ms or self.records_interval_ms or self.patients_limit
                    or self.concurrency)


def _replace(budget: Budget, **changes: float | int) -> Budget:
    values = {name: getattr(budget, name) for name in Budget.__slots__}
    values.update(changes)
    return Budget(**values)


@dataclass(frozen=True, slots=True)
class GcraResult:
    allowed: bool
    tat_ms: float  # the new theoretical arrival time (unchanged when refused)
    retry_after_ms: float
    remaining: int
    reset_ms: float  # when the bucket is full again


def gcra(tat_ms: float, now_ms: float, interval_ms: float, tolerance_ms: float,
         penalty: float = 1.0) -> GcraResult:
    """One request against a GCRA bucket; `penalty` > 1 slows the rate (anomaly throttle)."""
    backlog = max(tat_ms, now_ms) - now_ms
    if backlog > tolerance_ms + EPSILON_MS:
        return GcraResult(False, tat_ms, backlog - tolerance_ms, 0, backlog)
    new_tat = max(tat_ms, now_ms) + interval_ms * penalty
    new_backlog = new_tat - now_ms
    remaining = max(0, math.floor((tolerance_ms - new_backlog + interval_ms) / interval_ms
                                  + EPSILON_MS))
    return GcraResult(True, new_tat, 0.0, remaining, new_backlog)


def records_refused(tat_ms: float, now_ms: float, interval_ms: float,
                    window_ms: float) -> float:
    """0 when records may still be disclosed, else the milliseconds until one record frees."""
    backlog = max(tat_ms, now_ms) - now_ms
    over = backlog - (window_ms - interval_ms)
    return over if over > EPSILON_MS else 0.0


def add_records(tat_ms: float, now_ms: float, interval_ms: float, count: int) -> float:
    return max(tat_ms, now_ms) + interval_ms * count


def rate_limit_headers(limits: Limits, client_limits: Limits | None, refused: str,
                       remaining: int, reset_seconds: float) -> dict[str, str]:
    """`RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10/11).

    Structured-field lists: each policy item is a quoted name with `q` (quota) and `w`
    (window seconds; none for `concurrency`, requests in flight); `RateLimit` names the
    policy that refused with `r` (remaining)
    and `t` (seconds until quota is available again). Client-wide policies are prefixed
    `client-`.
    """
    policies = _policy_items(limits, "")
    if client_limits is not None:
        policies += _policy_items(client_limits, "client-")
    reset = max(1, math.ceil(reset_seconds))
    headers = {"RateLimit": f'"{refused}";r={max(0, remaining)};t={reset}'}
    if policies:
        headers["RateLimit-Policy"] = ", ".join(policies)
    return headers


def _policy_items(limits: Limits, prefix: str) -> list[str]:
    items = []
    for name, rate in (("requests", limits.requests), ("records", limits.records),
                       ("patients", limits.distinct_patients)):
        if rate is not None:
            items.append(f'"{prefix}{name}";q={rate.count};w={rate.period_seconds}')
    if limits.concurrency:  # requests in flight: a quota without a window
        items.append(f'"{prefix}concurrency";q={limits.concurrency}')
    return items
