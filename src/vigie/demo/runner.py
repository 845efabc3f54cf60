"""`vigie demo`: a synthetic legacy API, a token issuer and the proxy, in one process.

Nothing to configure: ports 8000 (legacy API), 8001 (issuer), 8080 (proxy) and
9090 (admin) when free, other free ports otherwise. State (audit log, security
events, pseudonym key) lives in a temporary folder removed at exit. Ctrl-C stops
everything cleanly. `demo_stack` is the same stack for the attack simulator.
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
from collections.abc import AsyncIterator
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class DemoStack:
    issuer: DemoIssuer
    legacy_url: str
    proxy_url: str
    admin_url: str
    admin_token: str
    state: Path
    vigie: Vigie
    serving: asyncio.Task[None]  # ends on SIGINT/SIGTERM (serve() owns the signals)


def _socket(preferred: int) -> socket.socket:
    if preferred:
        try:
            return bind(HOST, preferred)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    return bind(HOST, 0)


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def demo_stack(state: Path, *, preferred_ports: bool = True,
                     extra_config: str = "") -> AsyncIterator[DemoStack]:
    """Legacy API + issuer + vigie with the demo policies, until the block ends."""
    ports = (8000, 8001, 8080, 9090) if preferred_ports else (0, 0, 0, 0)
    legacy_sock, issuer_sock, proxy_sock, admin_sock = (_socket(p) for p in ports)
    legacy_url = f"http://{HOST}:{_port(legacy_sock)}"
    issuer_url = f"http://{HOST}:{_port(issuer_sock)}"
    issuer = DemoIssuer(issuer_url)
    legacy = make_server(create_legacy_app(), 1)
    issuer_server = make_server(issuer.app(), 1)
    side_tasks = [asyncio.create_task(legacy.serve(sockets=[legacy_sock])),
                  asyncio.create_task(issuer_server.serve(sockets=[issuer_sock]))]
    serving: asyncio.Task[None] | None = None
    stop = asyncio.Event()
    try:
        while not (legacy.started and issuer_server.started):
            await asyncio.sleep(0.01)
        admin_token = secrets.token_urlsafe(24)
        config = _write_config(state, legacy_url, issuer_url, admin_token, extra_config)
        settings = load_settings(config, {})
        vigie = Vigie.build(settings)
        started = asyncio.Event()
        serving = asyncio.create_task(serve(
            settings, vigie=vigie, proxy_socket=proxy_sock, admin_socket=admin_sock,
            started=lambda _: started.set(), stop=stop))
        await asyncio.wait({asyncio.create_task(started.wait()), serving},
                           return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()  # raises what stopped it
        yield DemoStack(issuer, legacy_url, f"http://{HOST}:{_port(proxy_sock)}",
                        f"http://{HOST}:{_port(admin_sock)}", admin_token, state, vigie,
                        serving)
    finally:
        stop.set()
        if serving is not None:
            await asyncio.gather(serving, return_exceptions=True)
        legacy.should_exit = issuer_server.should_exit = True
        await asyncio.gather(*side_tasks, return_exceptions=True)


def _write_config(state: Path, legacy_url: str, issuer_url: str, admin_token: str,
                  extra: str) -> Path:
    key = state / "pseudonym.key"
    key.write_bytes(secrets.token_hex(32).encode())
    token_file = state / "admin.token"
    token_file.write_text(admin_token)
    policies = resources.files("vigie.demo") / "policies"
    config = state / "vigie.yaml"
    config.write_text(
        f"upstream: {legacy_url}\n"
        f"policies: {policies}\n"
        f"pseudonym_key_file: {key}\n"
        f"admin: {{host: {HOST}, token_file: {token_file}}}\n"
        f"audit: {{path: {state / 'audit.jsonl'}}}\n"
        f"guard: {{events_path: {state / 'security-events.jsonl'}, "
        "decoy_ids: ['990001', '990002']}\n"
        "issuers:\n"
        f"  - issuer: {issuer_url}\n"
        "    audiences: [patient-api]\n"
        f"    jwks_url: {issuer_url}/jwks\n"
        "    algorithms: [RS256]\n"
        "    client_claim: azp\n" + extra)
    return config


def run_demo() -> int:
    import uvloop

    with tempfile.TemporaryDirectory(prefix="vigie-demo-") as tmp, \
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        with contextlib.suppress(KeyboardInterrupt):
            runner.run(_demo(Path(tmp)))
    print("\nvigie demo stopped.")
    return 0


async def _demo(state: Path) -> None:
    async with demo_stack(state) as stack:
        await _introduce(stack)
        await stack.serving  # until Ctrl-C


async def _introduce(stack: DemoStack) -> None:
    out = sys.stdout
    out.write(
        "\nVigie demo is running.\n"
        f"  legacy patient API (returns everything, NIR included): {stack.legacy_url}\n"
        f"  vigie proxy in front of it:                             {stack.proxy_url}\n"
        f"  admin (metrics, health):                                {stack.admin_url}/metrics\n"
        f"  audit log: {stack.state / 'audit.jsonl'}\n\n"
        "What the legacy API leaks to anyone:\n"
        f"  curl -s {stack.legacy_url}/patients/{PATIENT}\n\n"
        "Three clients, three views of the same patient (tokens valid 15 minutes):\n")
    async with httpx.AsyncClient(timeout=10) as http:
        for number, (client, user, scopes, claims, path, purpose) in enumerate(CLIENTS, 1):
            token = stack.issuer.mint(client, user, scopes, **claims)
            target = path.format(id=PATIENT)
            out.write(f"\n{number}. {purpose}\n")
            out.write(f"  curl -s -H {shlex.quote('Authorization: Bearer ' + token)} "
                      f"{shlex.quote(stack.proxy_url + target)}\n")
            try:
                response = await http.get(stack.proxy_url + target,
                                          headers={"Authorization": f"Bearer {token}"})
                shown = orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode()
            except (httpx.HTTPError, ValueError) as exc:
                out.write(f"  (could not fetch: {type(exc).__name__})\n")
                continue
            out.write(f"  {client} sees (HTTP {response.status_code}):\n")
            out.write("".join(f"    {line}\n" for line in shown.splitlines()[:40]))
    out.write("\nTry the extraction simulator: vigie attack\nPress Ctrl-C to stop.\n")
    out.flush()
