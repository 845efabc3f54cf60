"""Coalesces the admission scripts of concurrent requests into one Redis round trip.

Admissions submitted in the same event-loop tick, or while the batches in flight are
out, go together as the next batch: one packed pipeline of `EVALSHA`s written at once,
the replies read back in order and routed to each waiting request. At most `connections`
batches (default 2) are in flight, one per connection this class owns: under load many
requests share one round trip, and two let Redis run one batch while this process
handles the replies of the other (one alone leaves each side idle half the time).
Each `EVALSHA` stays its own atomic script (per principal); only the transport is
shared. The commands are packed here and sent on the raw connection: redis-py's
per-command machinery (retry wrapper, pool checkout, argument encoding, a timeout task
per write) is what the hot path was paying for, once per request.

A failed batch (timeout, connection error) fails every request in it; the caller decides
those with its fallback. A request cancelled while waiting does not disturb the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

from vigie.guard.batching import Coalescer, Command, Waiter, deliver


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class AdmitBatcher(Coalescer[AbstractConnection]):
    """Runs `EVALSHA <sha> <numkeys> *command` for many requests, one round trip per batch."""

    def __init__(self, pool: ConnectionPool, *, numkeys: int, timeout: float,
                 sha: Callable[[], str], reload: Callable[[], Awaitable[None]],
                 connections: int = 2) -> None:
        self.timeout = timeout
        self.numkeys = numkeys
        self._pool = pool
        self._sha = sha
        self._reload = reload
        # Connections of our own, outside the pool, without redis-py's per-write timeout
        # task: a batch runs under one asyncio timeout instead.
        kwargs = dict(pool.connection_kwargs)
        kwargs["socket_timeout"] = None
        self._connections: list[AbstractConnection] = [
            pool.connection_class(**kwargs) for _ in range(max(1, connections))]
        super().__init__(self._connections, "vigie-guard-admit")

    async def connect(self) -> None:
        async with asyncio.timeout(max(self.timeout, 1.0)):
            for connection in self._connections:
                await connection.connect()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self._stop_workers()
        for connection in self._connections:
            await connection.disconnect(nowait=True)

    async def _execute(self, connection: AbstractConnection, batch: list[Waiter]) -> None:
        commands = [command for waiter in batch for command in waiter.commands]
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._round_trip(connection, commands)
                missing = [i for i, reply in enumerate(replies)
                           if isinstance(reply, NoScriptError)]
                if missing:  # the scripts were flushed: load them and replay those calls
                    await self._reload()
                    again = await self._round_trip(connection,
                                                   [commands[i] for i in missing])
                    for i, reply in zip(missing, again, strict=True):
                        replies[i] = reply
        except BaseException as exc:
            # The connection may be mid-reply: drop it, the next batch reconnects.
            await connection.disconnect(nowait=True)
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, ConnectionError | OSError):
                await self._drop_idle_connections()
            for waiter in batch:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
            return
        deliver(batch, replies)

    async def _drop_idle_connections(self) -> None:
        """Redis went away: the idle connections (ours and the pool's, which reloads the
        scripts) are likely dead too; reconnecting them beats failing one more batch each."""
        for idle in self._free:
            await idle.disconnect(nowait=True)
        await self._pool.disconnect(inuse_connections=False)

    async def _round_trip(self, connection: AbstractConnection, commands: list[Command]
                          ) -> list[Any]:
        prefix = _bulk(b"EVALSHA") + _bulk(self._sha().encode()) + \
            _bulk(str(self.numkeys).encode())
        packed = [b"*%d\r\n%s%s" % (len(command) + 3, prefix,
                                      b"".join(_bulk(arg.encode()) for arg in command))
                  for command in commands]
        self.batches += 1
        await connection.send_packed_command(b"".join(packed), check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response(disable_decoding=True))
            except ResponseError as error:  # an error reply: the stream is still in sync
                replies.append(error)
        return replies
