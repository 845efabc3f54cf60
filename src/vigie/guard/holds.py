"""The leases each admitted request holds until its settlement, keyed by its Decision."""

from __future__ import annotations

import time
from dataclasses import dataclass

from vigie.context import Decision
from vigie.guard.limits import Budget

Lease = tuple[str, Budget, str, bool]  # (tag, budget, lease, shared)


@dataclass(frozen=True, slots=True)
class _Held:
    """The leases one admitted request holds until it is settled."""

    decision: Decision
    leases: tuple[Lease, ...]
    until: float  # monotonic: forgotten after the leases expired anyway


class Holds:
    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self._held: dict[int, _Held] = {}

    def keep(self, decision: Decision, leases: tuple[Lease, ...]) -> None:
        self._held[id(decision)] = _Held(decision, leases,
                                         time.monotonic() + self.lease_seconds)

    def take(self, decision: Decision) -> _Held | None:
        held = self._held.pop(id(decision), None)
        return held if held is not None and held.decision is decision else None

    def forget_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, held in self._held.items() if held.until < now]:
            del self._held[key]
