"""The incident drill's stack: the demo (legacy API, issuer, replica a) and a second replica
b on the same config, both on one Redis, served from a background thread.

    with DrillStack(tmp, redis_url) as d:
        d.run(sequential(d.a, 8))       # coroutines run on the stack's own loop
        d.a.proxy_url, d.b.admin_url, d.audit_files, d.event_files

Replica b reads replica a's vigie.yaml (same policies, pseudonym key, admin token, Redis)
with its own audit and events files, as two pods of one deployment would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from vigie.app import Vigie
from vigie.config import load_settings
from vigie.demo.runner import HOST, DemoStack, demo_stack
from vigie.server import bind, serve


class DrillStack:
    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp = tmp
        self.redis_url = redis_url
        self.a: DemoStack
        self.b: DemoStack
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def audit_files(self) -> list[Path]:
        return [self.a.state / "audit.jsonl", self.b.state / "audit.jsonl"]

    @property
    def event_files(self) -> list[Path]:
        return [self.a.state / "security-events.jsonl", self.b.state / "security-events.jsonl"]

    @property
    def token_file(self) -> Path:
        return self.a.state / "admin.token"

    def __enter__(self) -> DrillStack:
        ready = threading.Event()
        state_a, state_b = self.tmp / "replica-a", self.tmp / "replica-b"
        state_a.mkdir()
        state_b.mkdir()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with demo_stack(state_a, preferred_ports=False,
                                  extra_config=f"redis: {self.redis_url}\n") as a:
                settings = load_settings(state_a / "vigie.yaml", {
                    "VIGIE_AUDIT__PATH": str(state_b / "audit.jsonl"),
                    "VIGIE_GUARD__EVENTS_PATH": str(state_b / "security-events.jsonl")})
                vigie = Vigie.build(settings)
                proxy_socket, admin_socket = bind(HOST, 0), bind(HOST, 0)
                started, stop_b = asyncio.Event(), asyncio.Event()
                serving = asyncio.create_task(serve(
                    settings, vigie=vigie, proxy_socket=proxy_socket,
                    admin_socket=admin_socket, started=lambda _: started.set(), stop=stop_b))
                await started.wait()
                self.a = a
                self.b = replace(
                    a, proxy_url=f"http://{HOST}:{proxy_socket.getsockname()[1]}",
                    admin_url=f"http://{HOST}:{admin_socket.getsockname()[1]}",
                    state=state_b, vigie=vigie, serving=serving)
                ready.set()
                await self._stop.wait()
                stop_b.set()
                await serving

        def thread() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - reported by __enter__
                self._error = exc
                ready.set()

        self._thread = threading.Thread(target=thread, daemon=True)
        self._thread.start()
        if not ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the drill stack did not start: {self._error!r}")
        return self

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        if self._loop is None:
            raise RuntimeError("the drill stack is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
