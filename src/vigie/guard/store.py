"""The guard's state: the store protocol and its value types.

A store answers one question on the hot path (`admit`: may these subjects make one
more request? if so, hold its reservation), settles it after the response (`settle`:
release the lease, count what was disclosed), and takes late facts of long streams
(`record`). Quarantines live beside the budgets. Subjects are hash tags:
`<client>:<pseudonym>` for a principal, `<client>` for a client's aggregate
(`client_limits`). `MemoryStore` (one process) and `RedisStore` (replicas) implement it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from vigie.guard.limits import Budget
from vigie.guard.reservation import Reservation, Settlement


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
    reservation: Reservation | None = None  # held until settled when admitted


@dataclass(frozen=True, slots=True)
class Verdict:
    quarantine: Quarantine | None = None
    refused: str | None = None  # requests | records | patients | concurrency
    retry_after_s: float = 0.0
    remaining: int = -1  # requests left right now; -1 when there is no request budget
    reset_s: float = 0.0
    lease: str = ""  # the lease held (its stored member) when admitted with a reservation
    shared: bool = False  # decided by the shared store (else this replica's memory)


class GuardStore(Protocol):
    """Budgets and quarantines, shared by replicas or not."""

    backend: str  # the vigie_state_backend_up label: memory or redis

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def admit(self, checks: Sequence[Check]) -> list[Verdict]:
        """One atomic decision per check; when a check passes it consumes a request and
        holds the check's reservation (a lease) until `settle`."""
        ...

    async def settle(self, settlements: Sequence[Settlement]) -> list[tuple[str, str]]:
        """Release leases and count what was disclosed, atomically per subject; never
        raises (a lease that cannot be released expires on its own). Returns the
        observations (id, encoded) of the settlement that carries one: those other
        replicas added since its `seen`, then its own, last ("" ids when not shared)."""
        ...

    def record(self, tag: str, budget: Budget, records: int, patients: Sequence[str]) -> None:
        """Late facts; never blocks (a shared store batches them)."""
        ...

    def quarantine(self, quarantine: Quarantine) -> None:
        """Takes effect at once on this replica; shared stores propagate it promptly."""
        ...

    async def lift(self, client: str, subject: str) -> bool: ...

    async def suspect(self, client: str, subject: str, window_s: float, threshold: int,
                      alert_s: float) -> tuple[float, bool]:
        """Note an anomalous principal of `client` (shared by the replicas); returns when
        the client's coordinated-extraction alert ends (0: no alert) and whether this
        call raised it (`threshold` principals within `window_s`)."""
        ...

    async def alerts(self, clients: Sequence[str]) -> dict[str, float]:
        """The clients among `clients` under alert, with when it ends."""
        ...

    async def quarantines(self) -> list[Quarantine]: ...

    async def flush(self) -> None:
        """Write out pending late facts (tests and shutdown)."""
        ...


