"""Authentication: bearer JWTs verified against the configured issuers' JWKS.

`Authenticator.authenticate(header, request_id=...)` returns a `vigie.context.Identity`
or raises `vigie.errors.AuthError` whose `reason` is one of `REASONS` (a metric label)
and whose `description` says which check failed (docs/identity.md); `ready()` tells
whether every issuer has a trusted key set.
"""

from vigie.auth.bearer import MAX_TOKEN_BYTES, bearer_token
from vigie.auth.jwks import IssuerKeys
from vigie.auth.keys import JwksError, KeySet, VerificationKey, parse_jwks
from vigie.auth.tokens import REASONS, Authenticator

__all__ = [
    "MAX_TOKEN_BYTES",
    "REASONS",
    "Authenticator",
    "IssuerKeys",
    "JwksError",
    "KeySet",
    "VerificationKey",
    "bearer_token",
    "parse_jwks",
]
