"""The bulk-extraction guard: admits or refuses a request, then learns from its answer.

`admit` runs before forwarding: quarantine, decoy path ids, budgets (one store call),
and the anomaly throttle (a principal with score >= `throttle_score`, or any principal of
a client under a coordinated-extraction alert, gets its request rate divided by
`penalty_factor`). `observe` runs after the response is built: it feeds the late facts
(records, patients) to the store, checks disclosed records for decoys, and updates the
enumeration signals; a detection quarantines the principal. `coordinated_principals`
anomalous principals of one client within `coordinated_window_s` raise the client alert.
A refusal says which budget or signal refused it: `Vigie-Decision: <decision>;signal=<s>`
and the problem detail (a signal name, never a threshold, a score or a subject).
In report-only mode every decision is taken and recorded (`Decision.would_block`,
metrics, events, quarantines) but nothing raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from prometheus_client import Gauge

from vigie.config import Settings
from vigie.context import Decision, Grant, Identity
from vigie.errors import Throttled
from vigie.guard.events import SecurityEvents
from vigie.guard.limits import Budget, rate_limit_headers
from vigie.guard.redis_store import RedisStore
from vigie.guard.signals import Detection, GuardTuning, PrincipalSignals
from vigie.guard.store import (
    Check,
    GuardStore,
    MemoryStore,
    Quarantine,
    Verdict,
    client_tag,
    principal_tag,
)
from vigie.policy.model import ClientPolicy, Mode
from vigie.pseudonym import Pseudonymizer
from vigie.rates import Limits
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.guard")

@dataclass(frozen=True, slots=True)
class _Compiled:
    policy: ClientPolicy
    limits: Limits
    budget: Budget
    client_limits: Limits | None
    client_budget: Budget | None


# Refused by the guard itself, so never forwarded. "denied" is observed: after forwarding
# it is the 404 of a withheld record, the very thing the not-found signal counts.
_NOT_FORWARDED = frozenset({"throttled", "quarantined"})
_REFRESH_SECONDS = 5.0
_MAX_SUSPECTS = 1024  # per client: the alert needs a handful, not every account
DECISION_HEADER = "Vigie-Decision"
_THROTTLE_DETAILS = {
    "requests": "request rate limit of this account reached",
    "records": "records budget of this account reached",
    "patients": "distinct-patients budget of this account reached",
    "client-requests": "request rate limit of this application reached",
    "client-records": "records budget of this application reached",
    "client-patients": "distinct-patients budget of this application reached",
    "anomaly": "request rate reduced after unusual activity",
}


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
        self._decoys = frozenset(settings.guard.decoy_ids)
        self._quarantine_seconds = settings.guard.quarantine_minutes * 60.0
        self._signals: OrderedDict[tuple[str, str], PrincipalSignals] = OrderedDict()
        self._scores: dict[str, dict[str, tuple[float, float]]] = {}  # (score, quarantined until)
        self._throttled: set[tuple[str, str]] = set()
        self._suspects: dict[str, dict[str, float]] = {}  # client -> pseudonym -> last seen
        self._alerts: dict[str, float] = {}  # client -> coordinated-extraction alert until
        self._pseudonym = lru_cache(maxsize=65_536)(pseudonymizer.principal)
        self._decoy_refs = lru_cache(maxsize=1024)(self._decoys_for)
        self._compiled: dict[int, _Compiled] = {}
        # Same on every replica sharing the pseudonym key, so distinct counts agree.
        self._ref_key = pseudonymizer.token("vigie.guard", "patient-digest-key").encode()[:64]
        self._gauges: dict[str, Gauge] = {}
        self._refresh = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self.store.backend == "memory":
            self.metrics.state_backend_up.labels(backend="memory").set(1)
        await self.store.start()
        self._refresher = asyncio.create_task(self._refresh_loop(), name="vigie-guard-gauges")

    async def close(self) -> None:
        # A flag, not cancel(): on 3.11 a cancel racing asyncio.timeout can be swallowed.
        self._closing = True
        self._refresh.set()
        if self._refresher is not None:
            await self._refresher
        await self.store.close()
        self.events.close()

    async def _refresh_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_REFRESH_SECONDS):
                    await self._refresh.wait()
            self._refresh.clear()
            if self._closing:
                return
            try:
                await self.quarantines()
                for client in list(self._scores):
                    self._publish_score(client)
            except Exception as exc:  # gauges must never stop the guard
                log.error("guard gauge refresh failed: %s", type(exc).__name__)

    # -- before forwarding -------------------------------------------------------------
    async def admit(self, identity: Identity, grant: Grant, decision: Decision) -> None:
        client = identity.client
        pseudonym = self._pseudonym(client, identity.subject)
        compiled = self._compile(grant.policy)
        limits, client_limits = compiled.limits, compiled.client_limits
        report_only = grant.mode is Mode.REPORT_ONLY
        signals = self._signals.get((client, pseudonym)) if limits.enumeration else None
        score = signals.score() if signals is not None else 0.0
        decision.anomaly_score = max(decision.anomaly_score, score)

        if self._decoys and not self._decoys.isdisjoint(grant.params.values()):
            found = self._quarantine(client, pseudonym, "decoy", grant.mode, "decoy_accessed")
            decision.anomaly_score = 1.0
            self._refuse(decision, "quarantined", "decoy", found.until - time.time(), limits,
                         client_limits, report_only, signal="decoy")
            return

        slowed = score >= self.tuning.throttle_score or self._alerted(client)
        penalty = self.tuning.penalty_factor if slowed else 1.0
        checks = [Check(principal_tag(client, pseudonym), compiled.budget, penalty,
                        (client, pseudonym))]
        if compiled.client_budget is not None:
            checks.append(Check(client_tag(client), compiled.client_budget))
        verdicts = await self.store.admit(checks)

        first = verdicts[0]
        if first.quarantine is not None:
            decision.anomaly_score = 1.0
            # A quarantine decided in report-only is recorded, never enforced later on.
            recorded_only = report_only or first.quarantine.mode == Mode.REPORT_ONLY.value
            self._refuse(decision, "quarantined", "quarantined", first.retry_after_s, limits,
                         client_limits, recorded_only, signal=first.quarantine.reason)
            return
        for verdict, scope in zip(verdicts, ("", "client-"), strict=False):
            if verdict.refused is None:
                continue
            anomaly = not scope and verdict.refused == "requests" and penalty > 1.0
            reason = "anomaly" if anomaly else f"{scope}{verdict.refused}"
            self._refuse(decision, "throttled", reason, verdict.retry_after_s, limits,
                         client_limits, report_only, verdict, f"{scope}{verdict.refused}",
                         signal=reason)
            return

    def _refuse(self, decision: Decision, kind: str, reason: str, retry_after: float,
                limits: Limits, client_limits: Limits | None, report_only: bool,
                verdict: Verdict | None = None, policy: str = "requests", *,
                signal: str) -> None:
        decision.reason = reason
        if report_only:
            decision.would_block = kind
            return
        decision.decision = kind
        retry = max(1, math.ceil(retry_after))
        headers = rate_limit_headers(limits, client_limits, policy,
                                     verdict.remaining if verdict else 0,
                                     verdict.reset_s if verdict else retry)
        signal = _token(signal)
        headers[DECISION_HEADER] = f"{kind};signal={signal}"
        if kind == "quarantined":
            detail = f"access suspended after unusual activity (signal: {signal})"
        else:
            detail = f"{_THROTTLE_DETAILS.get(signal, 'rate limit exceeded')} (signal: {signal})"
        raise Throttled(detail, decision=kind, retry_after=retry, headers=headers)

    # -- after the response ------------------------------------------------------------
    async def observe(self, identity: Identity, grant: Grant, decision: Decision) -> None:
        try:
            self._observe(identity, grant, decision)
        except Exception as exc:  # observing must never break a response already built
            log.error("guard observe failed: %s", type(exc).__name__)

    async def observe_disclosed(self, identity: Identity, grant: Grant,
                                segment: Decision) -> None:
        """One segment of a long stream: its records and patients feed the budgets now.

        The end-of-response `observe` then counts only what came after the last segment
        (`Decision.records_flushed`), so nothing is counted twice.
        """
        try:
            if segment.decision not in _NOT_FORWARDED:
                self._disclose(identity, grant, segment.records, segment.patients)
        except Exception as exc:
            log.error("guard observe failed: %s", type(exc).__name__)

    def _disclose(self, identity: Identity, grant: Grant, records: int,
                  patients: list[str]) -> None:
        client = identity.client
        pseudonym = self._pseudonym(client, identity.subject)
        self._feed(client, pseudonym, self._compile(grant.policy), records, patients)
        if self._decoys and patients and not self._decoy_refs(client).isdisjoint(patients):
            self._quarantine(client, pseudonym, "decoy", grant.mode, "decoy_disclosed")

    def _feed(self, client: str, pseudonym: str, compiled: _Compiled, records: int,
              patients: list[str]) -> None:
        """Records and distinct patients disclosed: the late facts of the budgets."""
        if records or patients:
            digests = [self._digest(ref) for ref in patients] if patients else []
            self.store.record(principal_tag(client, pseudonym), compiled.budget, records, digests)
            if compiled.client_budget is not None:
                self.store.record(client_tag(client), compiled.client_budget, records, digests)

    def _observe(self, identity: Identity, grant: Grant, decision: Decision) -> None:
        if decision.decision in _NOT_FORWARDED:
            return
        client = identity.client
        pseudonym = self._pseudonym(client, identity.subject)
        compiled = self._compile(grant.policy)
        limits = compiled.limits
        patients = decision.patients
        self._feed(client, pseudonym, compiled, decision.records - decision.records_flushed,
                   patients)
        if self._decoys and patients and not self._decoy_refs(client).isdisjoint(patients):
            if decision.reason != "decoy":  # else admit counted it (report-only forwards)
                self._quarantine(client, pseudonym, "decoy", grant.mode, "decoy_disclosed")
            decision.anomaly_score = 1.0
            return
        if not limits.enumeration:
            return
        signals = self._signals_for(client, pseudonym)
        query_rule = grant.route.query
        max_page = None
        if query_rule is not None:
            max_page = next(iter(v for k, v in query_rule.max.items() if "size" in k
                                 or k in ("limit", "per_page", "count", "_count")), None)
        detections = signals.observe(time.time(), grant.route.name, grant.params, grant.query,
                                     decision.status, decision.records, decision.withheld,
                                     max_page)
        score = signals.score()
        key = (client, pseudonym)
        if not detections and score >= self.tuning.quarantine_score and \
                len(signals.strengths()) > 1:
            detections = [Detection("combined", score)]  # several signals, none alone at 1
        if detections or score >= self.tuning.throttle_score:
            alerted = self._suspect(client, pseudonym, grant.mode)
            if alerted and not detections:
                detections = [Detection("coordinated", score)]
        if detections:
            self._quarantine(client, pseudonym, detections[0].signal, grant.mode,
                             "enumeration_detected", [d.signal for d in detections[1:]])
            decision.anomaly_score = 1.0
            self._throttled.discard(key)
            return
        decision.anomaly_score = max(decision.anomaly_score, score)
        if score >= self.tuning.throttle_score and key not in self._throttled:
            self._throttled.add(key)
            strongest = max(signals.strengths().items(), key=lambda item: item[1])[0]
            self._emit("anomaly_throttled", client, pseudonym, strongest, score, "throttle",
                       grant.mode)
        elif score < self.tuning.throttle_score:
            self._throttled.discard(key)
        self._set_score(client, pseudonym, score)

    def _compile(self, policy: ClientPolicy) -> _Compiled:
        """Limits and budgets of a policy, computed once per policy object (reloads
        bring new objects; hashing frozen dataclasses per request costs too much)."""
        found = self._compiled.get(id(policy))
        if found is not None and found.policy is policy:
            return found
        if len(self._compiled) > 4096:
            self._compiled.clear()
        limits = policy.limits.inherit(self.settings.limits)
        client_limits = policy.client_limits
        found = _Compiled(policy, limits, Budget.of(limits), client_limits,
                          None if client_limits is None else Budget.of(client_limits))
        self._compiled[id(policy)] = found
        return found

    def _signals_for(self, client: str, pseudonym: str) -> PrincipalSignals:
        key = (client, pseudonym)
        found = self._signals.get(key)
        if found is not None:
            self._signals.move_to_end(key)
            return found
        found = self._signals[key] = PrincipalSignals(self.tuning)
        if len(self._signals) > self.tuning.max_principals:
            for _ in range(min(32, len(self._signals) - 1)):
                oldest, candidate = next(iter(self._signals.items()))
                if candidate.score() >= self.tuning.throttle_score:
                    self._signals.move_to_end(oldest)  # never forget a penalized principal
                    continue
                del self._signals[oldest]
                self._drop_score(*oldest)
                break
        return found

    def _digest(self, ref: str) -> str:
        # Stores count patients by keyed digest: Redis never holds who saw which patient.
        return hashlib.blake2b(ref.encode(), key=self._ref_key, digest_size=8).hexdigest()

    def _decoys_for(self, client: str) -> frozenset[str]:
        # Disclosed references are ids, or their pseudonyms on routes that pseudonymize.
        return self._decoys | {self.pseudonymizer.token(client, d) for d in self._decoys}

    # -- quarantines -------------------------------------------------------------------
    def _quarantine(self, client: str, pseudonym: str, reason: str, mode: Mode, event: str,
                    also: list[str] | None = None) -> Quarantine:
        found = Quarantine(client, pseudonym, time.time() + self._quarantine_seconds, reason,
                           mode.value)
        self.store.quarantine(found)
        self._signals.pop((client, pseudonym), None)
        self._set_score(client, pseudonym, 1.0, found.until)
        for signal in [reason, *(also or [])]:
            # Every quarantine is a detection, decoys included (alerts split on signal="decoy").
            self.metrics.enumeration_detections.labels(client=client, signal=signal).inc()
            self._emit(event, client, pseudonym, signal, 1.0, "quarantine", mode)
        self._refresh.set()
        return found

    def _emit(self, event: str, client: str, pseudonym: str, signal: str, score: float,
              action: str, mode: Mode) -> None:
        self.metrics.security_events.labels(client=client, signal=signal, action=action).inc()
        self.events.emit(event, client=client, principal=pseudonym, signal=signal, score=score,
                         action=action, mode=mode.value)

    # -- client alert (one operation behind many accounts) ------------------------------
    def _alerted(self, client: str) -> bool:
        until = self._alerts.get(client)
        if until is None:
            return False
        if until > time.time():
            return True
        del self._alerts[client]
        return False

    def _suspect(self, client: str, pseudonym: str, mode: Mode) -> bool:
        """Note an anomalous principal; True while its client is under alert."""
        now = time.time()
        suspects = self._suspects.setdefault(client, {})
        suspects.pop(pseudonym, None)
        suspects[pseudonym] = now
        horizon = now - self.tuning.coordinated_window_s
        for old in [p for p, seen in suspects.items() if seen < horizon]:
            del suspects[old]
        while len(suspects) > _MAX_SUSPECTS:
            del suspects[next(iter(suspects))]
        if self._alerted(client):
            return True
        if len(suspects) < self.tuning.coordinated_principals:
            return False
        self._alerts[client] = now + self._quarantine_seconds
        # Counted per principal it quarantines (signal="coordinated"), not here.
        self._emit("coordinated_extraction", client, pseudonym, "coordinated", 1.0,
                   "client_throttle", mode)
        log.warning("coordinated extraction suspected for client %s: %d principals", client,
                    len(suspects))
        return True

    async def quarantines(self) -> list[dict[str, object]]:
        found = await self.store.quarantines()
        self.metrics.quarantined_clients.set(len(found))
        return [q.as_dict() for q in found]

    async def lift(self, client: str, subject_pseudonym: str) -> bool:
        lifted = await self.store.lift(client, subject_pseudonym)
        self._signals.pop((client, subject_pseudonym), None)
        self._throttled.discard((client, subject_pseudonym))
        self._drop_score(client, subject_pseudonym)
        if lifted:
            self._emit("quarantine_lifted", client, subject_pseudonym, "operator", 0.0, "lift",
                       Mode.ENFORCE)
        await self.quarantines()
        return lifted

    # -- anomaly gauge -----------------------------------------------------------------
    def _set_score(self, client: str, pseudonym: str, score: float, until: float = 0.0) -> None:
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
        self._publish_score(client)

    def _drop_score(self, client: str, pseudonym: str) -> None:
        self._scores.get(client, {}).pop(pseudonym, None)
        self._publish_score(client)

    def _publish_score(self, client: str) -> None:
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


def _token(signal: str) -> str:
    """A structured-field token (a stored reason could hold anything)."""
    cleaned = "".join(c for c in signal if c.isascii() and (c.isalnum() or c in "_-.:"))[:40]
    return cleaned if cleaned[:1].isalpha() else "unknown"
