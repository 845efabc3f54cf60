"""Test factories for token issuers: real keys, a real JWKS server over loopback HTTP, tokens.

Usable from sync and async tests alike (the server runs in its own thread):

    key = KeyPair.rsa("k1")
    with JwksServer(key) as server:
        issuer = FakeIssuer("https://idp.test/realms/care", key, server=server)
        settings = issuer.settings()                 # vigie.config.IssuerSettings
        token = issuer.token(client="gp-frontdesk", subject="dr-1", scope="patient.read")
        forged = mint(key, issuer.claims(), headers={"kid": "other"})

Nothing here is a mock: keys are generated with `cryptography`, tokens signed
with pyjwt, and the JWKS travels over a real socket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from vigie.auth import Authenticator
from vigie.config import IssuerSettings
from vigie.errors import AuthError
from vigie.telemetry.metrics import Metrics

_CURVES: dict[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1(),
}
_UNSET: Any = object()


@dataclass(frozen=True)
class KeyPair:
    """A private signing key with its public JWK. `alg` is what `mint` signs with."""

    kid: str
    alg: str
    private_key: Any = field(repr=False)

    @classmethod
    def rsa(cls, kid: str = "rsa-1", *, alg: str = "RS256", bits: int = 2048) -> KeyPair:
        return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def ec(cls, kid: str = "ec-1", *, alg: str = "ES256") -> KeyPair:
        return cls(kid, alg, ec.generate_private_key(_CURVES[alg]))

    @classmethod
    def ed25519(cls, kid: str = "ed-1") -> KeyPair:
        return cls(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()

    def jwk(self, *, kid: str | None = _UNSET, alg: str | None = _UNSET,
            use: str | None = "sig", **extra: Any) -> dict[str, Any]:
        """The public JWK. `kid=None`/`alg=None`/`use=None` leave the member out."""
        data: dict[str, Any] = json.loads(_codec(self.private_key).to_jwk(self.public_key))
        for name, value in (("kid", self.kid if kid is _UNSET else kid),
                            ("alg", self.alg if alg is _UNSET else alg), ("use", use)):
            if value is None:
                data.pop(name, None)
            else:
                data[name] = value
        data.update(extra)
        return data

    def private_jwk(self) -> dict[str, Any]:
        """The JWK with private members (to test that a JWKS leaking one is refused)."""
        data: dict[str, Any] = json.loads(_codec(self.private_key).to_jwk(self.private_key))
        data.update(kid=self.kid, alg=self.alg, use="sig")
        return data

    def public_pem(self) -> bytes:
        return bytes(self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def mint(self, claims: Mapping[str, Any], **options: Any) -> str:
        return mint(self, claims, **options)


def _codec(key: Any) -> Any:
    if isinstance(key, rsa.RSAPrivateKey):
        return RSAAlgorithm
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECAlgorithm
    return OKPAlgorithm


def jwks(*keys: KeyPair | Mapping[str, Any]) -> dict[str, Any]:
    """A JWKS document from key pairs (their public JWK) or raw JWK mappings."""
    return {"keys": [k.jwk() if isinstance(k, KeyPair) else dict(k) for k in keys]}


def mint(key: KeyPair, claims: Mapping[str, Any], *,
         headers: Mapping[str, Any] | None = None, alg: str | None = None) -> str:
    """A token signed by `key`. Header defaults: alg=key.alg, kid=key.kid, typ=JWT;
    `headers` overrides them, a None value removes one (e.g. headers={"kid": None})."""
    header: dict[str, Any] = {"alg": alg or key.alg, "kid": key.kid, "typ": "JWT"}
    header.update(headers or {})
    signed_with = header.get("alg") if alg is None else alg
    return _sign(header, claims, lambda data: _signature(key, str(signed_with), data))


def hmac_token(secret: bytes, claims: Mapping[str, Any], *,
               headers: Mapping[str, Any] | None = None, alg: str = "HS256") -> str:
    """An HMAC-signed token (HS/RS confusion: pass a public key's PEM or JWK as secret)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    header: dict[str, Any] = {"alg": alg, "typ": "JWT", **(headers or {})}
    return _sign(header, claims, lambda data: hmac.new(secret, data, digest).digest())


def unsigned(claims: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None,
             signature: bytes = b"") -> str:
    """A token with any header and an arbitrary (default empty) signature, e.g. alg none."""
    header: dict[str, Any] = {"alg": "none", "typ": "JWT", **(headers or {})}
    return _sign(header, claims, lambda _data: signature)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sign(header: Mapping[str, Any], claims: Mapping[str, Any], signer: Any) -> str:
    clean = {name: value for name, value in header.items() if value is not None}
    signing_input = ".".join((b64url(json.dumps(clean, separators=(",", ":")).encode()),
                              b64url(json.dumps(dict(claims), separators=(",", ":")).encode())))
    return f"{signing_input}.{b64url(signer(signing_input.encode('ascii')))}"


def _signature(key: KeyPair, alg: str, data: bytes) -> bytes:
    algorithm = jwt.get_algorithm_by_name(alg)
    return bytes(algorithm.sign(data, algorithm.prepare_key(key.private_key)))


def bearer(token: str) -> str:
    return f"Bearer {token}"


Failure = Literal["error", "garbage", "empty", "reset", "slow", "huge"]


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 (port 0) in a thread; keys, headers and failures settable.

    failure: None (serve the document), "error" (HTTP 500), "garbage" (200, not JSON),
    "empty" (200, no keys), "reset" (close the connection without answering),
    "slow" (answer after `delay` seconds), "huge" (a 2 MiB body). `stop()` makes
    the port refuse connections; `start()` serves again on the same port.
    `tls`: serve https with this server context; `documents`: more paths (e.g. the
    OIDC discovery document) served as they are.
    """

    def __init__(self, *keys: KeyPair | Mapping[str, Any],
                 cache_control: str | None = "max-age=300", path: str = "/jwks",
                 tls: ssl.SSLContext | None = None) -> None:
        self.path = path
        self.tls = tls
        self.documents: dict[str, bytes] = {}
        self.cache_control = cache_control
        self.failure: Failure | None = None
        self.delay = 2.0
        self.hits = 0
        self._lock = threading.Lock()
        self._document = json.dumps(jwks(*keys)).encode()
        self._port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self.origin}{self.path}"

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._port}"

    def set_keys(self, *keys: KeyPair | Mapping[str, Any]) -> None:
        self.set_document(jwks(*keys))

    def set_document(self, document: Mapping[str, Any] | bytes) -> None:
        body = document if isinstance(document, bytes) else json.dumps(dict(document)).encode()
        with self._lock:
            self._document = body

    def start(self) -> JwksServer:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="jwks-server",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.hits += 1
            failure, body, cache_control = self.failure, self._document, self.cache_control
        requested = handler.path.split("?")[0]
        if requested in self.documents:
            failure, status, body = None, 200, self.documents[requested]
        elif requested != self.path:
            failure, status = None, 404
            body = b'{"error":"not found"}'
        else:
            status = 200
        if failure == "reset":
            handler.close_connection = True
            return
        if failure == "slow":
            time.sleep(self.delay)
        elif failure == "error":
            status, body = 500, b"internal error"
        elif failure == "garbage":
            body = b"<html>login</html>"
        elif failure == "empty":
            body = b'{"keys": []}'
        elif failure == "huge":
            body = b'{"keys": [], "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        if cache_control:
            handler.send_header("Cache-Control", cache_control)
        handler.end_headers()
        handler.wfile.write(body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                try:
                    owner._respond(self)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


def claims(*, issuer: str, audience: str | list[str] = "patient-api",
           client: str = "gp-frontdesk", subject: str = "dr-house",
           scope: str | None = "patient.read", client_claim: str = "azp",
           lifetime: int = 300, now: float | None = None, **extra: Any) -> dict[str, Any]:
    """Valid access-token claims; `extra` adds or overrides (a None value removes one).

    The client goes into `client_claim` (azp by default); with client_claim="sub"
    the subject is the client and `client` is not used."""
    issued = int(time.time() if now is None else now)
    result: dict[str, Any] = {"iss": issuer, "aud": audience, "sub": subject,
                              "iat": issued, "nbf": issued, "exp": issued + lifetime,
                              "jti": f"jti-{issued}-{subject}"}
    if client_claim != "sub":  # a "sub" client claim names the client by the subject itself
        result[client_claim] = client
    if scope is not None:
        result["scope"] = scope
    result.update(extra)
    return {name: value for name, value in result.items() if value is not None}


class FakeIssuer:
    """An issuer (IdP) for tests: its name, signing key(s), JWKS server and settings."""

    def __init__(self, issuer: str, *keys: KeyPair, server: JwksServer | None = None,
                 audience: str = "patient-api", client_claim: str = "azp",
                 algorithms: Sequence[str] | None = None) -> None:
        if not keys:
            raise ValueError("an issuer needs at least one key")
        self.issuer = issuer
        self.key = keys[0]
        self.keys = list(keys)
        self.audience = audience
        self.client_claim = client_claim
        self.algorithms = tuple(algorithms or sorted({k.alg for k in keys}))
        self.server = server or JwksServer(*keys)

    def settings(self, **overrides: Any) -> IssuerSettings:
        """IssuerSettings pointing at this issuer's JWKS server (start the server first)."""
        values: dict[str, Any] = {
            "issuer": self.issuer, "audiences": (self.audience,), "algorithms": self.algorithms,
            "jwks_url": self.server.url, "client_claim": self.client_claim,
            "leeway_seconds": 30,
        }
        values.update(overrides)
        return IssuerSettings(**values)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        overrides.setdefault("audience", self.audience)
        overrides.setdefault("client_claim", self.client_claim)
        return claims(issuer=self.issuer, **overrides)

    def token(self, *, key: KeyPair | None = None, headers: Mapping[str, Any] | None = None,
              **claim_overrides: Any) -> str:
        """A valid token of this issuer; keyword arguments as for `claims`."""
        return mint(key or self.key, self.claims(**claim_overrides), headers=headers)

    def __enter__(self) -> FakeIssuer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


class FakeClock:
    """Wall time (seconds) that only moves when a test says so: `Authenticator(clock=...)`."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def refusal(authenticator: Authenticator, authorization: str | None) -> str:
    """The AuthError reason for this Authorization header; fails the test if it was accepted."""
    with pytest.raises(AuthError) as caught:
        await authenticator.authenticate(authorization)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    return caught.value.reason


def refresh_failures(metrics: Metrics, issuer: str) -> float:
    """vigie_jwks_refresh_failures_total{issuer} as a number."""
    value = metrics.registry.get_sample_value("vigie_jwks_refresh_failures_total",
                                              {"issuer": issuer})
    return value or 0.0
