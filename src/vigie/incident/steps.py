"""The seam between the pipeline and incident response: the two steps `proxy.py` calls.

`Incidents` (registry.py) is the real one; `NoIncidents` is the default of `Stages`, for
pipelines without an operator (the policy test runner).
"""

from __future__ import annotations

from typing import Protocol

from vigie.context import Decision, Grant, Identity


class IncidentSteps(Protocol):
    """Revocations (401 after identify) and containment switches (after authorize)."""

    def check_revoked(self, identity: Identity, principal: str, decision: Decision) -> None: ...

    def contain(self, grant: Grant, decision: Decision) -> Grant: ...


class NoIncidents:
    def check_revoked(self, identity: Identity, principal: str, decision: Decision) -> None:
        return None

    def contain(self, grant: Grant, decision: Decision) -> Grant:
        return grant
