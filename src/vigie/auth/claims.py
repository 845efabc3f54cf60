"""From verified claims to an `Identity`, refusing claims that are missing or mistyped.

The client is named by the issuer's `client_claim`. RFC 9068 access tokens name
it in `client_id` and carry no `azp`: with the default `client_claim: azp`, a
token without `azp` is read from `client_id` instead (a token that has both is
read from `azp`, which is what Keycloak and OIDC define).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from vigie.context import Identity
from vigie.errors import AuthError
from vigie.issuer_settings import IssuerSettings

MAX_IDENTIFIER_LENGTH = 256  # client and sub: they become labels and audit fields
RFC9068_CLIENT_CLAIM = "client_id"


def missing(name: str) -> AuthError:
    return AuthError("claim_missing", f"the token has no '{name}' claim")


def mistyped(name: str) -> AuthError:
    return AuthError("claim_type", f"the token's '{name}' claim has the wrong type or length")


def numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim; a present one of another type (or NaN/inf) is invalid."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise mistyped(name)
    return float(value)


def client_claim_name(claims: Mapping[str, Any], settings: IssuerSettings) -> str:
    """Which claim names the client in these claims (the RFC 9068 fallback, see above)."""
    name = settings.client_claim
    if name == "azp" and "azp" not in claims and RFC9068_CLIENT_CLAIM in claims:
        return RFC9068_CLIENT_CLAIM
    return name


def identity(claims: dict[str, Any], settings: IssuerSettings) -> Identity:
    client = client_claim_name(claims, settings)
    return Identity(
        issuer=settings.issuer,
        client=_identifier(claims, client),
        subject=_identifier(claims, "sub"),
        scopes=_scopes(claims),
        claims=MappingProxyType(claims),
    )


def _identifier(claims: Mapping[str, Any], name: str) -> str:
    if claims.get(name) is None:
        if name == "azp":
            raise AuthError("claim_missing", "the token names no client: no 'azp' claim "
                                             "and no RFC 9068 'client_id' claim")
        raise missing(name)
    value = claims[name]
    if not isinstance(value, str) or not value or len(value) > MAX_IDENTIFIER_LENGTH:
        raise mistyped(name)
    return value


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            scopes.update(item for item in value if item)
        else:
            raise mistyped(name)
    return frozenset(scopes)
