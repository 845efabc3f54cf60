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
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError, NoScriptError

from vigie.guard.coalesce import Command, Waiter, deliver


class ClusterScripts:
    """The `AdmitBatcher` interface for a Cluster: `run` the calls, raise what failed."""

    def __init__(self, client: RedisCluster, *, numkeys: int, timeout: float,
                 sha: Callable[[], str], reload: Callable[[], Awaitable[None]],
                 in_flight: int = 2) -> None:
        self.numkeys = numkeys
        self.timeout = timeout
        self._client = client
        self._sha = sha
        self._reload = reload
        self._in_flight = in_flight
        self._running = 0
        self._queue: list[Waiter] = []
        self._starting = False  # a worker is created and has not taken the queue yet
        self._workers: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches sent (tests and benchmarks read it)

    async def connect(self) -> None:
        await self._client.initialize()

    async def close(self) -> None:
        """Stops the workers; the client is closed by its owner."""
        for worker in list(self._workers):
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """The script replies for `commands`, in order; raises what failed their batch."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append(Waiter(commands, future))
        if not self._starting and self._running < self._in_flight:
            self._starting = True
            self._running += 1
            worker = asyncio.create_task(self._drain(), name="vigie-guard-cluster")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        return await future

    async def _drain(self) -> None:
        self._starting = False
        batch: list[Waiter] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                batch = [waiter for waiter in batch if not waiter.future.done()]
                if batch:
                    await self._execute(batch)
                batch = []
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else ConnectionError("batch cancelled")
            for waiter in (*batch, *self._queue):
                if not waiter.future.done():
                    waiter.future.set_exception(failure)
            self._queue = []
            raise
        finally:
            self._running -= 1

    async def _execute(self, batch: list[Waiter]) -> None:
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
