"""Settlement, after the response is built and before it leaves.

`observe` makes one store call that settles the reservation (releases the lease, counts
the records and patients disclosed, shares the enumeration observation), then checks
disclosed decoys and feeds the enumeration signals (`guard.detection`). `release` gives
the leases back when a request ended before its response; `observe_disclosed` counts
one segment of a long stream at once. Nothing here raises to the request path.
"""

from __future__ import annotations

import contextlib
import logging

from vigie.context import Decision, Grant, Identity
from vigie.guard.admission import release
from vigie.guard.compiled import _Compiled
from vigie.guard.holds import _Held
from vigie.guard.observation import Observation, encode
from vigie.guard.parts import Parts
from vigie.guard.reservation import Settlement
from vigie.guard.store import client_tag, principal_tag

log = logging.getLogger("vigie.guard")

# Refused by the guard itself, so never forwarded. "denied" is observed: after forwarding
# it is the 404 of a withheld record, the very thing the not-found signal counts.
_NOT_FORWARDED = frozenset({"throttled", "quarantined"})


class Settle:
    def __init__(self, parts: Parts) -> None:
        self.p = parts

    async def observe(self, identity: Identity, grant: Grant, decision: Decision) -> None:
        """Settle the reservation with what was disclosed, then learn from the answer."""
        try:
            held = self.p.holds.take(decision)
            if decision.decision in _NOT_FORWARDED:
                if held is not None:
                    await release(self.p.store, held.leases)
                return
            client = identity.client
            pseudonym = self.p.pseudonym(client, identity.subject)
            compiled = self.p.compiler._compile(grant.policy)
            own = None
            if compiled.limits.enumeration:
                plan = self.p.compiler._plan(grant.route)
                own = self.p.detector.observation(grant, decision, plan.max_page,
                                                  plan.size_param)
            shared = await self._settle_answer(client, pseudonym, compiled, held, decision, own)
            await self._learn(client, pseudonym, grant, decision, own, shared)
        except Exception as exc:  # observing must never break a response already built
            log.error("guard observe failed: %s", type(exc).__name__)

    async def release(self, decision: Decision) -> None:
        """A request that ended before its response (client gone): free its leases."""
        held = self.p.holds.take(decision)
        if held is not None:
            with contextlib.suppress(Exception):
                await release(self.p.store, held.leases)

    async def observe_disclosed(self, identity: Identity, grant: Grant,
                                segment: Decision) -> None:
        """One segment of a long stream: its records and patients feed the budgets now.

        The end-of-response `observe` then counts only what came after the last segment
        (`Decision.records_flushed`), so nothing is counted twice.
        """
        try:
            if segment.decision not in _NOT_FORWARDED:
                client = identity.client
                pseudonym = self.p.pseudonym(client, identity.subject)
                self._feed(client, pseudonym, self.p.compiler._compile(grant.policy),
                           segment.records, segment.patients)
                if self.p.refs.decoy_disclosed(client, segment.patients):
                    self.p.quarantines.quarantine(client, pseudonym, "decoy", grant.mode,
                                                "decoy_disclosed")
        except Exception as exc:
            log.error("guard observe failed: %s", type(exc).__name__)

    async def _settle_answer(self, client: str, pseudonym: str, compiled: _Compiled,
                             held: _Held | None, decision: Decision,
                             own: Observation | None) -> list[tuple[str, str]]:
        """One store call: leases released, facts counted, the observation shared."""
        records = decision.records - decision.records_flushed
        patients = decision.patients
        digests = [self.p.refs.digest(ref) for ref in patients] if patients else []
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
                self.p.detector.seen(client, pseudonym) if observation else "",
                self.p.detector.observation_ttl_ms))
        return await self.p.store.settle(settlements) if settlements else []

    def _feed(self, client: str, pseudonym: str, compiled: _Compiled, records: int,
              patients: list[str]) -> None:
        """Records and distinct patients of a stream segment: late facts, batched."""
        if records or patients:
            digests = [self.p.refs.digest(ref) for ref in patients] if patients else []
            self.p.store.record(principal_tag(client, pseudonym), compiled.budget, records, digests)
            if compiled.client_budget is not None:
                self.p.store.record(client_tag(client), compiled.client_budget, records, digests)

    async def _learn(self, client: str, pseudonym: str, grant: Grant, decision: Decision,
                     own: Observation | None, shared: list[tuple[str, str]]) -> None:
        if self.p.refs.decoy_disclosed(client, decision.patients):
            if decision.reason != "decoy":  # else admit counted it (report-only forwards)
                self.p.quarantines.quarantine(client, pseudonym, "decoy", grant.mode,
                                            "decoy_disclosed")
            decision.anomaly_score = 1.0
            return
        if own is not None:
            await self.p.detector.observe(client, pseudonym, grant, decision, own, shared)
