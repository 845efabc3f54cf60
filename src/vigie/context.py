"""Per-request facts shared by the pipeline stages.

`Identity` is what authentication proved, `Grant` what authorization allowed,
and `Decision` the one mutable record of what every stage decided: audit,
metrics and traces read it at the end. Nothing flows backwards.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vigie.policy.model import ClientPolicy, Mode, Route


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified token: issuer, client (from the issuer's client_claim), user (`sub`)."""

    issuer: str
    client: str
    subject: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]

    def claim_text(self, name: str) -> str | None:
        """A claim as text for object-level checks; None when absent or not a scalar."""
        value = self.claims.get(name)
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, str | int | float):
            return str(value)
        return None


@dataclass(frozen=True, slots=True)
class Grant:
    """An authorized request: the policy route it matched and the exact path to forward."""

    policy: ClientPolicy
    route: Route
    path: str  # normalized; the upstream receives exactly this
    query: str  # raw query string, already validated against the route
    params: Mapping[str, str]  # path template parameters, e.g. {"id": "42"}
    mode: Mode


DECISIONS = ("allowed", "denied", "throttled", "quarantined", "error")


@dataclass(slots=True)
class Decision:
    """What happened to one request. Never holds a token, a name, a NIR or a body."""

    request_id: str
    method: str
    started: float = field(default_factory=time.perf_counter)
    wall_time: float = field(default_factory=time.time)
    client: str | None = None
    subject: str | None = None  # raw `sub`: only ever written pseudonymized
    route: str | None = None  # policy route name; never a raw path
    mode: Mode = Mode.ENFORCE
    status: int = 0
    decision: str = "allowed"
    reason: str | None = None  # machine word: why denied/throttled
    would_block: str | None = None  # report-only: what enforce would have done
    auth_failure: str | None = None
    patients: list[str] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    masked: Counter[str] = field(default_factory=Counter)  # by action
    nir_detections: Counter[str] = field(default_factory=Counter)  # by where
    records: int = 0
    records_flushed: int = 0  # streamed: records already audited in an earlier segment line
    withheld: int = 0
    forms: dict[str, str] | None = None  # field selector -> disclosed form (incident.containment)
    anomaly_score: float = 0.0
    upstream_seconds: float | None = None
    upstream_status: int | None = None

    @property
    def masked_total(self) -> int:
        return sum(self.masked.values())

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
