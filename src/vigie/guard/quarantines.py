"""Quarantines, the client alert and the anomaly gauges: the guard's progressive response.

`quarantine` suspends a principal (in the store, so every replica enforces it) and
records the detection (metric, security event); `suspect` notes an anomalous principal
in the store (shared by the replicas with Redis) and raises the client alert when
`coordinated_principals` of one client are anomalous within `coordinated_window_s`; the
alert is cached here for the admissions and refreshed from the store with the gauges,
which publish each client's highest anomaly score.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from prometheus_client import Gauge

from vigie.guard.events import SecurityEvents
from vigie.guard.signals import GuardTuning
from vigie.guard.store import GuardStore, Quarantine
from vigie.policy.model import Mode
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.guard")


class Quarantines:
    def __init__(self, store: GuardStore, metrics: Metrics, events: SecurityEvents,
                 tuning: GuardTuning, quarantine_seconds: float,
                 forget: Callable[[str, str], None], changed: Callable[[], None]) -> None:
        self.store = store
        self.metrics = metrics
        self.events = events
        self.tuning = tuning
        self.seconds = quarantine_seconds
        self._forget = forget  # drop a principal's evidence
        self._changed = changed  # wake the gauge refresher
        self._scores: dict[str, dict[str, tuple[float, float]]] = {}  # (score, until)
        self._alerts: dict[str, float] = {}  # client -> coordinated-extraction alert until
        self._gauges: dict[str, Gauge] = {}

    def quarantine(self, client: str, pseudonym: str, reason: str, mode: Mode, event: str,
                   also: list[str] | None = None, *, counted: str = "") -> Quarantine:
        """`counted`: a signal already counted as a detection when it throttled."""
        found = Quarantine(client, pseudonym, time.time() + self.seconds, reason, mode.value)
        self.store.quarantine(found)
        self._forget(client, pseudonym)
        self.set_score(client, pseudonym, 1.0, found.until)
        for signal in [reason, *(also or [])]:
            # Every quarantine is a detection, decoys included (alerts split on signal="decoy").
            if signal != counted:
                self.detected(client, signal)
            self.emit(event, client, pseudonym, signal, 1.0, "quarantine", mode)
        self._changed()
        return found

    def detected(self, client: str, signal: str) -> None:
        self.metrics.enumeration_detections.labels(client=client, signal=signal).inc()

    def emit(self, event: str, client: str, pseudonym: str, signal: str, score: float,
             action: str, mode: Mode) -> None:
        self.metrics.security_events.labels(client=client, signal=signal, action=action).inc()
        self.events.emit(event, client=client, principal=pseudonym, signal=signal, score=score,
                         action=action, mode=mode.value)

    # -- client alert (one operation behind many accounts) ------------------------------
    def alerted(self, client: str) -> bool:
        until = self._alerts.get(client)
        if until is None:
            return False
        if until > time.time():
            return True
        del self._alerts[client]
        return False

    async def suspect(self, client: str, pseudonym: str, mode: Mode) -> bool:
        """Note an anomalous principal; True while its client is under alert."""
        t = self.tuning
        until, raised = await self.store.suspect(client, pseudonym, t.coordinated_window_s,
                                                 t.coordinated_principals, self.seconds)
        if until:
            self._alerts[client] = max(until, self._alerts.get(client, 0.0))
        if raised:
            # Counted per principal it quarantines (signal="coordinated"), not here.
            self.emit("coordinated_extraction", client, pseudonym, "coordinated", 1.0,
                      "client_throttle", mode)
            log.warning("coordinated extraction suspected for client %s: %d principals",
                        client, t.coordinated_principals)
        return self.alerted(client)

    async def refresh_alerts(self, clients: Iterable[str]) -> None:
        """Alerts other replicas raised, for clients this replica serves."""
        found = await self.store.alerts(sorted(set(clients) | set(self._alerts)))
        self._alerts.update(found)

    async def listing(self) -> list[dict[str, object]]:
        found = await self.store.quarantines()
        self.metrics.quarantined_clients.set(len(found))
        return [q.as_dict() for q in found]

    async def lift(self, client: str, subject_pseudonym: str) -> bool:
        lifted = await self.store.lift(client, subject_pseudonym)
        self._forget(client, subject_pseudonym)
        self.drop_score(client, subject_pseudonym)
        if lifted:
            self.emit("quarantine_lifted", client, subject_pseudonym, "operator", 0.0, "lift",
                      Mode.ENFORCE)
        await self.listing()
        return lifted

    # -- anomaly gauge -----------------------------------------------------------------
    def set_score(self, client: str, pseudonym: str, score: float, until: float = 0.0) -> None:
        scores = self._scores.setdefault(client, {})
        previous = scores.get(pseudonym)
        if previous is None and score <= 0.0 and not until:
            return  # the common case: nothing to publish
        if previous is not None and previous[1] > time.time():
            until = max(until, previous[1])
        if score <= 0.0 and not until:
            scores.pop(pseudonym, None)
        else:
            scores[pseudonym] = (score, until)
        self.publish(client)

    def drop_score(self, client: str, pseudonym: str) -> None:
        self._scores.get(client, {}).pop(pseudonym, None)
        self.publish(client)

    def publish_all(self) -> None:
        for client in list(self._scores):
            self.publish(client)

    def publish(self, client: str) -> None:
        now = time.time()
        scores = self._scores.get(client, {})
        best = 0.0
        for pseudonym, (score, until) in list(scores.items()):
            if until and until <= now:
                scores[pseudonym] = (score, 0.0) if score < 1.0 else (0.0, 0.0)
                score = scores[pseudonym][0]
            best = max(best, 1.0 if until > now else score)
        gauge = self._gauges.get(client)
        if gauge is None:
            gauge = self._gauges[client] = self.metrics.anomaly_score.labels(client=client)
        gauge.set(best)
