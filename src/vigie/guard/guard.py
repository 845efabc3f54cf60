"""The bulk-extraction guard: the thin facade the proxy, the app and the admin API call.

    admit()              before forwarding: check and reserve (`guard.admission`)
    observe()            after the response: settle, learn (`guard.settlement`)
    release()            a request that ended before its response: free its leases
    observe_disclosed()  one segment of a long stream: count it now
    quarantines(), lift()   the admin API (`guard.quarantines`)
    start(), close()     the store and the gauge refresher (`guard.gauges`)

The parts share one store, one `Detector` (each principal's signals, `guard.detection`),
one `Quarantines` (quarantines, client alert, anomaly gauges), one `PatientRefs`
(digests, decoys) and one `Holds` (leases of admitted requests).
In report-only mode every decision is taken and recorded (`Decision.would_block`,
metrics, events, quarantines) but nothing raises.
"""

from __future__ import annotations

from functools import lru_cache

from vigie.config import Settings
from vigie.context import Decision, Grant, Identity
from vigie.guard.admission import DECISION_HEADER, Admission
from vigie.guard.compiled import Compiler
from vigie.guard.detection import Detector
from vigie.guard.events import SecurityEvents
from vigie.guard.gauges import Refresher
from vigie.guard.holds import Holds
from vigie.guard.memory_store import MemoryStore
from vigie.guard.parts import Parts
from vigie.guard.patients import PatientRefs
from vigie.guard.quarantines import Quarantines
from vigie.guard.redis_store import RedisStore
from vigie.guard.settlement import Settle
from vigie.guard.signals import GuardTuning
from vigie.guard.store import GuardStore
from vigie.pseudonym import Pseudonymizer
from vigie.telemetry.metrics import Metrics

__all__ = ["DECISION_HEADER", "LEASE_MARGIN_SECONDS", "Guard"]

LEASE_MARGIN_SECONDS = 3.0  # a lease outlives the upstream timeout by this much


class Guard:
    def __init__(self, settings: Settings, metrics: Metrics, pseudonymizer: Pseudonymizer,
                 store: GuardStore | None = None, *, tuning: GuardTuning | None = None,
                 events: SecurityEvents | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pseudonymizer = pseudonymizer
        self.tuning = tuning or GuardTuning()
        if store is None:
            store = RedisStore(settings.redis, metrics=metrics) if settings.redis \
                else MemoryStore()
        self.store = store
        self.events = events or SecurityEvents(settings.guard.events_path)
        self.lease_seconds = settings.upstream_timeout_seconds + LEASE_MARGIN_SECONDS
        holds = Holds(self.lease_seconds)
        clients: set[str] = set()  # served here: their alerts are refreshed
        self.quarantines_ = Quarantines(store, metrics, self.events, self.tuning,
                                        settings.guard.quarantine_minutes * 60.0,
                                        forget=self._forget, changed=self._wake)
        self._refresher = Refresher(self.quarantines_, holds, clients)
        refs = PatientRefs(pseudonymizer, settings.guard.decoy_ids)
        self.detector = Detector(self.tuning, self.quarantines_, refs.walk_offset())
        compiler = Compiler(settings.limits)
        pseudonym = lru_cache(maxsize=65_536)(pseudonymizer.principal)
        parts = Parts(store, self.tuning, self.quarantines_, self.detector, compiler, refs,
                      holds, pseudonym, clients)
        self._admission = Admission(parts)
        self._settle = Settle(parts)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self.store.backend == "memory":
            self.metrics.state_backend_up.labels(backend="memory").set(1)
        await self.store.start()
        self._refresher.start()

    async def close(self) -> None:
        await self._refresher.close()
        await self.store.close()
        self.events.close()

    # -- the request path --------------------------------------------------------------
    async def admit(self, identity: Identity, grant: Grant, decision: Decision) -> None:
        await self._admission.admit(identity, grant, decision)

    async def observe(self, identity: Identity, grant: Grant, decision: Decision) -> None:
        """Settle the reservation with what was disclosed, then learn from the answer."""
        await self._settle.observe(identity, grant, decision)

    async def release(self, decision: Decision) -> None:
        """A request that ended before its response (client gone): free its leases."""
        await self._settle.release(decision)

    async def observe_disclosed(self, identity: Identity, grant: Grant,
                                segment: Decision) -> None:
        """One segment of a long stream: its records and patients feed the budgets now."""
        await self._settle.observe_disclosed(identity, grant, segment)

    # -- admin -------------------------------------------------------------------------
    async def quarantines(self) -> list[dict[str, object]]:
        return await self.quarantines_.listing()

    async def lift(self, client: str, subject_pseudonym: str) -> bool:
        return await self.quarantines_.lift(client, subject_pseudonym)

    def _forget(self, client: str, pseudonym: str) -> None:
        self.detector.forget(client, pseudonym)

    def _wake(self) -> None:
        self._refresher.wake()
