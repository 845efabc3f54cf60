"""Runs the guard's script calls on a Redis Cluster: each call to the primary of its slot.

The standalone `AdmitBatcher` packs a tick's `EVALSHA`s on connections of one server; a
Cluster spreads the subjects over several primaries, so here every call goes through
redis-py's `RedisCluster.evalsha`: the slot map routes it, MOVED/ASK redirect it, and a
connection error marks the map for a refresh; the call is then tried once more, so after
a failover it reaches the promoted replica instead of the per-replica fallback. The calls
of one request (a principal, and its client with `client_limits`) run concurrently: one
round trip of latency, on one or two nodes. Every call keeps its keys under one hash tag,
so each stays one atomic script on one slot.

redis-py's cluster pools refuse a connection past their size instead of waiting for one:
the calls in flight are capped below that size here, so a burst queues for a warm
connection rather than failing over to the per-replica fallback.

A primary that lost the script cache (a promoted replica, `SCRIPT FLUSH`) answers NOSCRIPT:
the scripts are loaded on every primary and that call is replayed once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError, NoScriptError

Command = tuple[str, ...]  # the keys then the arguments of one script call


class ClusterScripts:
    """The `AdmitBatcher` interface for a Cluster: `run` the calls, raise what failed."""

    def __init__(self, client: RedisCluster, *, numkeys: int, sha: Callable[[], str],
                 reload: Callable[[], Awaitable[None]], max_connections: int) -> None:
        self.numkeys = numkeys
        self._client = client
        self._sha = sha
        self._reload = reload
        # Never past a node's pool; a few left for the flusher and the operators' commands.
        self._slots = asyncio.Semaphore(max(1, max_connections - 4))
        self.batches = 0  # script calls sent (tests read it)

    async def connect(self) -> None:
        await self._client.initialize()

    async def close(self) -> None:
        """The client is closed by its owner."""

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """The script replies for `commands`, in order; raises the first failure."""
        if len(commands) == 1:
            return [await self._call(commands[0])]
        replies = await asyncio.gather(*(self._call(c) for c in commands),
                                       return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def _call(self, command: Command) -> Any:
        async with self._slots:
            self.batches += 1
            try:
                return await self._client.evalsha(self._sha(), self.numkeys, *command)
            except ConnectionError:
                # The node is gone (failover): the client refreshes its slot map first.
                return await self._client.evalsha(self._sha(), self.numkeys, *command)
            except NoScriptError:
                await self._reload()
                return await self._client.evalsha(self._sha(), self.numkeys, *command)
