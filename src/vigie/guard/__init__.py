"""The bulk-extraction guard: per-principal budgets, enumeration signals, quarantines.

    Guard            the stage the proxy calls: admit() (check and reserve) before
                     forwarding, observe() (settle, learn) after
    GuardStore       the state protocol; MemoryStore (one process), RedisStore (replicas)
    Reservation      what an admission holds until settled (guard.reservation)
    GuardTuning      thresholds of the enumeration signals and of the progressive response
    SecurityEvents   JSON-lines security events for the SIEM
"""

from vigie.guard.events import SecurityEvents
from vigie.guard.guard import Guard
from vigie.guard.limits import Budget, burst_of, rate_limit_headers
from vigie.guard.memory_store import MemoryStore
from vigie.guard.redis_store import RedisStore
from vigie.guard.reservation import Reservation, Settlement
from vigie.guard.signals import SIGNALS, Detection, GuardTuning, PrincipalSignals
from vigie.guard.store import Check, GuardStore, Quarantine, Verdict

__all__ = [
    "SIGNALS",
    "Budget",
    "Check",
    "Detection",
    "Guard",
    "GuardStore",
    "GuardTuning",
    "MemoryStore",
    "PrincipalSignals",
    "Quarantine",
    "RedisStore",
    "Reservation",
    "SecurityEvents",
    "Settlement",
    "Verdict",
    "burst_of",
    "rate_limit_headers",
]
