"""A local OAuth token issuer for `vigie demo` and the tests (never for production).

It holds one RSA key generated at start (kid = RFC 7638 thumbprint), publishes it as a
JWKS with OIDC discovery, and mints RS256 access tokens for any client that asks:
from Python (`DemoIssuer.mint`) or over HTTP (`POST /token`, demo only, no client
authentication at all).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEFAULT_AUDIENCE = "patient-api"
DEFAULT_LIFETIME_SECONDS = 15 * 60
_MAX_FORM_BYTES = 16 * 1024


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rsa_public_jwk(key: rsa.RSAPublicKey) -> dict[str, str]:
    """The public key as a JWK with kid = its RFC 7638 SHA-256 thumbprint."""
    numbers = key.public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    # RFC 7638: required members only, lexicographic order, no whitespace.
    canonical = orjson.dumps(members, option=orjson.OPT_SORT_KEYS)
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {**members, "kid": kid, "use": "sig", "alg": "RS256"}


class DemoIssuer:
    """An RS256 issuer with a fresh key; `issuer_url` may be set once the port is known."""

    def __init__(self, issuer_url: str, audience: str = DEFAULT_AUDIENCE, *,
                 key: rsa.RSAPrivateKey | None = None,
                 lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self.audience = audience
        self.lifetime_seconds = lifetime_seconds
        self._key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._jwk = rsa_public_jwk(self._key.public_key())

    @property
    def kid(self) -> str:
        return self._jwk["kid"]

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        return self._key

    def mint(self, client: str, sub: str, scopes: Iterable[str], **claims: object) -> str:
        """A signed access token; `claims` add to or override the defaults (exp, aud...)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer_url,
            "aud": self.audience,
            "azp": client,
            "client_id": client,
            "sub": sub,
            "scope": " ".join(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_seconds,
            "jti": uuid.uuid4().hex,
        }
        payload.update(claims)
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self.kid})

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [dict(self._jwk)]}

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer_url,
            "jwks_uri": f"{self.issuer_url}/jwks",
            "token_endpoint": f"{self.issuer_url}/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["none"],
            "response_types_supported": ["token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
        }

    def app(self) -> Starlette:
        """`/.well-known/openid-configuration`, `/jwks` and the demo `POST /token`."""

        async def discovery(request: Request) -> Response:
            return _json(self.openid_configuration(), {"Cache-Control": "max-age=300"})

        async def jwks(request: Request) -> Response:
            return _json(self.jwks(), {"Cache-Control": "max-age=300"})

        async def token(request: Request) -> Response:
            body = await request.body()
            if len(body) > _MAX_FORM_BYTES:
                return _json({"error": "invalid_request"}, status=413)
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            client, sub = form.get("client_id", ""), form.get("sub", "")
            if not client or not sub:
                return _json({"error": "invalid_request",
                              "error_description": "client_id and sub are required"}, status=400)
            scopes = form.get("scope", "").split()
            extra: dict[str, object] = {}
            if form.get("practice_id"):
                extra["practice_id"] = form["practice_id"]
            access_token = self.mint(client, sub, scopes, **extra)
            return _json({"access_token": access_token, "token_type": "Bearer",
                          "expires_in": self.lifetime_seconds, "scope": " ".join(scopes)},
                         {"Cache-Control": "no-store"})

        return Starlette(routes=[
            Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route("/jwks", jwks, methods=["GET"]),
            Route("/token", token, methods=["POST"]),
        ])


def _json(body: object, headers: dict[str, str] | None = None, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")
