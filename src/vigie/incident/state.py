"""`IncidentState`: the revocations and switches in force, indexed for the request path.

Immutable: a change builds a new state and swaps it in whole, so a request sees one
consistent picture without locks. Entries past their `expires` are ignored at once
(and swept from the store later).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vigie.incident.model import GLOBAL, Containment, Revocation, RevocationKind


@dataclass(frozen=True, slots=True)
class IncidentState:
    revocations: Mapping[str, Revocation] = field(default_factory=dict)  # by id
    containments: Mapping[str, Containment] = field(default_factory=dict)  # by scope
    by_client: Mapping[str, tuple[Revocation, ...]] = field(default_factory=dict)
    by_user: Mapping[tuple[str, str], tuple[Revocation, ...]] = field(default_factory=dict)
    by_jti: Mapping[str, tuple[Revocation, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, revocations: Iterable[Revocation],
           containments: Iterable[Containment]) -> IncidentState:
        by_id = {r.id: r for r in revocations}
        by_client: dict[str, list[Revocation]] = {}
        by_user: dict[tuple[str, str], list[Revocation]] = {}
        by_jti: dict[str, list[Revocation]] = {}
        for r in by_id.values():
            if r.kind is RevocationKind.CLIENT and r.client:
                by_client.setdefault(r.client, []).append(r)
            elif r.kind is RevocationKind.USER and r.client and r.principal:
                by_user.setdefault((r.client, r.principal), []).append(r)
            elif r.kind is RevocationKind.JTI and r.jti:
                by_jti.setdefault(r.jti, []).append(r)
        return cls(revocations=by_id, containments={c.scope: c for c in containments},
                   by_client={k: tuple(v) for k, v in by_client.items()},
                   by_user={k: tuple(v) for k, v in by_user.items()},
                   by_jti={k: tuple(v) for k, v in by_jti.items()})

    @property
    def empty(self) -> bool:
        return not self.revocations and not self.containments

    def revoked(self, client: str, principal: str, jti: str | None, issued_at: float | None,
                now: float) -> Revocation | None:
        """The revocation in force that covers this token, if any."""
        candidates: tuple[Revocation, ...] = (
            self.by_client.get(client, ()) + self.by_user.get((client, principal), ()))
        if jti is not None:
            candidates += tuple(r for r in self.by_jti.get(jti, ())
                                if r.client is None or r.client == client)
        for revocation in candidates:
            if revocation.expires > now and revocation.covers(issued_at):
                return revocation
        return None

    def switches(self, client: str, now: float) -> tuple[Containment, ...]:
        """The switches in force for `client`: its own and the global one."""
        found = []
        for scope in (client, GLOBAL):
            switch = self.containments.get(scope)
            if switch is not None and switch.expires > now:
                found.append(switch)
        return tuple(found)

    def active(self, now: float) -> tuple[list[Revocation], list[Containment]]:
        return ([r for r in self.revocations.values() if r.expires > now],
                [c for c in self.containments.values() if c.expires > now])
