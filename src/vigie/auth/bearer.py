"""The credential's syntax: one bearer token from the header, and its JOSE parts.

Nothing here verifies anything: it only refuses what is not one compact JWS of
reasonable size, before any key or issuer is looked at.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from vigie.errors import AuthError

MAX_TOKEN_BYTES = 8192

_AUTH_SCHEME = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:[ \t]+(.*))?", re.DOTALL)
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


def bearer_token(authorization: str | None) -> str:
    """The one token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if authorization is None or not authorization.strip():
        raise AuthError("missing")
    if len(authorization) > MAX_TOKEN_BYTES + 64:
        raise AuthError("too_large")
    match = _AUTH_SCHEME.fullmatch(authorization.strip(" \t"))
    if match is None:
        raise AuthError("malformed", "the Authorization header is malformed")
    if match.group(1).lower() != "bearer":
        raise AuthError("missing", "a Bearer token is required (another scheme was sent)")
    token = match.group(2) or ""
    if not _TOKEN68.fullmatch(token):
        raise AuthError("malformed", "the bearer token holds characters a token cannot")
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthError("too_large")
    return token


def split(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and (unverified) payload of a compact JWS; only routing reads the payload."""
    parts = token.split(".")
    if len(parts) != 3 or not _SEGMENT.fullmatch(parts[2]):
        raise AuthError("malformed", "the token is not three base64url segments (compact JWS)")
    header, payload = _b64json(parts[0]), _b64json(parts[1])
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise AuthError("malformed", "the token's header or payload is not a JSON object")
    return header, payload


def _b64json(segment: str) -> Any:
    if not segment or not _SEGMENT.fullmatch(segment):
        raise AuthError("malformed", "a token segment is empty or not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise AuthError("malformed", "a token segment is not base64url JSON") from None
