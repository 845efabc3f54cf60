"""Bearer token verification: from an Authorization header to a verified Identity.

Order of checks (each failure raises AuthError with a metric `reason`):
header syntax and size, JOSE header (alg, crit, typ, kid), `iss` only to pick
a configured issuer, the issuer's algorithm allowlist, the key by `kid` from
that issuer's JWKS (and the key's type must fit the algorithm), the
signature (pyjwt), then `aud`, `exp`, `nbf`, `iat` and the identity claims.
Nothing from the token is trusted before its signature is, except `iss` and
`kid` to route to a key we already hold; `jku`, `x5u`, `jwk` and `x5c` are
never read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import math
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
import jwt
import orjson
from jwt import exceptions as jwt_errors

from vigie.auth.jwks import IssuerKeys
from vigie.auth.keys import VerificationKey
from vigie.config import ASYMMETRIC_ALGORITHMS, IssuerSettings
from vigie.context import Identity
from vigie.errors import AuthError, ConfigError
from vigie.telemetry.metrics import Metrics

MAX_TOKEN_BYTES = 8192
MAX_IDENTIFIER_LENGTH = 256  # client and sub: they become labels and audit fields
JWKS_HTTP_TIMEOUT_SECONDS = 5.0
VERIFIED_CACHE_SIZE = 4096  # tokens are reused for minutes: verify each one once

REASONS = (
    "missing",  # no Authorization header, or another scheme than Bearer
    "malformed",  # not one compact JWS, bad base64/JSON, bad kid, `crit` present
    "too_large",  # over MAX_TOKEN_BYTES, refused before parsing
    "token_type",  # a `typ` that is not an access-token JWT
    "algorithm",  # none, HS*, outside the issuer's allowlist, or not the key's algorithm
    "issuer",  # `iss` missing or not a configured issuer
    "unknown_key",  # no key with that `kid` (after the rate-limited refresh)
    "signature",  # signature missing or wrong
    "audience",  # `aud` missing or none of the issuer's audiences
    "expired",  # `exp` passed (beyond the leeway)
    "not_yet_valid",  # `nbf` or `iat` in the future (beyond the leeway)
    "claims",  # exp/sub/client claim missing or of the wrong type, bad scope
)

_AUTH_SCHEME = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:[ \t]+(.*))?", re.DOTALL)
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
# RFC 8725 §3.11 / RFC 9068: accept untyped tokens and access-token JWTs, nothing else
# (an ID token of type "JWT" is still stopped by the audience check).
_ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})

_PYJWT_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.InvalidSignatureError, "signature"),
    (jwt_errors.InvalidAudienceError, "audience"),
    (jwt_errors.InvalidIssuerError, "issuer"),
    (jwt_errors.InvalidAlgorithmError, "algorithm"),
    (jwt_errors.InvalidKeyError, "unknown_key"),
    (jwt_errors.DecodeError, "malformed"),
    (jwt_errors.InvalidSubjectError, "claims"),
    (jwt_errors.InvalidJTIError, "claims"),
)
_MISSING_CLAIM_REASONS = {"aud": "audience", "iss": "issuer"}


def bearer_token(authorization: str | None) -> str:
    """The one token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if authorization is None or not authorization.strip():
        raise AuthError("missing", "bearer token required")
    if len(authorization) > MAX_TOKEN_BYTES + 64:
        raise AuthError("too_large", "token too large")
    match = _AUTH_SCHEME.fullmatch(authorization.strip(" \t"))
    if match is None:
        raise AuthError("malformed", "malformed authorization header")
    if match.group(1).lower() != "bearer":
        raise AuthError("missing", "bearer token required")
    token = match.group(2) or ""
    if not _TOKEN68.fullmatch(token):
        raise AuthError("malformed", "malformed bearer token")
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthError("too_large", "token too large")
    return token


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
        self._client: httpx.AsyncClient | None = None
        if any(settings.jwks_url for settings in issuers):
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(JWKS_HTTP_TIMEOUT_SECONDS),
                follow_redirects=False,
                verify=_tls_context(),
                headers={"User-Agent": "vigie-jwks"},
            )
        self._issuers = {
            settings.issuer: _Issuer(
                settings,
                IssuerKeys(settings, metrics,
                           self._client if settings.jwks_url else None, clock=clock),
            )
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
        if self._client is not None:
            await self._client.aclose()

    async def authenticate(self, authorization: str | None) -> Identity:
        """The verified identity behind an Authorization header value, or AuthError(reason)."""
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode("ascii")).digest()
        known = self._verified.get(digest)
        # A token verified before is still valid while its key is still the one published.
        if known is not None and known.issuer.keys.keys.find(known.kid) is known.key:
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
        header, unverified = _split(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ASYMMETRIC_ALGORITHMS:
            raise AuthError("algorithm")
        if "crit" in header:
            raise AuthError("malformed")  # we implement no JWS extension
        token_type = header.get("typ")
        if token_type is not None and (not isinstance(token_type, str)
                                       or token_type.lower() not in _ACCEPTED_TYPES):
            raise AuthError("token_type")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_IDENTIFIER_LENGTH):
            raise AuthError("malformed")
        claimed_issuer = unverified.get("iss")
        issuer = self._issuers.get(claimed_issuer) if isinstance(claimed_issuer, str) else None
        if issuer is None:
            raise AuthError("issuer")
        if algorithm not in issuer.algorithms:
            raise AuthError("algorithm")
        if token.endswith("."):
            raise AuthError("signature")
        key = await issuer.keys.find(kid)
        if key is None:
            raise AuthError("unknown_key")
        if not key.accepts(algorithm):
            raise AuthError("algorithm")
        claims = self._check_signature(token, key.key, algorithm, issuer)
        expires = _numeric_date(claims, "exp")
        if expires is None:
            raise AuthError("claims")
        starts = [t for t in (_numeric_date(claims, "nbf"), _numeric_date(claims, "iat"))
                  if t is not None]
        latest_start = max(starts) if starts else None
        self._check_times(expires, latest_start, issuer.leeway)
        return _Verified(identity=_identity(claims, issuer.settings), issuer=issuer, kid=kid,
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
            raise AuthError(_MISSING_CLAIM_REASONS.get(exc.claim, "claims")) from None
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


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (building one costs tens of milliseconds)."""
    return httpx.create_ssl_context()


def _b64json(segment: str) -> Any:
    if not segment or not _SEGMENT.fullmatch(segment):
        raise AuthError("malformed")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise AuthError("malformed") from None


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and (unverified) payload of a compact JWS; only routing reads the payload."""
    parts = token.split(".")
    if len(parts) != 3 or not _SEGMENT.fullmatch(parts[2]):
        raise AuthError("malformed")
    header, payload = _b64json(parts[0]), _b64json(parts[1])
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise AuthError("malformed")
    return header, payload


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim; a present one of another type (or NaN/inf) is invalid."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthError("claims")
    return float(value)


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_IDENTIFIER_LENGTH:
        raise AuthError("claims")
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
            raise AuthError("claims")
    return frozenset(scopes)


def _identity(claims: dict[str, Any], settings: IssuerSettings) -> Identity:
    return Identity(
        issuer=settings.issuer,
        client=_identifier(claims.get(settings.client_claim)),
        subject=_identifier(claims.get("sub")),
        scopes=_scopes(claims),
        claims=MappingProxyType(claims),
    )
