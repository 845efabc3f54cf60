"""The live policy set: loaded at start-up, reloaded on SIGHUP or when a file changes.

A reload that fails validation keeps the previous policies, logs every error
and increments `vigie_policy_reload_failures_total`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from vigie.errors import ConfigError
from vigie.policy.loader import load_policies
from vigie.policy.model import PolicySet
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.policy")


class PolicyStore:
    """`validate` adds the checks that need the configuration (e.g. a pseudonym key for
    pseudonymizing policies): it raises ConfigError, at start-up as on reload."""

    def __init__(self, folder: Path, metrics: Metrics,
                 validate: Callable[[PolicySet], None] = lambda policies: None) -> None:
        self.folder = folder
        self._metrics = metrics
        self._validate = validate
        self.current: PolicySet = self._load()  # raises: start-up must stop
        self._fingerprint = self._scan()
        self._watch_task: asyncio.Task[None] | None = None
        metrics.policies_loaded(self.current)

    def _scan(self) -> tuple[tuple[str, float, int], ...]:
        try:
            entries = sorted(p for p in self.folder.iterdir() if p.suffix in (".yaml", ".yml"))
            return tuple((p.name, p.stat().st_mtime, p.stat().st_size) for p in entries)
        except OSError:
            return ()

    def _load(self) -> PolicySet:
        policies = load_policies(self.folder)
        self._validate(policies)
        return policies

    def reload(self) -> bool:
        """Load the folder again; on any error keep the old policies. True when replaced."""
        self._fingerprint = self._scan()
        try:
            policies = self._load()
        except ConfigError as exc:
            self._metrics.policy_reload_failures.inc()
            log.error("policy reload failed, previous policies kept: %s", exc)
            return False
        self.current = policies
        self._metrics.policies_loaded(policies)
        log.info("policies reloaded: %d clients", len(policies.clients))
        return True

    def start_watching(self, interval: float = 2.0) -> None:
        self._watch_task = asyncio.get_running_loop().create_task(self._watch(interval))

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self._scan() != self._fingerprint:
                self.reload()

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
