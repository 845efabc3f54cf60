"""The revocation step of the pipeline, right after identify: 401 for a revoked token.

A token is revoked when a revocation in force names its client, its user (the audit
pseudonym of its `sub`) or its `jti`, and it was issued (`iat`) before the revocation's
`issued_before`. Enforced in every mode: revoking is an operator's explicit act.
"""

from __future__ import annotations

import time

from vigie.context import Decision, Identity
from vigie.errors import AuthError
from vigie.incident.state import IncidentState

REVOKED = "revoked"  # the audit reason and the vigie_auth_failures_total label


def check_revoked(state: IncidentState, identity: Identity, principal: str,
                  decision: Decision) -> None:
    """Raise AuthError(`revoked`) when a revocation in force covers this token."""
    if not state.revocations:
        return
    claims = identity.claims
    jti = claims.get("jti")
    issued = claims.get("iat")
    issued_at = float(issued) if isinstance(issued, int | float) and not isinstance(
        issued, bool) else None
    found = state.revoked(identity.client, principal, jti if isinstance(jti, str) else None,
                          issued_at, time.time())
    if found is not None:
        decision.client = identity.client
        raise AuthError(REVOKED, "token revoked")
