"""Run the proxy and admin listeners with uvicorn (uvloop, httptools) in one loop.

SIGTERM/SIGINT: readiness goes to 503, the proxy stops accepting and finishes
in-flight requests (up to `shutdown_grace_seconds`), then the admin listener
stops and the process exits 0. SIGHUP reloads the policies (and renewed TLS files).
A listener with `tls` serves HTTPS from vigie.tls's context, reloaded on renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Generator
from typing import Any, cast

import uvicorn

from vigie.app import Vigie
from vigie.config import Listen, Settings
from vigie.listener import BoundedHeadProtocol, bounded
from vigie.proxy import ORIGIN_FORM
from vigie.tls import ServerTLS
from vigie.types import ASGIApp

log = logging.getLogger("vigie.server")


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: we drive both listeners."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _Config(uvicorn.Config):
    """uvicorn's config serving our SSLContext (uvicorn would build its own from paths,
    and could not reload it)."""

    def __init__(self, app: ASGIApp, tls_context: ssl.SSLContext | None,
                 **options: Any) -> None:
        super().__init__(app, **options)
        self._tls_context = tls_context

    def load(self) -> None:
        super().load()
        self.ssl = self._tls_context


class OriginFormProtocol(BoundedHeadProtocol):
    """httptools, telling the app whether the request target was in origin form.

    uvicorn keeps only the path of an absolute-form target (`GET http://h/x`),
    so the proxy could not refuse it; this marks the scope before it is lost.
    """

    def on_headers_complete(self) -> None:
        scope = cast(dict[str, Any], self.scope)
        scope[ORIGIN_FORM] = self.url.startswith(b"/")
        super().on_headers_complete()


def bind(host: str, port: int, *, reuse_port: bool = False,
         listen: bool = True) -> socket.socket:
    """A TCP socket on (host, port); `reuse_port`: one per worker on the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def make_server(app: ASGIApp, grace: float, listen: Listen | None = None,
                tls_context: ssl.SSLContext | None = None) -> uvicorn.Server:
    """A uvicorn server for an already-bound socket; signals are ours, not uvicorn's.

    Request heads are bounded by `listen.max_header_bytes` and `header_timeout_seconds`.
    """
    listen = listen or Listen()
    protocol = bounded(OriginFormProtocol, listen.max_header_bytes,
                       listen.header_timeout_seconds)
    config = _Config(
        app, tls_context, http=protocol, lifespan="off", access_log=False,
        log_config=None, server_header=False, date_header=True, proxy_headers=False,
        timeout_graceful_shutdown=max(1, int(grace)), timeout_keep_alive=30, backlog=2048,
    )
    return _Server(config)


async def serve(settings: Settings, *, vigie: Vigie | None = None,
                proxy_socket: socket.socket | None = None,
                admin_socket: socket.socket | None = None,
                started: Callable[[Vigie], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (main thread) or until `stop` is set."""
    vigie = vigie or Vigie.build(settings)
    proxy_socket = proxy_socket or bind(settings.listen.host, settings.listen.port)
    admin_socket = admin_socket or bind(settings.admin.host, settings.admin.port)
    tls = [ServerTLS(listener.tls) if listener.tls else None
           for listener in (settings.listen, settings.admin)]
    proxy = make_server(vigie.proxy_app, settings.shutdown_grace_seconds, settings.listen,
                        tls[0].context if tls[0] else None)
    admin = make_server(vigie.admin_app, 1, settings.listen,
                        tls[1].context if tls[1] else None)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, _reload, vigie, tls)
    await vigie.start()
    proxy_task = asyncio.create_task(proxy.serve(sockets=[proxy_socket]))
    admin_task = asyncio.create_task(admin.serve(sockets=[admin_socket]))
    renewals = [asyncio.create_task(t.watch(stop)) for t in tls if t is not None]
    try:
        while not (proxy.started and admin.started):
            if proxy_task.done() or admin_task.done():
                break
            await asyncio.sleep(0.01)
        vigie.serving = proxy.started
        log.info("vigie serving: proxy %s:%d, admin %s:%d", *proxy_socket.getsockname()[:2],
                 *admin_socket.getsockname()[:2])
        if started is not None:
            started(vigie)
        stop_wait = asyncio.create_task(stop.wait())
        await asyncio.wait({stop_wait, proxy_task, admin_task},
                           return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        log.info("shutting down: draining in-flight requests")
        vigie.serving = False
        proxy.should_exit = True
        await proxy_task
        admin.should_exit = True
        await admin_task
    finally:
        for renewal in renewals:
            renewal.cancel()
        if in_main:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        await vigie.close()
        log.info("vigie stopped")


def _reload(vigie: Vigie, tls: list[ServerTLS | None]) -> None:
    vigie.policies.reload()
    for listener in tls:
        if listener is not None:
            listener.reload_if_changed()


def run(settings: Settings) -> int:
    """Blocking entry point for `vigie serve`, on uvloop; `workers > 1`: vigie.workers."""
    if settings.workers > 1:
        from vigie.workers import supervise

        return supervise(settings)
    import uvloop

    vigie = Vigie.build(settings)  # ConfigError before anything listens
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, vigie=vigie))
    return 0
