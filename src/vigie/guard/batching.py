"""The coalescing both script transports share: requests queue their calls, a worker per
free resource (a connection, a pipeline slot) takes the whole queue as one batch.

Calls submitted in the same event-loop tick, or while the batches in flight are out, go
together as the next batch; at most one batch per resource is in flight. The transport
(`_execute`) sends a batch and routes its replies with `deliver`. A request cancelled
while waiting does not disturb the others; a worker that dies fails whatever waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from redis.exceptions import ConnectionError

Command = tuple[str, ...]  # the keys then the arguments of one script call
Resource = TypeVar("Resource")


class Waiter:
    """One request's calls and the future its replies go to."""

    __slots__ = ("commands", "future")

    def __init__(self, commands: Sequence[Command], future: asyncio.Future[list[Any]]) -> None:
        self.commands = commands
        self.future = future


def deliver(batch: Sequence[Waiter], replies: Sequence[Any]) -> None:
    """Routes a batch's replies, in order, to its waiters: each gets its own replies, or the
    first error among them; a waiter already done (cancelled, timed out) is skipped."""
    start = 0
    for waiter in batch:
        end = start + len(waiter.commands)
        mine, start = list(replies[start:end]), end
        if waiter.future.done():
            continue
        error = next((reply for reply in mine if isinstance(reply, Exception)), None)
        if error is not None:
            waiter.future.set_exception(error)
        else:
            waiter.future.set_result(mine)


class Coalescer(Generic[Resource]):
    """Queues calls; `_execute(resource, batch)` sends one batch on one resource."""

    def __init__(self, resources: Sequence[Resource], name: str) -> None:
        self._free = list(resources)
        self._name = name
        self._queue: list[Waiter] = []
        self._starting = False  # a worker is created and has not taken the queue yet
        self._workers: set[asyncio.Task[None]] = set()
        self.batches = 0  # round trips made (tests and benchmarks read it)

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """The script replies for `commands`, in order; raises what failed their batch."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append(Waiter(commands, future))
        if not self._starting and self._free:
            # The task first runs on the next loop iteration: everything submitted
            # until then joins its first batch.
            self._starting = True
            worker = asyncio.create_task(self._drain(self._free.pop()), name=self._name)
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        return await future

    async def _stop_workers(self) -> None:
        for worker in list(self._workers):
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _drain(self, resource: Resource) -> None:
        self._starting = False
        batch: list[Waiter] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                batch = [waiter for waiter in batch if not waiter.future.done()]
                if batch:
                    await self._execute(resource, batch)
                batch = []
        except BaseException as exc:
            # Cancelled (shutdown) or a bug: nobody may wait forever.
            failure = exc if isinstance(exc, Exception) else ConnectionError("batch cancelled")
            for waiter in (*batch, *self._queue):
                if not waiter.future.done():
                    waiter.future.set_exception(failure)
            self._queue = []
            raise
        finally:
            self._free.append(resource)

    async def _execute(self, resource: Resource, batch: list[Waiter]) -> None:
        raise NotImplementedError
