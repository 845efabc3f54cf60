"""The faults the soak injects, one after the other, while traffic runs."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from soak import policies
from soak.stack import Service


@dataclass
class FaultLog:
    events: list[tuple[float, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reloads: int = 0

    def note(self, what: str) -> None:
        self.events.append((time.monotonic(), what))


async def _off_loop(call: Callable[[], object]) -> None:
    await asyncio.get_running_loop().run_in_executor(None, call)


async def restart(service: Service, signum: int, down_seconds: float, log: FaultLog,
                  what: str) -> None:
    log.note(what)
    await _off_loop(lambda: service.stop(signum))
    await asyncio.sleep(down_seconds)  # the outage itself, not a synchronization
    await _off_loop(service.start)


async def drain_replica(replica: Service, log: FaultLog) -> None:
    """SIGTERM: the replica must drain and exit 0; then it comes back."""
    log.note(f"SIGTERM {replica.name}")
    code = await asyncio.get_running_loop().run_in_executor(
        None, lambda: replica.stop(signal.SIGTERM))
    if code != 0:
        log.problems.append(f"{replica.name} exited {code} after SIGTERM")
    await _off_loop(replica.start)


async def inject(plan: list[Callable[[], Awaitable[None]]], until: float, pause: float) -> None:
    """Runs the fault plan round after round, `pause` seconds apart, until `until`."""
    while True:
        for step in plan:
            if time.monotonic() + pause >= until:
                return
            await asyncio.sleep(pause)
            await step()


async def reload_policies(folder: Path, replicas: list[Service], until: float,
                          every: float, log: FaultLog) -> None:
    revision = 0
    while time.monotonic() + every < until:
        await asyncio.sleep(every)
        revision += 1
        policies.write(folder, revision)
        for replica in replicas:
            if replica.up:
                replica.send(signal.SIGHUP)
        log.reloads += 1
        log.note(f"policy reload {revision}")
