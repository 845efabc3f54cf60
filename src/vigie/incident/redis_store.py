"""The Redis incident store: shared by every replica, versioned for cheap polling.

    <prefix>{incident}:revocations    hash  id    -> revocation (JSON)
    <prefix>{incident}:containments   hash  scope -> switch (JSON)
    <prefix>{incident}:version        counter, incremented in the same transaction as a change

The `{incident}` hash tag puts the three in one Redis Cluster slot (one transaction).

Replicas poll the version (one GET) a few times a second and reload both hashes when it
moved; a change is confirmed only once Redis acknowledged the transaction.
"""

from __future__ import annotations

import orjson
from redis.exceptions import RedisError

from vigie.guard.connection import redis_client
from vigie.incident.model import Containment, Revocation
from vigie.incident.stores import Entries, StoreUnavailable, decode_entries

_FAILURES = (RedisError, OSError, TimeoutError)


class RedisIncidentStore:
    backend = "redis"
    persistent = True

    def __init__(self, url: str, *, prefix: str = "vigie:", timeout: float = 0.5) -> None:
        self.redis = redis_client(url, timeout=timeout, max_connections=4)
        self.revocations_key = f"{prefix}{{incident}}:revocations"
        self.containments_key = f"{prefix}{{incident}}:containments"
        self.version_key = f"{prefix}{{incident}}:version"

    async def version(self) -> str:
        try:
            value = await self.redis.get(self.version_key)
        except _FAILURES as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return "0" if value is None else str(int(value))

    async def load(self) -> Entries:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(self.revocations_key)
                pipe.hgetall(self.containments_key)
                revocations, containments = await pipe.execute()
        except _FAILURES as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        try:
            return decode_entries({
                "revocations": [orjson.loads(v) for v in revocations.values()],
                "containments": [orjson.loads(v) for v in containments.values()]})
        except orjson.JSONDecodeError:
            raise StoreUnavailable("damaged incident state") from None

    async def put_revocation(self, revocation: Revocation) -> None:
        await self._write(self.revocations_key, revocation.id, revocation.as_json())

    async def delete_revocation(self, revocation_id: str) -> bool:
        return await self._delete(self.revocations_key, revocation_id)

    async def put_containment(self, containment: Containment) -> None:
        await self._write(self.containments_key, containment.scope, containment.as_json())

    async def delete_containment(self, scope: str) -> bool:
        return await self._delete(self.containments_key, scope)

    async def sweep(self, now: float) -> None:
        revocations, containments = await self.load()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                stale_r = [r.id for r in revocations if r.expires <= now]
                stale_c = [c.scope for c in containments if c.expires <= now]
                if not stale_r and not stale_c:
                    return
                if stale_r:
                    pipe.hdel(self.revocations_key, *stale_r)
                if stale_c:
                    pipe.hdel(self.containments_key, *stale_c)
                pipe.incr(self.version_key)
                await pipe.execute()
        except _FAILURES as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def close(self) -> None:
        await self.redis.aclose()

    async def _write(self, key: str, field: str, value: dict[str, object]) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, field, orjson.dumps(value))
                pipe.incr(self.version_key)
                await pipe.execute()
        except _FAILURES as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def _delete(self, key: str, field: str) -> bool:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(key, field)
                pipe.incr(self.version_key)
                removed, _ = await pipe.execute()
        except _FAILURES as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return bool(removed)
