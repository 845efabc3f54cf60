"""Rates such as `600/minute`: parsed once into a count and a period."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period_seconds: int
    burst: int | None = None  # requests admitted at once; None: 10% of count (guard.limits)

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse `N/second|minute|hour|day`; raises ValueError with a readable message."""
        match = _RATE.match(str(text))
        if not match:
            raise ValueError(f"invalid rate {text!r}: expected N/second|minute|hour|day")
        count = int(match.group(1))
        if count <= 0:
            raise ValueError(f"invalid rate {text!r}: the count must be positive")
        return cls(count, _PERIODS[match.group(2)])

    def __str__(self) -> str:
        unit = {v: k for k, v in _PERIODS.items()}[self.period_seconds]
        return f"{self.count}/{unit}"


@dataclass(frozen=True, slots=True)
class Limits:
    """Budgets for one principal (or one client, for `client_limits`).

    A field left None is inherited from the global configuration.
    """

    requests: Rate | None = None
    records: Rate | None = None
    distinct_patients: Rate | None = None
    enumeration: bool | None = None
    concurrency: int | None = None  # requests in flight at once

    def inherit(self, defaults: Limits) -> Limits:
        return Limits(
            requests=self.requests or defaults.requests,
            records=self.records or defaults.records,
            distinct_patients=self.distinct_patients or defaults.distinct_patients,
            enumeration=defaults.enumeration if self.enumeration is None else self.enumeration,
            concurrency=self.concurrency or defaults.concurrency,
        )
