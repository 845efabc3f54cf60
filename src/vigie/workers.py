"""`workers: N`: N forked processes serving the same ports, and their supervisor.

Each worker binds the proxy and admin ports with SO_REUSEPORT (the kernel spreads
connections over them), builds its own `Vigie` (its own upstream pool, JWKS cache,
policy watcher) and shares what must be one across the pod: the guard state in
Redis (config refuses `workers > 1` without it), the metrics in
PROMETHEUS_MULTIPROC_DIR (merged by any worker's /metrics) and the audit chain
(audit/shared.py: one chain, one file). The supervisor holds the ports reserved,
forwards SIGTERM/SIGINT/SIGHUP to every worker (each drains its own in-flight
requests, server.py) and exits with the first failure; a worker that dies while
the others serve stops them all, so that the orchestrator restarts the pod whole.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import NoReturn

from prometheus_client import multiprocess, values

from vigie.audit.shared import SharedChain
from vigie.config import Settings
from vigie.errors import ConfigError
from vigie.server import bind

log = logging.getLogger("vigie.workers")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def supervise(settings: Settings) -> int:
    """Fork `settings.workers` workers; return the exit code of the pod."""
    # Reserve the ports (resolving port 0) without listening: only workers accept.
    reserved = [bind(settings.listen.host, settings.listen.port, reuse_port=True, listen=False),
                bind(settings.admin.host, settings.admin.port, reuse_port=True, listen=False)]
    ports = [sock.getsockname()[1] for sock in reserved]
    metrics_dir, owned = _metrics_dir()
    chain = SharedChain()
    children: dict[int, int] = {}
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        for pid in children:
            _kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    previous = {sig: signal.signal(sig, forward)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        for index in range(settings.workers):
            pid, built = _fork(settings, ports, chain)
            children[pid] = index
            if not built:  # the first one to fail (a ConfigError...) says why and ends it all
                stopping = True
            if stopping:  # or SIGTERM came while starting: stop those already started
                break
        if not stopping:
            log.info("vigie: %d workers serving on port %d (admin %d), pids %s",
                     len(children), ports[0], ports[1], sorted(children))
        return _reap(children, lambda: stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in reserved:
            sock.close()
        if owned:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir() -> tuple[Path, bool]:
    """PROMETHEUS_MULTIPROC_DIR emptied (or a fresh one), set for the workers to inherit."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):  # a previous run's values must not add up
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="vigie-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    # The value class is chosen when prometheus_client is imported: choose it again.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory, not given


def _fork(settings: Settings, ports: list[int], chain: SharedChain) -> tuple[int, bool]:
    """Start a worker; True once it has built its Vigie and bound (False: it is exiting)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(settings, ports, chain, write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        return pid, pipe.read(1) == b"1"


def _child(settings: Settings, ports: list[int], chain: SharedChain, built: int) -> NoReturn:
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        code = _worker(settings, ports, chain, built)
    except ConfigError as exc:
        print(f"vigie: {exc}", file=sys.stderr)
        code = 2
    except OSError as exc:
        print(f"vigie: cannot listen: {exc.strerror} (key 'listen' or 'admin')", file=sys.stderr)
        code = 2
    except BaseException as exc:  # noqa: BLE001 - a worker ends here, never in the parent's stack
        log.error("vigie worker %d failed: %s", os.getpid(), type(exc).__name__)  # no message
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _worker(settings: Settings, ports: list[int], chain: SharedChain, built: int) -> int:
    import asyncio

    import uvloop

    from vigie.app import Vigie
    from vigie.server import serve

    vigie = Vigie.build(settings, audit_chain=chain)
    proxy = bind(settings.listen.host, ports[0], reuse_port=True)
    admin = bind(settings.admin.host, ports[1], reuse_port=True)
    os.write(built, b"1")
    os.close(built)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, vigie=vigie, proxy_socket=proxy, admin_socket=admin))
    return 0


def _reap(children: dict[int, int], stopping: Callable[[], bool]) -> int:
    """Wait for every worker; the first unexpected exit stops the others."""
    result, failed = 0, False
    for pid in list(children) if stopping() else ():
        _kill(pid, signal.SIGTERM)
    while children:
        pid, status = os.wait()
        if pid not in children:
            continue
        del children[pid]
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        code = os.waitstatus_to_exitcode(status)
        if not (stopping() or failed):  # nobody asked it to stop
            failed = True
            code = code if code > 0 else 1
            log.error("vigie worker %d exited (%d): stopping the others", pid, code)
            for other in children:
                _kill(other, signal.SIGTERM)
        if code != 0 and result == 0:
            result = code if code > 0 else 1
    return result


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
