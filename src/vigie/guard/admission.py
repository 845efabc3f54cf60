"""Admission, before forwarding: admit (check and reserve), or refuse with a 429.

Quarantine, decoy path ids, then one store call that checks every budget and
**reserves** (`guard.reservation`); the anomaly throttle (a principal with score >=
`throttle_score`, or a principal of a client under a coordinated-extraction alert
that has no established clean history, `GuardTuning.established_after_s`)
divides its request rate by `penalty_factor`. A refusal says which budget or signal
refused it: `Vigie-Decision: <decision>;signal=<s>` and the problem detail (a signal
name, never a threshold, a score or a subject). In report-only nothing raises.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time

from vigie.context import Decision, Grant, Identity
from vigie.errors import Throttled
from vigie.guard.holds import Lease
from vigie.guard.limits import rate_limit_headers
from vigie.guard.parts import Parts
from vigie.guard.reservation import Reservation, Settlement
from vigie.guard.store import Check, GuardStore, Verdict, client_tag, principal_tag
from vigie.policy.model import Mode
from vigie.rates import Limits

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


async def release(store: GuardStore, leases: tuple[Lease, ...]) -> None:
    """Leases given back with nothing disclosed (refused, or the client left)."""
    await store.settle([Settlement(tag, budget, lease, shared, 0, ())
                        for tag, budget, lease, shared in leases])


class Admission:
    def __init__(self, parts: Parts) -> None:
        self.p = parts
        # Lease ids unique across replicas and restarts: a random prefix per process and a
        # counter (hand-written for speed: secrets.token_hex per request is a syscall).
        self._lease_prefix = secrets.token_hex(6)
        self._lease_numbers = itertools.count()

    async def admit(self, identity: Identity, grant: Grant, decision: Decision) -> None:
        client = identity.client
        pseudonym = self.p.pseudonym(client, identity.subject)
        compiled = self.p.compiler._compile(grant.policy)
        limits, client_limits = compiled.limits, compiled.client_limits
        if client not in self.p.clients and len(self.p.clients) < 4096:
            self.p.clients.add(client)
        report_only = grant.mode is Mode.REPORT_ONLY
        score = self.p.detector.score(client, pseudonym) if limits.enumeration else 0.0
        decision.anomaly_score = max(decision.anomaly_score, score)

        if self.p.refs.decoy_in(grant.params.values()):
            found = self.p.quarantines.quarantine(client, pseudonym, "decoy", grant.mode,
                                                "decoy_accessed")
            decision.anomaly_score = 1.0
            refuse(decision, "quarantined", "decoy", found.until - time.time(), limits,
                   client_limits, report_only, signal="decoy")
            return

        slowed = score >= self.p.tuning.throttle_score or (
            self.p.quarantines.alerted(client)
            and not self.p.detector.established(client, pseudonym))
        penalty = self.p.tuning.penalty_factor if slowed else 1.0
        held = self._reservation(client, grant)
        checks = [Check(principal_tag(client, pseudonym), compiled.budget, penalty,
                        (client, pseudonym), held)]
        if compiled.client_budget is not None:
            checks.append(Check(client_tag(client), compiled.client_budget, reservation=held))
        verdicts = await self.p.store.admit(checks)
        leases = tuple((check.tag, check.budget, verdict.lease, verdict.shared)
                       for check, verdict in zip(checks, verdicts, strict=True)
                       if verdict.lease)
        refused = any(v.quarantine is not None or v.refused for v in verdicts)
        if refused:
            if leases:  # one subject admitted, another refused: nothing stays held
                await release(self.p.store, leases)
        elif leases:
            self.p.holds.keep(decision, leases)
        _refuse_verdicts(decision, verdicts, penalty, limits, client_limits, report_only)

    def _reservation(self, client: str, grant: Grant) -> Reservation:
        plan = self.p.compiler._plan(grant.route)
        patient = ""
        if plan.patient_param is not None:
            ref = grant.params.get(plan.patient_param)
            if ref:
                patient = self.p.refs.path_patient(client, ref, plan.id_pseudonymized)
        return Reservation(f"{self._lease_prefix}{next(self._lease_numbers):x}",
                           math.ceil(self.p.holds.lease_seconds * 1000),
                           plan.records, plan.patients, patient)


def _refuse_verdicts(decision: Decision, verdicts: list[Verdict], penalty: float,
                     limits: Limits, client_limits: Limits | None, report_only: bool) -> None:
    first = verdicts[0]
    if first.quarantine is not None:
        decision.anomaly_score = 1.0
        # A quarantine decided in report-only is recorded, never enforced later on.
        recorded_only = report_only or first.quarantine.mode == Mode.REPORT_ONLY.value
        refuse(decision, "quarantined", "quarantined", first.retry_after_s, limits,
               client_limits, recorded_only, signal=first.quarantine.reason)
        return
    for verdict, scope in zip(verdicts, ("", "client-"), strict=False):
        if verdict.refused is None:
            continue
        anomaly = not scope and verdict.refused == "requests" and penalty > 1.0
        reason = "anomaly" if anomaly else f"{scope}{verdict.refused}"
        refuse(decision, "throttled", reason, verdict.retry_after_s, limits, client_limits,
               report_only, verdict, f"{scope}{verdict.refused}", signal=reason)
        return


def refuse(decision: Decision, kind: str, reason: str, retry_after: float, limits: Limits,
           client_limits: Limits | None, report_only: bool, verdict: Verdict | None = None,
           policy: str = "requests", *, signal: str) -> None:
    """Record the refusal; raise `Throttled` unless report-only."""
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


def _token(signal: str) -> str:
    """A structured-field token (a stored reason could hold anything)."""
    cleaned = "".join(c for c in signal if c.isascii() and (c.isalnum() or c in "_-.:"))[:40]
    return cleaned if cleaned[:1].isalpha() else "unknown"
