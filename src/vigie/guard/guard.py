"""The bulk-extraction guard: admits or refuses a request, then settles what it disclosed.

`admit` runs before forwarding: quarantine, decoy path ids, then one store call that
checks every budget and **reserves** (`guard.reservation`): a lease per subject holding
the records and patients the response may disclose, the path's patient checked and
added to the distinct set at once, the concurrency cap counted. The anomaly throttle (a
principal with score >= `throttle_score`, or any principal of a client under a
coordinated-extraction alert) divides its request rate by `penalty_factor`.
`observe` runs after the response is built, before it leaves: one store call settles
the reservation (releases the lease, counts the records and patients disclosed), then
disclosed decoys and the enumeration signals are checked (`guard.detection`).
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
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache

from vigie.config import Settings
from vigie.context import Decision, Grant, Identity
from vigie.errors import Throttled
from vigie.guard.detection import Detector
from vigie.guard.events import SecurityEvents
from vigie.guard.limits import Budget, rate_limit_headers
from vigie.guard.memory_store import MemoryStore
from vigie.guard.observation import Observation, encode
from vigie.guard.quarantines import Quarantines
from vigie.guard.redis_store import RedisStore
from vigie.guard.reservation import Reservation, RoutePlan, Settlement, plan_route
from vigie.guard.signals import GuardTuning
from vigie.guard.store import Check, GuardStore, Verdict, client_tag, principal_tag
from vigie.minimize import nir
from vigie.policy.model import ClientPolicy, Mode, Route
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


@dataclass(frozen=True, slots=True)
class _Held:
    """The leases one admitted request holds until it is settled."""

    decision: Decision
    leases: tuple[tuple[str, Budget, str, bool], ...]  # (tag, budget, lease, shared)
    until: float  # monotonic: forgotten after the leases expired anyway


# Refused by the guard itself, so never forwarded. "denied" is observed: after forwarding
# it is the 404 of a withheld record, the very thing the not-found signal counts.
_NOT_FORWARDED = frozenset({"throttled", "quarantined"})
_REFRESH_SECONDS = 5.0
LEASE_MARGIN_SECONDS = 3.0  # a lease outlives the upstream timeout by this much
DECISION_HEADER = "Vigie-Decision"
_THROTTLE_DETAILS = {
    "requests": "request rate limit of this account reached",
    "records": "records budget of this account reached",
    "patients": "distinct-patients budget of this account reached",
    "concurrency": "too many requests of this account in flight",
    "client-requests": "request rate limit of this application reached",
    "client-records": "records budget of this application reached",
    "client-patients": "distinct-patients budget of this application reached",
    "client-concurrency": "too many requests of this application in flight",
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
        self.lease_seconds = settings.upstream_timeout_seconds + LEASE_MARGIN_SECONDS
        self._refresh = asyncio.Event()
        self.quarantines_ = Quarantines(store, metrics, self.events, self.tuning,
                                        settings.guard.quarantine_minutes * 60.0,
                                        forget=self._forget, changed=self._refresh.set)
        # Same on every replica sharing the pseudonym key, so distinct counts agree.
        self._ref_key = pseudonymizer.token("vigie.guard", "patient-digest-key").encode()[:64]
        offset = hashlib.blake2b(b"walk-offset", key=self._ref_key, digest_size=7).digest()
        self.detector = Detector(self.tuning, self.quarantines_, int.from_bytes(offset, "big"))
        self._pseudonym = lru_cache(maxsize=65_536)(pseudonymizer.principal)
        self._decoy_refs = lru_cache(maxsize=1024)(self._decoys_for)
        self._compiled: dict[int, _Compiled] = {}
        self._plans: dict[int, tuple[Route, RoutePlan]] = {}
        self._held: dict[int, _Held] = {}
        self._clients: set[str] = set()  # served here: their alerts are refreshed
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
                await self.quarantines_.refresh_alerts(self._clients)
                self.quarantines_.publish_all()
                self._forget_expired_holds()
            except Exception as exc:  # gauges must never stop the guard
                log.error("guard gauge refresh failed: %s", type(exc).__name__)

    # -- before forwarding -------------------------------------------------------------
    async def admit(self, identity: Identity, grant: Grant, decision: Decision) -> None:
        client = identity.client
        pseudonym = self._pseudonym(client, identity.subject)
        compiled = self._compile(grant.policy)
        limits, client_limits = compiled.limits, compiled.client_limits
        if client not in self._clients and len(self._clients) < 4096:
            self._clients.add(client)
        report_only = grant.mode is Mode.REPORT_ONLY
        score = self.detector.score(client, pseudonym) if limits.enumeration else 0.0
        decision.anomaly_score = max(decision.anomaly_score, score)

        if self._decoys and not self._decoys.isdisjoint(grant.params.values()):
            found = self.quarantines_.quarantine(client, pseudonym, "decoy", grant.mode,
                                                 "decoy_accessed")
            decision.anomaly_score = 1.0
            self._refuse(decision, "quarantined", "decoy", found.until - time.time(), limits,
                         client_limits, report_only, signal="decoy")
            return

        slowed = score >= self.tuning.throttle_score or (
            self.quarantines_.alerted(client)
            and not self.detector.established(client, pseudonym))
        penalty = self.tuning.penalty_factor if slowed else 1.0
        held = self._reservation(client, grant)
        checks = [Check(principal_tag(client, pseudonym), compiled.budget, penalty,
                        (client, pseudonym), held)]
        if compiled.client_budget is not None:
            checks.append(Check(client_tag(client), compiled.client_budget, reservation=held))
        verdicts = await self.store.admit(checks)
        leases = tuple((check.tag, check.budget, verdict.lease, verdict.shared)
                       for check, verdict in zip(checks, verdicts, strict=True)
                       if verdict.lease)
        refused = any(v.quarantine is not None or v.refused for v in verdicts)
        if refused:
            if leases:  # one subject admitted, another refused: nothing stays held
                await self._release(leases)
        elif leases:
            self._held[id(decision)] = _Held(decision, leases,
                                             time.monotonic() + self.lease_seconds)
        self._refuse_verdicts(decision, verdicts, penalty, limits, client_limits, report_only)

    def _refuse_verdicts(self, decision: Decision, verdicts: list[Verdict], penalty: float,
                         limits: Limits, client_limits: Limits | None,
                         report_only: bool) -> None:
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

    def _reservation(self, client: str, grant: Grant) -> Reservation:
        plan = self._plan(grant.route)
        patient = ""
        if plan.patient_param is not None:
            ref = grant.params.get(plan.patient_param)
            if ref:
                # The reference the response's record will carry, so it counts once.
                ref = self.pseudonymizer.token(client, ref) if plan.id_pseudonymized \
                    else nir.mask_text(ref)[0]
                patient = self._digest(ref)
        return Reservation(secrets.token_hex(8), math.ceil(self.lease_seconds * 1000),
                           plan.records, plan.patients, patient)

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
        """Settle the reservation with what was disclosed, then learn from the answer."""
        try:
            held = self._take(decision)
            if decision.decision in _NOT_FORWARDED:
                if held is not None:
                    await self._release(held.leases)
                return
            client = identity.client
            pseudonym = self._pseudonym(client, identity.subject)
            compiled = self._compile(grant.policy)
            own = self.detector.observation(grant, decision, self._plan(grant.route).max_page) \
                if compiled.limits.enumeration else None
            shared = await self._settle_answer(client, pseudonym, compiled, held, decision, own)
            await self._learn(client, pseudonym, compiled, grant, decision, own, shared)
        except Exception as exc:  # observing must never break a response already built
            log.error("guard observe failed: %s", type(exc).__name__)

    async def release(self, decision: Decision) -> None:
        """A request that ended before its response (client gone): free its leases."""
        held = self._take(decision)
        if held is not None:
            with contextlib.suppress(Exception):
                await self._release(held.leases)

    async def observe_disclosed(self, identity: Identity, grant: Grant,
                                segment: Decision) -> None:
        """One segment of a long stream: its records and patients feed the budgets now.

        The end-of-response `observe` then counts only what came after the last segment
        (`Decision.records_flushed`), so nothing is counted twice.
        """
        try:
            if segment.decision not in _NOT_FORWARDED:
                client = identity.client
                pseudonym = self._pseudonym(client, identity.subject)
                self._feed(client, pseudonym, self._compile(grant.policy), segment.records,
                           segment.patients)
                if self._decoys and segment.patients and \
                        not self._decoy_refs(client).isdisjoint(segment.patients):
                    self.quarantines_.quarantine(client, pseudonym, "decoy", grant.mode,
                                                 "decoy_disclosed")
        except Exception as exc:
            log.error("guard observe failed: %s", type(exc).__name__)

    def _take(self, decision: Decision) -> _Held | None:
        held = self._held.pop(id(decision), None)
        return held if held is not None and held.decision is decision else None

    async def _settle_answer(self, client: str, pseudonym: str, compiled: _Compiled,
                             held: _Held | None, decision: Decision,
                             own: Observation | None) -> list[tuple[str, str]]:
        """One store call: leases released, facts counted, the observation shared."""
        records = decision.records - decision.records_flushed
        patients = decision.patients
        digests = [self._digest(ref) for ref in patients] if patients else []
        held_by = {tag: (lease, shared) for tag, _, lease, shared in held.leases} \
            if held is not None else {}
        subjects = [(principal_tag(client, pseudonym), compiled.budget)]
        if compiled.client_budget is not None:
            subjects.append((client_tag(client), compiled.client_budget))
        settlements = []
        for index, (tag, budget) in enumerate(subjects):
            lease, shared = held_by.get(tag, ("", True))
            observation = encode(own) if own is not None and index == 0 else ""
            if not (lease or observation or (records and budget.records_interval_ms)
                    or (digests and budget.patients_limit)):
                continue
            settlements.append(Settlement(
                tag, budget, lease, shared, records, digests, observation,
                self.detector.seen(client, pseudonym) if observation else "",
                self.detector.observation_ttl_ms))
        return await self.store.settle(settlements) if settlements else []

    async def _release(self, leases: tuple[tuple[str, Budget, str, bool], ...]) -> None:
        """Leases given back with nothing disclosed (refused, or the client left)."""
        await self.store.settle([Settlement(tag, budget, lease, shared, 0, ())
                                 for tag, budget, lease, shared in leases])

    def _feed(self, client: str, pseudonym: str, compiled: _Compiled, records: int,
              patients: list[str]) -> None:
        """Records and distinct patients of a stream segment: late facts, batched."""
        if records or patients:
            digests = [self._digest(ref) for ref in patients] if patients else []
            self.store.record(principal_tag(client, pseudonym), compiled.budget, records, digests)
            if compiled.client_budget is not None:
                self.store.record(client_tag(client), compiled.client_budget, records, digests)

    async def _learn(self, client: str, pseudonym: str, compiled: _Compiled, grant: Grant,
               decision: Decision, own: Observation | None,
               shared: list[tuple[str, str]]) -> None:
        patients = decision.patients
        if self._decoys and patients and not self._decoy_refs(client).isdisjoint(patients):
            if decision.reason != "decoy":  # else admit counted it (report-only forwards)
                self.quarantines_.quarantine(client, pseudonym, "decoy", grant.mode,
                                             "decoy_disclosed")
            decision.anomaly_score = 1.0
            return
        if own is not None:
            await self.detector.observe(client, pseudonym, grant, decision, own, shared)

    def _forget_expired_holds(self) -> None:
        now = time.monotonic()
        for key in [k for k, held in self._held.items() if held.until < now]:
            del self._held[key]

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

    def _plan(self, route: Route) -> RoutePlan:
        found = self._plans.get(id(route))
        if found is not None and found[0] is route:
            return found[1]
        if len(self._plans) > 4096:
            self._plans.clear()
        plan = plan_route(route)
        self._plans[id(route)] = (route, plan)
        return plan

    def _digest(self, ref: str) -> str:
        # Stores count patients by keyed digest: Redis never holds who saw which patient.
        return hashlib.blake2b(ref.encode(), key=self._ref_key, digest_size=8).hexdigest()

    def _decoys_for(self, client: str) -> frozenset[str]:
        # Disclosed references are ids, or their pseudonyms on routes that pseudonymize.
        return self._decoys | {self.pseudonymizer.token(client, d) for d in self._decoys}

    def _forget(self, client: str, pseudonym: str) -> None:
        self.detector.forget(client, pseudonym)

    # -- quarantines -------------------------------------------------------------------
    async def quarantines(self) -> list[dict[str, object]]:
        return await self.quarantines_.listing()

    async def lift(self, client: str, subject_pseudonym: str) -> bool:
        return await self.quarantines_.lift(client, subject_pseudonym)


def _token(signal: str) -> str:
    """A structured-field token (a stored reason could hold anything)."""
    cleaned = "".join(c for c in signal if c.isascii() and (c.isalnum() or c in "_-.:"))[:40]
    return cleaned if cleaned[:1].isalpha() else "unknown"
