"""End-to-end harness: a scriptable upstream, a real JWKS, and vigie over loopback.

    with Harness(tmp_path, policies={"gp.yaml": POLICY}) as h:
        h.upstream.reply(json={"id": "42", ...})
        r = h.get("/patients/42", token=h.token("gp-frontdesk", scope="patient.read"))

Everything is real: uvicorn listeners, HTTP over 127.0.0.1, RSA keys, a JWKS
fetched over HTTP, the audit file on disk. `h.upstream.requests` is what the
upstream received, so a refused request can be shown to have reached nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from support.servers import free_socket, serve_in_thread
from support.tokens import FakeIssuer
from vigie.app import Vigie
from vigie.config import load_settings
from vigie.server import serve

ISSUER = "https://idp.test.example/realms/care"
AUDIENCE = "patient-api"


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedUpstream:
    """The legacy API stand-in: answers what the test says, records what it got."""

    requests: list[Seen] = field(default_factory=list)
    handler: Callable[[Request], Any] | None = None

    def reply(self, *, status: int = 200, json: Any = None, body: bytes | None = None,
              content_type: str = "application/json",
              headers: Mapping[str, str] | None = None, delay: float = 0.0) -> None:
        payload = orjson.dumps(json) if body is None else body

        async def handler(request: Request) -> Response:
            if delay:
                await asyncio.sleep(delay)
            return Response(payload, status_code=status, media_type=content_type,
                            headers=dict(headers or {}))
        self.handler = handler

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            raw_path = request.scope.get("raw_path", b"").decode("latin-1")
            self.requests.append(Seen(request.method, raw_path,
                                      request.scope["query_string"].decode("latin-1"),
                                      {k.decode("latin-1"): v.decode("latin-1")
                                       for k, v in request.scope["headers"]}, body))
            if self.handler is None:
                return JSONResponse({"echo": True})
            result = self.handler(request)
            if asyncio.iscoroutine(result):
                result = await result
            return result  # type: ignore[no-any-return]

        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])


class Keys:
    """An RSA signing key and its JWKS document (kid `k1` unless told otherwise)."""

    def __init__(self, kid: str = "k1") -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = orjson.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [jwk]}


def jwks_app(keys: Keys) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return JSONResponse(keys.jwks(), headers={"Cache-Control": "max-age=300"})
    return Starlette(routes=[Route("/certs", endpoint)])


def issuer_config(issuer: FakeIssuer, leeway_seconds: int = 30) -> str:
    """The `issuers:` list entry (YAML) for a started FakeIssuer."""
    algorithms = ", ".join(issuer.algorithms)
    return (f"  - issuer: {issuer.issuer}\n"
            f"    audiences: [{issuer.audience}]\n"
            f"    jwks_url: {issuer.server.url}\n"
            f"    algorithms: [{algorithms}]\n"
            f"    client_claim: {issuer.client_claim}\n"
            f"    leeway_seconds: {leeway_seconds}\n")


class Harness:
    """Vigie over loopback with the default issuer (`ISSUER`, `self.keys`, `token()`).

    `issuers`: more trusted issuers, already started (`with FakeIssuer(...)`), each
    with its own JWKS server; `keys`: reuse an RSA key (generating one is slow).
    """

    def __init__(self, tmp: Path, policies: Mapping[str, str], *,
                 config: str = "", env: Mapping[str, str] | None = None,
                 issuers: Sequence[FakeIssuer] = (), keys: Keys | None = None,
                 upstream_url: str | None = None) -> None:
        self.tmp = tmp
        self.policy_dir = tmp / "policies"
        self.policy_dir.mkdir(exist_ok=True)
        for name, text in policies.items():
            (self.policy_dir / name).write_text(text)
        self.audit_path = tmp / "audit.jsonl"
        self.keys = keys or Keys()
        self.issuers = tuple(issuers)
        self.upstream = ScriptedUpstream()
        self.extra_config = config
        self.env = dict(env or {})
        self.upstream_url = upstream_url  # an upstream of the test's own (else ScriptedUpstream)
        self._stack = contextlib.ExitStack()
        self.vigie: Vigie | None = None

    def __enter__(self) -> Harness:
        upstream_url = self.upstream_url or self._stack.enter_context(
            serve_in_thread(self.upstream.app()))
        jwks_url = self._stack.enter_context(serve_in_thread(jwks_app(self.keys)))
        key_file = self.tmp / "pseudonym.key"
        key_file.write_bytes(b"k" * 48)
        config = self.tmp / "vigie.yaml"
        config.write_text(
            f"upstream: {upstream_url}\n"
            f"policies: {self.policy_dir}\n"
            f"pseudonym_key_file: {key_file}\n"
            f"audit: {{path: {self.audit_path}}}\n"
            "issuers:\n"
            f"  - issuer: {ISSUER}\n"
            f"    audiences: [{AUDIENCE}]\n"
            f"    jwks_url: {jwks_url}/certs\n"
            "    algorithms: [RS256]\n"
            "    client_claim: azp\n"
            + "".join(issuer_config(issuer) for issuer in self.issuers)
            + "upstream_timeout_seconds: 2\n"
            "shutdown_grace_seconds: 5\n"
            f"guard: {{events_path: {self.tmp / 'events.jsonl'}}}\n"
            + self.extra_config)
        self.settings = load_settings(config, self.env)
        self._start()
        return self

    def _start(self) -> None:
        proxy_sock, admin_sock = free_socket(), free_socket()
        self.base_url = f"http://127.0.0.1:{proxy_sock.getsockname()[1]}"
        self.admin_url = f"http://127.0.0.1:{admin_sock.getsockname()[1]}"
        ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.vigie = Vigie.build(self.settings, environ=self.env)

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self.settings, vigie=self.vigie, proxy_socket=proxy_sock,
                        admin_socket=admin_sock, started=lambda v: ready.set(), stop=self._stop)

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("vigie did not start")
        self.client = httpx.Client(base_url=self.base_url, timeout=10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=15)
            self._loop = None

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.stop()
        self._stack.close()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 15) -> Any:
        """Run a coroutine on vigie's own event loop (where its stages live)."""
        if self._loop is None:
            raise RuntimeError("vigie is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def refresh_jwks(self, issuer: str = ISSUER) -> bool:
        """One JWKS refresh of `issuer` now, as the background refresh would do it."""
        assert self.vigie is not None  # noqa: S101 - set by __enter__
        return bool(self.run(self.vigie.authenticator.keys(issuer).refresh()))

    # -- tokens and requests --------------------------------------------------------
    def token(self, client: str, sub: str = "dr-house", *, scope: str = "",
              lifetime: int = 300, headers: Mapping[str, Any] | None = None,
              **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "azp": client, "sub": sub, "iat": now,
                   "nbf": now, "exp": now + lifetime, "scope": scope, **claims}
        return jwt.encode(payload, self.keys.private, algorithm="RS256",
                          headers={"kid": self.keys.kid, **(headers or {})})

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, token, **kwargs)

    def request(self, method: str, path: str, token: str | None = None,
                **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def metrics_text(self) -> str:
        return httpx.get(f"{self.admin_url}/metrics", timeout=5).text

    def audit_lines(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        data = self.audit_path.read_bytes()
        complete = data[:data.rfind(b"\n") + 1]  # a line being written is not read yet
        return [orjson.loads(line) for line in complete.splitlines() if line]
