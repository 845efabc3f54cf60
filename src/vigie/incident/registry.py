"""`Incidents`: the live revocations and switches of this replica, kept in step with the store.

Reads never wait on the store: the request path looks at an immutable `IncidentState`
rebuilt by a background loop that polls the store's version every `POLL_SECONDS`.

Changes go to the store first. A revocation or a switch the store cannot confirm
(Redis down, disk full) is still enforced here at once and retried until the store
takes it: the operator is told it is NOT confirmed (other replicas may not know it).
A lift the store cannot confirm is refused: lifting is never done halfway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from vigie.context import Decision, Grant, Identity
from vigie.incident import containment
from vigie.incident.audit_events import IncidentEvents
from vigie.incident.model import (
    CLOCK_SKEW_SECONDS,
    GLOBAL,
    Containment,
    ContainMode,
    IncidentInputError,
    Revocation,
    RevocationKind,
    check_name,
    check_reason,
    iso,
    new_revocation_id,
)
from vigie.incident.revocation import check_revoked
from vigie.incident.state import IncidentState
from vigie.incident.stores import IncidentStore, StoreUnavailable
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.incident")

POLL_SECONDS = 0.2
SWEEP_SECONDS = 60.0
MAX_AHEAD_SECONDS = 30 * 86400  # an `issued_before` at most this far ahead


class UnknownClient(IncidentInputError):
    """No policy names this client (404)."""


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of a change: the entry, and whether the store confirmed it."""

    entry: Revocation | Containment
    confirmed: bool


