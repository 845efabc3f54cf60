"""Helpers of the interop suite: the OIDC server's control API, vigie as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from support.authz import sample
from support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
INSTALL_DIR = Path(os.environ.get("VIGIE_INTEROP_DIR", ROOT / "build" / "interop"))
SERVER_SCRIPT = Path(__file__).resolve().parent / "oidc_server.mjs"
AUDIENCE = "patient-api"
REFRESH_SECONDS = 2  # jwks_refresh_seconds: also the bound for a withdrawn key
MAX_STALE_SECONDS = 15  # jwks_max_stale_seconds (room for a second vigie to start in it)
START_TIMEOUT = 30.0
T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `condition` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Idp:
    """The oidc-provider process and its control API."""

    def __init__(self, port: int, process: subprocess.Popen[str]) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.process = process
        self.http = httpx.Client(timeout=10, follow_redirects=False)

    def issuer(self, realm: str) -> str:
        return f"{self.base}/realms/{realm}"

    def control(self, realm: str, action: str, **params: str) -> dict[str, Any]:
        method = "GET" if action == "keys" else "POST"
        response = self.http.request(method, f"{self.base}/control/{realm}/{action}",
                                     params=params)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def client_token(self, realm: str, client: str, secret: str, scope: str) -> str:
        response = self.http.post(f"{self.issuer(realm)}/token",
                                  data={"grant_type": "client_credentials", "scope": scope},
                                  auth=(client, secret))
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def user_token(self, realm: str, client: str, secret: str, user: str, scope: str) -> str:
        """Authorization code flow through the development login and consent pages."""
        redirect = "http://127.0.0.1/callback"
        with httpx.Client(timeout=10, follow_redirects=False) as browser:
            response = browser.get(f"{self.issuer(realm)}/auth", params={
                "client_id": client, "response_type": "code", "redirect_uri": redirect,
                "scope": f"openid {scope}"})
            for _ in range(8):
                location = response.headers["location"]
                if location.startswith(redirect):
                    break
                response = browser.get(httpx.URL(self.base).join(location))
                if response.status_code == 200:  # a login or consent form
                    prompt = "login" if 'value="login"' in response.text else "consent"
                    response = browser.post(response.url, data={
                        "prompt": prompt, "login": user, "password": "synthetic"})
            code = httpx.URL(response.headers["location"]).params["code"]
            tokens = browser.post(f"{self.issuer(realm)}/token", auth=(client, secret), data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect})
        assert tokens.status_code == 200, tokens.text
        token: str = tokens.json()["access_token"]
        return token


POLICY = """\
client: {client}
issuer: {issuer}
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{{id}}
    scopes: [{scope}]
    response:
      records: "$"
      fields: {{{fields}}}
      unlisted: drop
limits:
  requests: 100000/minute
  records: 100000/hour
  distinct_patients: 100000/day
  enumeration: false
"""


@dataclass(frozen=True)
class Config:
    path: Path
    port: int
    admin_port: int


def write_config(folder: Path, idp: Idp, upstream_url: str) -> Config:
    policies = folder / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    care = idp.issuer("care")
    for client, scope, fields in (("gp-frontdesk", "patient.read", "id: keep, name: keep"),
                                  ("ward-app", "patient.read", "id: keep, name: keep"),
                                  ("billing", "billing.read", "id: keep, nir: keep")):
        (policies / f"{client}.yaml").write_text(
            POLICY.format(client=client, issuer=care, scope=scope, fields=fields))
    config = Config(folder / "vigie.yaml", free_port(), free_port())
    config.path.write_text(f"""\
upstream: {upstream_url}
listen: {{host: 127.0.0.1, port: {config.port}}}
admin: {{host: 127.0.0.1, port: {config.admin_port}}}
policies: ./policies
audit: {{path: ./audit.log}}
issuers:
  - issuer: {care}
    audiences: [{AUDIENCE}]
    discovery_url: {care}/.well-known/openid-configuration
    jwks_refresh_seconds: {REFRESH_SECONDS}
    jwks_max_stale_seconds: {MAX_STALE_SECONDS}
    jwks_cache_file: ./state/care-jwks.json
  - issuer: {idp.issuer("lab")}
    audiences: [{AUDIENCE}]
    jwks_url: {idp.issuer("lab")}/jwks
    jwks_refresh_seconds: {REFRESH_SECONDS}
    jwks_max_stale_seconds: {MAX_STALE_SECONDS}
""")
    return config


class VigieProcess:
    """`vigie serve --config ...` as a separate process, its stderr kept for the log checks."""

    def __init__(self, config: Config, name: str) -> None:
        self.url = f"http://127.0.0.1:{config.port}"
        self.admin = f"http://127.0.0.1:{config.admin_port}"
        self.log = config.path.parent / f"{name}.stderr"
        self._log_handle = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vigie", "serve", "--config", str(config.path)],
            stdout=subprocess.DEVNULL, stderr=self._log_handle, cwd=config.path.parent)
        self.http = httpx.Client(timeout=10)

    def up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"vigie exited: {self.log.read_text()[-2000:]}")
        try:
            return self.http.get(f"{self.admin}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def ready(self) -> bool:
        return self.http.get(f"{self.admin}/readyz").status_code == 200

    def get(self, path: str, token: str) -> httpx.Response:
        return self.http.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"})

    def metric(self, name: str, **labels: str) -> float:
        return sample(self.http.get(f"{self.admin}/metrics").text, name, **labels)

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log_handle.close()
