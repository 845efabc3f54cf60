"""The guard's background refresh: quarantine and anomaly gauges, client alerts, holds.

Every `_REFRESH_SECONDS`, or at once when a quarantine changes (`wake`): the quarantine
list (its gauge), the coordinated-extraction alerts other replicas raised for the
clients served here, the per-client anomaly gauges, and the holds whose leases expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from vigie.guard.holds import Holds
from vigie.guard.quarantines import Quarantines

log = logging.getLogger("vigie.guard")

_REFRESH_SECONDS = 5.0


class Refresher:
    def __init__(self, quarantines: Quarantines, holds: Holds, clients: set[str]) -> None:
        self.quarantines = quarantines
        self.holds = holds
        self.clients = clients
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="vigie-guard-gauges")

    async def close(self) -> None:
        # A flag, not cancel(): on 3.11 a cancel racing asyncio.timeout can be swallowed.
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_REFRESH_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                await self.quarantines.listing()
                await self.quarantines.refresh_alerts(self.clients)
                self.quarantines.publish_all()
                self.holds.forget_expired()
            except Exception as exc:  # gauges must never stop the guard
                log.error("guard gauge refresh failed: %s", type(exc).__name__)
