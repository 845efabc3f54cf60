"""Real loopback servers for tests: any ASGI app under uvicorn in a background thread.

`run_app_in_thread(app)` binds 127.0.0.1 on a free port, serves `app` from its own
thread and event loop, waits until it accepts connections, yields the base URL and
stops it cleanly. `LegacyServer` is the synthetic legacy patient API served that way;
`DemoStack` adds the demo issuer and vigie itself with the demo policies in front;
`stack.upstream.requests` is every request the legacy API received.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from support.servers import free_socket, serve_in_thread
from vigie.demo.issuer import DemoIssuer
from vigie.demo.legacy_api import create_legacy_app
from vigie.demo.patients import DEFAULT_SEED

_START_TIMEOUT = 10.0


# One implementation of "an ASGI app in a thread" for every suite.
run_app_in_thread = serve_in_thread


class LegacyServer:
    """The synthetic legacy patient API on a free loopback port.

    with LegacyServer(count=200) as legacy:
        httpx.get(f"{legacy.base_url}/patients/42")
    """

    def __init__(self, count: int = 5000, seed: int = DEFAULT_SEED) -> None:
        self.count = count
        self.seed = seed
        self.base_url = ""
        self._running: Any = None

    def __enter__(self) -> LegacyServer:
        self._running = run_app_in_thread(create_legacy_app(self.count, self.seed))
        self.base_url = self._running.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.__exit__(exc_type, exc, tb)


class RecordingApp:
    """An ASGI app that notes every request it receives: (path, query, headers)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append((scope["path"], scope["query_string"].decode("latin-1"),
                                  {k.decode("latin-1"): v.decode("latin-1")
                                   for k, v in scope["headers"]}))
        await self.app(scope, receive, send)


class DemoStack:
    """What `vigie demo` runs, over loopback: legacy API, demo issuer, vigie with the demo
    policies. `stack.get(path, token)` goes through the proxy; `stack.issuer.mint(...)`
    makes tokens it trusts.

    with DemoStack(tmp_path, count=1000) as stack:
        token = stack.issuer.mint("gp-frontdesk", "dr-a", ["patient.read"], practice_id="P1")
        stack.get("/patients/42", token)
    """

    def __init__(self, state: Path, count: int = 1000, *, config: str = "") -> None:
        self.state = state
        self.count = count
        self.extra_config = config
        self.issuer = DemoIssuer("http://placeholder")
        self._stack = ExitStack()

    def __enter__(self) -> DemoStack:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start(self) -> None:
        from vigie.app import Vigie  # the proxy side is imported only by suites that use it
        from vigie.config import load_settings
        from vigie.demo import DEMO_POLICIES
        from vigie.server import serve

        self.upstream = RecordingApp(create_legacy_app(self.count))
        self.legacy_url = self._stack.enter_context(run_app_in_thread(self.upstream))
        issuer_url = self._stack.enter_context(run_app_in_thread(self.issuer.app()))
        self.issuer.issuer_url = issuer_url
        key_file = self.state / "pseudonym.key"
        key_file.write_bytes(b"demo-stack-pseudonym-key-0123456789abcdef")
        self.audit_path = self.state / "audit.jsonl"
        self.events_path = self.state / "events.jsonl"
        config = self.state / "vigie.yaml"
        config.write_text(
            f"upstream: {self.legacy_url}\n"
            f"policies: {DEMO_POLICIES}\n"
            f"pseudonym_key_file: {key_file}\n"
            f"audit: {{path: {self.audit_path}}}\n"
            f"guard: {{events_path: {self.events_path}, decoy_ids: ['990001', '990002']}}\n"
            "issuers:\n"
            f"  - issuer: {issuer_url}\n"
            "    audiences: [patient-api]\n"
            f"    jwks_url: {issuer_url}/jwks\n"
            "    algorithms: [RS256]\n"
            "    client_claim: azp\n"
            + self.extra_config)
        settings = load_settings(config, {})
        vigie = Vigie.build(settings, environ={})
        proxy_sock, admin_sock = free_socket(), free_socket()
        self.base_url = f"http://127.0.0.1:{proxy_sock.getsockname()[1]}"
        self.admin_url = f"http://127.0.0.1:{admin_sock.getsockname()[1]}"
        ready = threading.Event()
        loop_and_stop: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

        async def main() -> None:
            stop = asyncio.Event()
            loop_and_stop.append((asyncio.get_running_loop(), stop))
            await serve(settings, vigie=vigie, proxy_socket=proxy_sock, admin_socket=admin_sock,
                        started=lambda _: ready.set(), stop=stop)

        thread = threading.Thread(target=lambda: asyncio.run(main()), name="vigie-demo",
                                  daemon=True)
        thread.start()

        def shutdown() -> None:
            if loop_and_stop:
                loop, stop = loop_and_stop[0]
                loop.call_soon_threadsafe(stop.set)
            thread.join(_START_TIMEOUT)
            proxy_sock.close()
            admin_sock.close()

        self._stack.callback(shutdown)
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("vigie did not start")
        self.client = self._stack.enter_context(httpx.Client(base_url=self.base_url, timeout=30))

    def get(self, path: str, token: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