class Incidents:
    def __init__(self, store: IncidentStore, metrics: Metrics, events: IncidentEvents,
                 known_clients: Callable[[], Collection[str]], *,
                 max_token_lifetime_seconds: float = 43200.0, can_pseudonymize: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.can_pseudonymize = can_pseudonymize
        self.state = IncidentState()
        self._metrics = metrics
        self._events = events
        self._known_clients = known_clients
        self._max_lifetime = max_token_lifetime_seconds
        self._clock = clock
        self._version: str | None = None
        self._stored = IncidentState()
        self._unconfirmed_r: dict[str, Revocation] = {}
        self._unconfirmed_c: dict[str, Containment] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
        self._shown_switches: set[tuple[str, str]] = set()
        self._store_up = metrics.incident_store_up.labels(backend=store.backend)
        self._store_ok = True
        self._changed = True  # rebuild the request-path state at the next sync

    # -- the two pipeline steps (vigie.proxy.IncidentSteps) -----------------------------
    def check_revoked(self, identity: Identity, principal: str, decision: Decision) -> None:
        check_revoked(self.state, identity, principal, decision)

    def contain(self, grant: Grant, decision: Decision) -> Grant:
        return containment.contain(self.state, grant, decision,
                                   can_pseudonymize=self.can_pseudonymize)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self.sync()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.store.close()
        self._events.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any bug
                log.error("incident state sync failed: %s", type(exc).__name__)

    async def sync(self) -> None:
        """Push unconfirmed changes, reload when the store moved, refresh the metrics."""
        now = self._clock()
        try:
            await self._push_unconfirmed()
            version = await self.store.version()
            if version != self._version:
                revocations, containments = await self.store.load()
                self._stored = IncidentState.of(revocations, containments)
                self._version = version
                self._changed = True
            if now - self._last_sweep > SWEEP_SECONDS:
                self._last_sweep = now
                await self.store.sweep(now)
            if not self._store_ok:
                log.info("incident store %s answers again", self.store.backend)
            self._store_ok = True
            self._store_up.set(1)
        except StoreUnavailable as exc:
            if self._store_ok:  # once per outage, not every poll
                log.warning("incident store %s unavailable (%s): enforcing the last known "
                            "state, retrying", self.store.backend, exc)
            self._store_ok = False
            self._store_up.set(0)
        if self._changed:
            self._rebuild(now)
        else:
            self._show(now)  # switches and revocations end with time, not only with changes

    async def _push_unconfirmed(self) -> None:
        for revocation in list(self._unconfirmed_r.values()):
            await self.store.put_revocation(revocation)
            self._unconfirmed_r.pop(revocation.id, None)
            self._version = None
            self._changed = True
            log.info("revocation %s confirmed by the store", revocation.id)
        for switch in list(self._unconfirmed_c.values()):
            await self.store.put_containment(switch)
            self._unconfirmed_c.pop(switch.scope, None)
            self._version = None
            self._changed = True
            log.info("containment of %s confirmed by the store", switch.scope)

    def _rebuild(self, now: float) -> None:
        self._changed = False
        revocations = {**self._stored.revocations, **self._unconfirmed_r}
        containments = dict(self._stored.containments)
        for scope, switch in self._unconfirmed_c.items():
            containments[scope] = switch
        self.state = IncidentState.of(revocations.values(), containments.values())
        self._show(now)

    def _show(self, now: float) -> None:
        active_r, active_c = self.state.active(now)
        m = self._metrics
        for kind in RevocationKind:
            m.revocations_active.labels(kind=str(kind)).set(
                sum(1 for r in active_r if r.kind is kind))
        shown = {(c.scope, str(c.mode)) for c in active_c}
        for scope, mode in self._shown_switches - shown:
            m.containment_active.labels(client=scope, mode=mode).set(0)
        for scope, mode in shown:
            m.containment_active.labels(client=scope, mode=mode).set(1)
        self._shown_switches |= shown
        m.incident_unconfirmed.set(len(self._unconfirmed_r) + len(self._unconfirmed_c))

    # -- changes ------------------------------------------------------------------------
    async def revoke(self, kind: RevocationKind, *, client: str | None, principal: str | None,
                     jti: str | None, issued_before: float | None, reason: object,
                     by: str) -> Change:
        now = self._clock()
        reason = check_reason(reason)
        if kind is not RevocationKind.JTI or client is not None:
            client = self._known(client)
        if kind is RevocationKind.USER:
            principal = check_name(principal, "principal")
        if kind is RevocationKind.JTI:
            jti = check_name(jti, "jti")
            issued_before = None
        before = now if issued_before is None else issued_before
        if before > now + MAX_AHEAD_SECONDS:
            raise IncidentInputError("issued_before: at most 30 days ahead")
        # Every token it covers was issued before `before`: none outlives the longest lifetime.
        expires = before + self._max_lifetime + CLOCK_SKEW_SECONDS
        if expires <= now:
            raise IncidentInputError(
                f"issued_before: every token issued before {iso(before)} has expired already "
                f"(incident.max_token_lifetime_seconds = {self._max_lifetime:.0f}): nothing "
                "to revoke")
        revocation = Revocation(
            id=new_revocation_id(), kind=kind, client=client,
            principal=principal if kind is RevocationKind.USER else None,
            jti=jti, issued_before=before, expires=expires, reason=reason, by=by, created=now)
        try:
            await self.store.put_revocation(revocation)
            confirmed = True
        except StoreUnavailable:
            self._unconfirmed_r[revocation.id] = revocation
            confirmed = False
        self._adopt(now, revocation=revocation)
        self._events.revoked(revocation, confirmed)
        return Change(revocation, confirmed)

    async def lift(self, revocation_id: str, by: str) -> Revocation | None:
        """Lift a revocation everywhere; raises StoreUnavailable when that cannot be confirmed.

        None when no revocation in force has this id (unknown, or already expired)."""
        found = self.state.revocations.get(revocation_id)
        await self.store.delete_revocation(revocation_id)
        self._unconfirmed_r.pop(revocation_id, None)
        self._forget(revocation_id=revocation_id)
        if found is None or found.expires <= self._clock():
            return None
        self._events.lifted(found, by)
        return found

    async def set_switch(self, scope: str, mode: ContainMode, *, reason: object, by: str,
                         expires: float) -> Change:
        now = self._clock()
        reason = check_reason(reason)
        if scope != GLOBAL:
            scope = self._known(scope)
        if expires <= now:
            raise IncidentInputError("expires: the switch would already be over "
                                     "(give a time in the future or a duration)")
        switch = Containment(scope=scope, mode=mode, reason=reason, by=by, created=now,
                             expires=expires)
        try:
            await self.store.put_containment(switch)
            confirmed = True
        except StoreUnavailable:
            self._unconfirmed_c[scope] = switch
            confirmed = False
        self._adopt(now, containment=switch)
        self._events.contained(switch, confirmed)
        return Change(switch, confirmed)

    async def release(self, scope: str, by: str) -> Containment | None:
        """End a switch everywhere; raises StoreUnavailable when that cannot be confirmed."""
        found = self.state.containments.get(scope)
        await self.store.delete_containment(scope)
        self._unconfirmed_c.pop(scope, None)
        self._forget(scope=scope)
        if found is None or found.expires <= self._clock():
            return None
        self._events.released(found, by)
        return found

    def _forget(self, *, revocation_id: str = "", scope: str = "") -> None:
        self._version = None  # reload at the next poll
        revocations = {k: v for k, v in self._stored.revocations.items() if k != revocation_id}
        containments = {k: v for k, v in self._stored.containments.items() if k != scope}
        self._stored = IncidentState.of(revocations.values(), containments.values())
        self._rebuild(self._clock())

    def _adopt(self, now: float, *, revocation: Revocation | None = None,
               containment: Containment | None = None) -> None:
        """Enforce a change on this replica at once, before the next poll."""
        revocations = dict(self._stored.revocations)
        containments = dict(self._stored.containments)
        if revocation is not None:
            revocations[revocation.id] = revocation
        if containment is not None:
            containments[containment.scope] = containment
        self._stored = IncidentState.of(revocations.values(), containments.values())
        self._rebuild(now)

    def _known(self, client: str | None) -> str:
        client = check_name(client, "client")
        if client not in self._known_clients():
            raise UnknownClient(f"client: no policy names {client!r} (check the spelling; "
                                "`vigie policy check` lists the clients)")
        return client

    def now(self) -> float:
        return self._clock()

    @property
    def unconfirmed(self) -> int:
        return len(self._unconfirmed_r) + len(self._unconfirmed_c)
