"""Bearer token verification: from an Authorization header to a verified Identity.

Order of checks (each failure raises AuthError with a metric `reason`):
header syntax and size, JOSE header (alg, crit, typ, kid), `iss` only to pick
a configured issuer, the issuer's algorithm allowlist, the key by `kid` from
that issuer's JWKS (and the key's type must fit the algorithm), the
signature (pyjwt), then `aud`, `exp`, `nbf`, `iat` and the identity claims.
Nothing from the token is trusted before its signature is, except `iss` and
`kid` to route to a key we already hold; `jku`, `x5u`, `jwk` and `x5c` are
never read.

Every refusal is logged once at INFO (logger `vigie.auth`) with the same reason
and description the client receives: never the token or a claim value.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import exceptions as jwt_errors

from vigie.auth import claims as claim_checks
from vigie.auth.bearer import bearer_token, split
from vigie.auth.fetch import JwksClients
from vigie.auth.jwks import IssuerKeys
from vigie.auth.keys import VerificationKey
from vigie.context import Identity
from vigie.errors import AUTH_DESCRIPTIONS, AuthError, ConfigError
from vigie.issuer_settings import ASYMMETRIC_ALGORITHMS, IssuerSettings
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.auth")

VERIFIED_CACHE_SIZE = 4096  # tokens are reused for minutes: verify each one once

# The `vigie_auth_failures_total` reasons (what each means: vigie.errors.AUTH_DESCRIPTIONS
# and docs/identity.md). 0.2 split `claims` into claim_missing / claim_type and renamed
# `unknown_key` to `unknown_kid` (CHANGELOG).
REASONS = tuple(AUTH_DESCRIPTIONS)

# RFC 8725 §3.11 / RFC 9068: accept untyped tokens and access-token JWTs, nothing else
# (an ID token of type "JWT" is still stopped by the audience check).
_ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})

_PYJWT_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.InvalidSignatureError, "signature"),
    (jwt_errors.InvalidAudienceError, "audience"),
    (jwt_errors.InvalidIssuerError, "issuer"),
    (jwt_errors.InvalidAlgorithmError, "algorithm"),
    (jwt_errors.InvalidKeyError, "unknown_kid"),
    (jwt_errors.DecodeError, "malformed"),
)
_MISSING_CLAIM_REASONS = {"aud": "audience", "iss": "issuer"}


class _Issuer:
    """One configured issuer: settings, keys and the verifier options derived from them."""

    def __init__(self, settings: IssuerSettings, keys: IssuerKeys) -> None:
        self.settings = settings
        self.keys = keys
        self.algorithms = frozenset(settings.algorithms) & ASYMMETRIC_ALGORITHMS
        self.audiences = list(settings.audiences)
        self.leeway = float(settings.leeway_seconds)


class Authenticator:
    """Verifies bearer tokens against the configured issuers and their JWKS."""

    def __init__(self, issuers: Sequence[IssuerSettings], metrics: Metrics, *,
                 clock: Callable[[], float] = time.time) -> None:
        seen: set[str] = set()
        for settings in issuers:
            if settings.issuer in seen:
                raise ConfigError(f"issuer {settings.issuer!r} is configured twice",
                                  key="issuers")
            seen.add(settings.issuer)
        self._clock = clock
        self._clients = JwksClients()
        self._issuers = {
            settings.issuer: _Issuer(settings, IssuerKeys(
                settings, metrics, self._clients.for_issuer(settings), clock=clock))
            for settings in issuers
        }
        # Time claims are checked here with the injectable clock, the rest by pyjwt.
        self._jwt = jwt.PyJWT(options={
            "verify_signature": True,
            "verify_exp": False, "verify_nbf": False, "verify_iat": False,
            "verify_aud": True, "verify_iss": True, "verify_sub": True, "verify_jti": True,
            "require": ["exp", "iss", "aud", "sub"],
            "enforce_minimum_key_length": True,
        })
        self._verified: dict[bytes, _Verified] = {}

    def keys(self, issuer: str) -> IssuerKeys:
        """The key cache of one issuer (for diagnostics and tests)."""
        return self._issuers[issuer].keys

    async def start(self) -> None:
        """Fetch every JWKS once (never raises on IdP outage), then refresh in the background."""
        await asyncio.gather(*(issuer.keys.start() for issuer in self._issuers.values()))

    async def close(self) -> None:
        await asyncio.gather(*(issuer.keys.close() for issuer in self._issuers.values()))
        await self._clients.close()

    def ready(self) -> bool:
        """Whether every configured issuer has a trusted key set (readiness)."""
        return all(issuer.keys.usable() for issuer in self._issuers.values())

    async def authenticate(self, authorization: str | None, *,
                           request_id: str = "-") -> Identity:
        """The verified identity behind an Authorization header value, or AuthError(reason)."""
        try:
            return await self._authenticate(authorization)
        except AuthError as exc:
            # descriptions never hold a double quote (tests/auth/test_diagnostics.py)
            log.info('token refused: reason=%s error_description="%s" request_id=%s',
                     exc.reason, exc.description, request_id,
                     extra={"reason": exc.reason, "error_description": exc.description,
                            "request_id": request_id})
            raise

    async def _authenticate(self, authorization: str | None) -> Identity:
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode("ascii")).digest()
        known = self._verified.get(digest)
        # A token verified before is still valid while its key is still the one published.
        if known is not None and known.issuer.keys.trusted().find(known.kid) is known.key:
            try:
                self._check_times(known.expires, known.starts, known.issuer.leeway)
            except AuthError:
                self._verified.pop(digest, None)
                raise
            return known.identity
        verified = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first
        self._verified[digest] = verified
        return verified.identity

    async def _verify(self, token: str) -> _Verified:
        header, unverified = split(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ASYMMETRIC_ALGORITHMS:
            raise AuthError("algorithm")
        if "crit" in header:
            raise AuthError("malformed", "the token's header has 'crit' (no JWS extension "
                                         "is supported)")
        token_type = header.get("typ")
        if token_type is not None and (not isinstance(token_type, str)
                                       or token_type.lower() not in _ACCEPTED_TYPES):
            raise AuthError("token_type")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str)
                                or len(kid) > claim_checks.MAX_IDENTIFIER_LENGTH):
            raise AuthError("malformed", "the token's kid is not a string of at most 256 "
                                         "characters")
        claimed_issuer = unverified.get("iss")
        issuer = self._issuers.get(claimed_issuer) if isinstance(claimed_issuer, str) else None
        if issuer is None:
            raise AuthError("issuer", "the token has no 'iss' claim" if claimed_issuer is None
                            else AUTH_DESCRIPTIONS["issuer"])
        if algorithm not in issuer.algorithms:
            raise AuthError("algorithm")
        if token.endswith("."):
            raise AuthError("signature", "the token has no signature")
        key = await issuer.keys.find(kid)
        if key is None:
            raise AuthError(issuer.keys.why_no_key())
        if not key.accepts(algorithm):
            raise AuthError("algorithm")
        claims = self._check_signature(token, key.key, algorithm, issuer)
        expires = claim_checks.numeric_date(claims, "exp")
        if expires is None:
            raise claim_checks.missing("exp")
        starts = [t for t in (claim_checks.numeric_date(claims, "nbf"),
                              claim_checks.numeric_date(claims, "iat"))
                  if t is not None]
        latest_start = max(starts) if starts else None
        self._check_times(expires, latest_start, issuer.leeway)
        return _Verified(identity=claim_checks.identity(claims, issuer.settings), issuer=issuer,
                         kid=kid,
                         key=key, expires=expires, starts=latest_start)

    def _check_signature(self, token: str, key: Any, algorithm: str,
                         issuer: _Issuer) -> dict[str, Any]:
        """Signature, `aud`, `iss`, `sub` and `jti` types by pyjwt; the payload once verified."""
        try:
            decoded = self._jwt.decode_complete(
                token, key=key, algorithms=[algorithm],
                audience=issuer.audiences, issuer=issuer.settings.issuer,
            )
        except jwt_errors.MissingRequiredClaimError as exc:
            reason = _MISSING_CLAIM_REASONS.get(exc.claim)
            raise (claim_checks.missing(exc.claim) if reason is None
                   else AuthError(reason, f"the token has no '{exc.claim}' claim")) from None
        except (jwt_errors.InvalidSubjectError, jwt_errors.InvalidJTIError) as exc:
            name = "sub" if isinstance(exc, jwt_errors.InvalidSubjectError) else "jti"
            raise claim_checks.mistyped(name) from None
        except jwt_errors.PyJWTError as exc:
            reason = next((r for kind, r in _PYJWT_REASONS if isinstance(exc, kind)),
                          "malformed")
            raise AuthError(reason) from None
        payload: dict[str, Any] = decoded["payload"]
        return payload

    def _check_times(self, expires: float, starts: float | None, leeway: float) -> None:
        now = self._clock()
        if expires <= now - leeway:
            raise AuthError("expired")
        if starts is not None and starts > now + leeway:
            raise AuthError("not_yet_valid")


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token that passed every check, remembered so its next uses skip the signature."""

    identity: Identity
    issuer: _Issuer
    kid: str | None
    key: VerificationKey
    expires: float
    starts: float | None  # the later of nbf and iat
