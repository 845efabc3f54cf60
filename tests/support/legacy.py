"""Real loopback servers for tests: any ASGI app under uvicorn in a background thread.

`run_app_in_thread(app)` binds 127.0.0.1 on a free port, serves `app` from its own
thread and event loop, waits until it accepts connections, yields the base URL and
stops it cleanly. `LegacyServer` is the synthetic legacy patient API served that way.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from vigie.demo.legacy_api import create_legacy_app
from vigie.demo.patients import DEFAULT_SEED

_START_TIMEOUT = 10.0


@contextmanager
def run_app_in_thread(app: ASGIApp, *, host: str = "127.0.0.1", **config: Any) -> Iterator[str]:
    """Serve `app` on a free loopback port; yields "http://127.0.0.1:PORT"."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {"log_level": "warning", "access_log": False, "ws": "none",
                               "lifespan": "auto"}
    options.update(config)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the test thread below
            errors.append(exc)

    thread = threading.Thread(target=serve, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"server on port {port} failed to start") from (
                errors[0] if errors else None)
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            sock.close()
            raise RuntimeError(f"server on port {port} did not start in {_START_TIMEOUT}s")
        time.sleep(0.005)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT)
        sock.close()


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
