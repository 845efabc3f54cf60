"""`vigie demo`: a synthetic legacy API, a token issuer and the proxy, in one process.

Nothing to configure: ports 8000 (legacy API), 8001 (issuer), 8080 (proxy) and
9090 (admin) when free, other free ports otherwise. State (audit log, security
events, pseudonym key) lives in a temporary folder removed at exit. Ctrl-C stops
everything cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import shlex
import socket
import sys
import tempfile
from importlib import resources
from pathlib import Path

import httpx
import orjson

from vigie.app import Vigie
from vigie.config import load_settings
from vigie.demo.issuer import DemoIssuer
from vigie.demo.legacy_api import create_legacy_app
from vigie.server import bind, make_server, serve

HOST = "127.0.0.1"
# Patient 31 belongs to practice P1 and has a NIR written in its free-text notes.
PATIENT = 31
CLIENTS: tuple[tuple[str, str, list[str], dict[str, str], str, str], ...] = (
    # (client, user, scopes, extra claims, path, what it is for)
    ("gp-frontdesk", "dr-martin", ["patient.read", "patient.search"], {"practice_id": "P1"},
     "/patients/{id}", "GP front desk: identity for appointments, year of birth, no NIR"),
    ("billing", "billing-agent-1", ["patient.read"], {"practice_id": "P1"},
     "/fhir/Patient/{id}", "Billing: the FHIR patient with the NIR it is entitled to"),
    ("research", "analyst-7", ["export.read", "patient.search"], {},
     "/patients?last_name=Ma&page=1&page_size=3", "Research: pseudonyms, years, departments"),
)


def _socket(preferred: int) -> socket.socket:
    try:
        return bind(HOST, preferred)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        return bind(HOST, 0)


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def run_demo() -> int:
    import uvloop

    with tempfile.TemporaryDirectory(prefix="vigie-demo-") as tmp, \
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        with contextlib.suppress(KeyboardInterrupt):
            runner.run(_demo(Path(tmp)))
    print("\nvigie demo stopped.")
    return 0


async def _demo(state: Path) -> None:
    legacy_sock, issuer_sock = _socket(8000), _socket(8001)
    proxy_sock, admin_sock = _socket(8080), _socket(9090)
    legacy_url = f"http://{HOST}:{_port(legacy_sock)}"
    issuer_url = f"http://{HOST}:{_port(issuer_sock)}"
    issuer = DemoIssuer(issuer_url)
    legacy = make_server(create_legacy_app(), 1)
    issuer_server = make_server(issuer.app(), 1)
    side_tasks = [asyncio.create_task(legacy.serve(sockets=[legacy_sock])),
                  asyncio.create_task(issuer_server.serve(sockets=[issuer_sock]))]
    while not (legacy.started and issuer_server.started):
        await asyncio.sleep(0.01)

    settings = load_settings(_write_config(state, legacy_url, issuer_url), {})
    vigie = Vigie.build(settings)
    proxy_url = f"http://{HOST}:{_port(proxy_sock)}"
    admin_url = f"http://{HOST}:{_port(admin_sock)}"
    stop = asyncio.Event()

    def started(_: Vigie) -> None:
        asyncio.get_running_loop().create_task(
            _introduce(issuer, legacy_url, proxy_url, admin_url, state))

    try:
        await serve(settings, vigie=vigie, proxy_socket=proxy_sock, admin_socket=admin_sock,
                    started=started, stop=stop)
    finally:
        legacy.should_exit = issuer_server.should_exit = True
        await asyncio.gather(*side_tasks, return_exceptions=True)


def _write_config(state: Path, legacy_url: str, issuer_url: str) -> Path:
    key = state / "pseudonym.key"
    key.write_bytes(secrets.token_hex(32).encode())
    admin_token = state / "admin.token"
    admin_token.write_text(secrets.token_urlsafe(24))
    policies = resources.files("vigie.demo") / "policies"
    config = state / "vigie.yaml"
    config.write_text(
        f"upstream: {legacy_url}\n"
        f"policies: {policies}\n"
        f"pseudonym_key_file: {key}\n"
        f"admin: {{host: {HOST}, token_file: {admin_token}}}\n"
        f"audit: {{path: {state / 'audit.jsonl'}}}\n"
        f"guard: {{events_path: {state / 'security-events.jsonl'}, "
        "decoy_ids: ['990001', '990002']}\n"
        "issuers:\n"
        f"  - issuer: {issuer_url}\n"
        "    audiences: [patient-api]\n"
        f"    jwks_url: {issuer_url}/jwks\n"
        "    algorithms: [RS256]\n"
        "    client_claim: azp\n")
    return config


async def _introduce(issuer: DemoIssuer, legacy_url: str, proxy_url: str, admin_url: str,
                     state: Path) -> None:
    out = sys.stdout
    out.write(
        "\nVigie demo is running.\n"
        f"  legacy patient API (returns everything, NIR included): {legacy_url}\n"
        f"  vigie proxy in front of it:                             {proxy_url}\n"
        f"  admin (metrics, health):                                {admin_url}/metrics\n"
        f"  audit log: {state / 'audit.jsonl'}\n\n"
        f"What the legacy API leaks to anyone:\n  curl -s {legacy_url}/patients/{PATIENT}\n\n"
        "Three clients, three views of the same patient (tokens valid 15 minutes):\n")
    async with httpx.AsyncClient(timeout=10) as http:
        for number, (client, user, scopes, claims, path, purpose) in enumerate(CLIENTS, 1):
            token = issuer.mint(client, user, scopes, **claims)
            target = path.format(id=PATIENT)
            out.write(f"\n{number}. {purpose}\n")
            out.write(f"  curl -s -H {shlex.quote('Authorization: Bearer ' + token)} "
                      f"{shlex.quote(proxy_url + target)}\n")
            try:
                response = await http.get(proxy_url + target,
                                          headers={"Authorization": f"Bearer {token}"})
                shown = orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode()
            except (httpx.HTTPError, ValueError) as exc:
                out.write(f"  (could not fetch: {type(exc).__name__})\n")
                continue
            out.write(f"  {client} sees (HTTP {response.status_code}):\n")
            out.write("".join(f"    {line}\n" for line in shown.splitlines()[:40]))
    out.write("\nPress Ctrl-C to stop.\n")
    out.flush()
