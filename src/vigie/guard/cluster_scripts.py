"""Coalesces the guard's script calls on a Redis Cluster: one pipeline per node per batch.

The standalone `AdmitBatcher` packs a tick's `EVALSHA`s on connections of one server; a
Cluster spreads the subjects over several primaries. Here the calls submitted in one
event-loop tick, or while the batches in flight are out, go as the next batch through a
redis-py `ClusterPipeline`: it groups them by the primary of their slot (from the
client's slot map) and writes each node's share at once, the nodes concurrently, so a
batch costs one round trip of latency however many nodes it touches. MOVED/ASK replies
are followed per call by the pipeline. Every call keeps its keys under one hash tag, so
each stays one atomic script on one slot; only the transport is shared. At most two
batches are in flight.

A call answered NOSCRIPT (a promoted replica has no script cache) is replayed once after
the scripts are loaded on every primary. A connection error (a primary lost) fails the
batch, whose requests the caller decides with its fallback, and asks the client to
refresh its slot map before the next batch, which then reaches the promoted replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from vigie.guard.batching import Coalescer, Command, Waiter, deliver


class ClusterScripts(Coalescer[int]):
    """The `AdmitBatcher` interface for a Cluster: `run` the calls, raise what failed."""

    def __init__(self, client: RedisCluster, *, numkeys: int, timeout: float,
                 sha: Callable[[], str], reload: Callable[[], Awaitable[None]],
                 in_flight: int = 2) -> None:
        self.numkeys = numkeys
        self.timeout = timeout
        self._client = client
        self._sha = sha
        self._reload = reload
        # The resources are mere slots: each batch takes a connection per node it touches.
        super().__init__(range(max(1, in_flight)), "vigie-guard-cluster")

    async def connect(self) -> None:
        await self._client.initialize()

    async def close(self) -> None:
        """Stops the workers; the client is closed by its owner."""
        await self._stop_workers()

    async def _execute(self, slot: int, batch: list[Waiter]) -> None:
        commands = [command for waiter in batch for command in waiter.commands]
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._pipeline(commands)
                missing = [i for i, reply in enumerate(replies)
                           if isinstance(reply, NoScriptError)]
                if missing:
                    await self._reload()
                    again = await self._pipeline([commands[i] for i in missing])
                    for i, reply in zip(missing, again, strict=True):
                        replies[i] = reply
        except Exception as exc:
            for waiter in batch:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
            return
        deliver(batch, replies)

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        self.batches += 1
        pipe = self._client.pipeline()
        sha = self._sha()
        for command in commands:
            pipe.evalsha(sha, self.numkeys, *command)
        return list(await pipe.execute(raise_on_error=False))
