"""Verification keys: parsing a JWKS document into immutable, signature-only public keys.

A key carries what it may verify (its type, curve and optional `alg`), so the
verifier can refuse an algorithm the key was not made for (an RSA key never
verifies ES256, an EC P-256 key never ES384, no key ever HS*).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from jwt import PyJWK
from jwt.exceptions import PyJWTError

log = logging.getLogger("vigie.auth.jwks")

MIN_RSA_BITS = 2048
MAX_KID_LENGTH = 256

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVE_BY_ALGORITHM = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
# Private JWK members: a set that publishes one of these is misconfigured; never use the key.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class JwksError(Exception):
    """A JWKS document that cannot be used at all (the message never holds key material)."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One public signing key from an issuer's JWKS."""

    kid: str | None
    kty: str
    curve: str | None
    alg: str | None  # the JWK's own `alg`, when it pins one
    key: Any = field(repr=False)  # a cryptography public key object

    def accepts(self, algorithm: str) -> bool:
        """Whether this key may verify a token signed with `algorithm`."""
        if self.alg is not None and self.alg != algorithm:
            return False
        if self.kty == "RSA":
            return algorithm in _RSA_ALGORITHMS
        if self.kty == "EC":
            return _EC_CURVE_BY_ALGORITHM.get(algorithm) == self.curve
        if self.kty == "OKP":
            return algorithm == "EdDSA" and self.curve in _OKP_CURVES
        return False


@dataclass(frozen=True, slots=True)
class KeySet:
    """An immutable snapshot of one issuer's usable keys, indexed by `kid`."""

    by_kid: Mapping[str, VerificationKey] = field(default_factory=dict)
    without_kid: tuple[VerificationKey, ...] = ()

    def __len__(self) -> int:
        return len(self.by_kid) + len(self.without_kid)

    def find(self, kid: str | None) -> VerificationKey | None:
        """The key named `kid`; a token without `kid` only matches a set of exactly one key."""
        if kid is not None:
            return self.by_kid.get(kid)
        everything = [*self.by_kid.values(), *self.without_kid]
        return everything[0] if len(everything) == 1 else None


def parse_jwks(document: bytes, *, source: str) -> KeySet:
    """Parse a JWKS document; unusable keys are skipped and logged, never fatal.

    Raises JwksError when the document is not a JWKS or holds no usable key, so
    the caller keeps its last good set instead of swapping in an empty one.
    """
    try:
        parsed = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        raise JwksError("not JSON") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("keys"), list):
        raise JwksError("not a JWK set (no 'keys' list)")
    by_kid: dict[str, VerificationKey] = {}
    duplicated: set[str] = set()
    without_kid: list[VerificationKey] = []
    for index, member in enumerate(parsed["keys"]):
        key = _parse_key(member, index=index, source=source)
        if key is None:
            continue
        if key.kid is None:
            without_kid.append(key)
        elif key.kid in by_kid or key.kid in duplicated:
            duplicated.add(key.kid)
        else:
            by_kid[key.kid] = key
    for kid in duplicated:
        # Two keys under one kid make the choice ambiguous: use neither.
        log.warning("JWKS %s: several keys share one kid; all of them ignored", source)
        by_kid.pop(kid, None)
    if not by_kid and not without_kid:
        raise JwksError("no usable signing key")
    return KeySet(by_kid=by_kid, without_kid=tuple(without_kid))


def _parse_key(member: object, *, index: int, source: str) -> VerificationKey | None:
    if not isinstance(member, dict):
        log.warning("JWKS %s: key #%d is not an object; skipped", source, index)
        return None
    kty, use, kid, alg = (member.get(name) for name in ("kty", "use", "kid", "alg"))
    if use is not None and use != "sig":
        return None  # encryption keys are not ours to use
    ops = member.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH):
        log.warning("JWKS %s: key #%d has an invalid kid; skipped", source, index)
        return None
    if kty not in ("RSA", "EC", "OKP"):
        log.info("JWKS %s: key #%d has unsupported kty; skipped", source, index)
        return None
    if _PRIVATE_MEMBERS & member.keys():
        log.error("JWKS %s: key #%d publishes private key material; skipped", source, index)
        return None
    if alg is not None and not isinstance(alg, str):
        log.warning("JWKS %s: key #%d has an invalid alg; skipped", source, index)
        return None
    try:
        parsed = PyJWK(member)
    except PyJWTError as exc:
        log.info("JWKS %s: key #%d unusable (%s); skipped", source, index, type(exc).__name__)
        return None
    curve = member.get("crv")
    key = VerificationKey(kid=kid, kty=kty, curve=curve if isinstance(curve, str) else None,
                          alg=alg, key=parsed.key)
    if kty == "RSA" and getattr(parsed.key, "key_size", 0) < MIN_RSA_BITS:
        log.warning("JWKS %s: key #%d is an RSA key under %d bits; skipped", source, index,
                    MIN_RSA_BITS)
        return None
    return key
