"""Fixtures: every guard test marked with `backend` runs on the memory and on a real Redis store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.guard import (
    GuardKit,
    cleanup,
    make_guard,
    redis_store,
    require_redis,
    unique_prefix,
)
from vigie.config import Settings
from vigie.guard import GuardStore, GuardTuning, MemoryStore
from vigie.telemetry.metrics import Metrics


class Backend:
    """Builds guards on one kind of store; Redis guards share one unique key prefix."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.tmp = tmp
        self.prefix = unique_prefix()
        self.kits: list[GuardKit] = []

    def store(self, metrics: Metrics) -> GuardStore:
        if self.kind == "memory":
            return MemoryStore()
        return redis_store(self.prefix, metrics)

    async def guard(self, conf: Settings | None = None,
                    tuning: GuardTuning | None = None) -> GuardKit:
        metrics = Metrics(process_collectors=False)
        kit = make_guard(self.store(metrics), self.tmp, conf=conf, tuning=tuning,
                         metrics=metrics)
        await kit.guard.start()
        self.kits.append(kit)
        return kit

    async def close(self) -> None:
        for kit in self.kits:
            await kit.guard.close()
        if self.kind == "redis":
            cleanup(self.prefix)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "redis":
        require_redis()
    made = Backend(request.param, tmp_path)
    try:
        yield made
    finally:
        await made.close()
