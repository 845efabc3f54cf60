"""Which issuer may name each policy's client: refused at start-up (and on reload) when unclear.

Client names are chosen by each issuer: with two realms, `billing` of one is not
`billing` of the other. So when several issuers are configured, every policy
must name its issuer (`issuer: <exact iss>`); and whatever the number of
issuers, a policy's `issuer` must be one of them (a typo would lock its client
out without a word). With a single issuer, a policy without `issuer` belongs
to that issuer.
"""

from __future__ import annotations

from collections.abc import Sequence

from vigie.policy.loader import PolicyError
from vigie.policy.model import PolicySet


def check_policy_issuers(policies: PolicySet, issuers: Sequence[str]) -> None:
    """Raise PolicyError with one `FILE:LINE: message` per ambiguous or unknown issuer."""
    if not issuers:
        return  # no issuer: every token is refused anyway
    configured = set(issuers)
    errors: list[str] = []
    for policy in sorted(policies.clients.values(), key=lambda p: str(p.source)):
        where = f"{policy.source}:{policy.issuer_line}"
        if policy.issuer is None and len(configured) > 1:
            errors.append(
                f"{where}: issuer: policy {policy.client!r} names no issuer, and "
                f"{len(configured)} issuers are configured: a token of any of them naming "
                f"this client would get its access. Add `issuer: <exact iss>` "
                f"(one of: {', '.join(sorted(configured))})")
        elif policy.issuer is not None and policy.issuer not in configured:
            errors.append(f"{where}: issuer: {policy.issuer!r} is not a configured issuer "
                          f"(configured: {', '.join(sorted(configured))})")
    if errors:
        raise PolicyError(errors)
