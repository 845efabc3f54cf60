"""The Redis guard store: one Lua call to admit, one to settle, memory fallback.

Keys (prefix configurable, default `vigie:`), hash-tagged so that one principal's keys
share a Redis Cluster slot:

    <prefix>{<client>:<pseudonym>}:q          quarantine (JSON), TTL = the quarantine
    <prefix>{<client>:<pseudonym>}:req        request GCRA TAT, TTL = backlog + 1 s
    <prefix>{<client>:<pseudonym>}:rec        records GCRA TAT, TTL = backlog + 1 s
    <prefix>{<client>:<pseudonym>}:pat:<w>    distinct patients HLL of window w, TTL 2 windows
    <prefix>{<client>:<pseudonym>}:pats:<w>   the same patients as an exact set while < 256
    <prefix>{<client>:<pseudonym>}:lease      leases of requests in flight, TTL = a lease
    <prefix>{<client>:<pseudonym>}:obs        the last 64 observations of the signals (stream)
    <prefix>{<client>}:req|rec|pat:<w>|lease   the same for a client's aggregate
    <prefix>{<client>}:suspects              anomalous principals (client alert), TTL = window
    <prefix>{<client>}:alert                  the client's coordinated-extraction alert
    <prefix>quarantines                       index hash for the admin list, TTL = longest

Every script call takes the keys of one subject (one hash tag, hence one Cluster slot);
the index is only ever written by plain commands, which a Cluster routes on their own.
On one server (or a Sentinel master) admissions and settlements of concurrent requests
share pipelined round trips (`AdmitBatcher`); on a Redis Cluster they share one pipeline
per primary node (`ClusterScripts`).

When Redis fails (timeout, refused, error) the request is decided by a
per-replica `MemoryStore`, which also caches every quarantine this replica learnt; the
circuit breaker stops waiting on a dead Redis and probes it again later. A settlement
that cannot reach Redis counts its facts in the fallback; its lease expires on its own.
Nothing here raises to the request path. Key names, script arguments and replies are
built and read by `guard.redis_codec` (no I/O there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

from vigie.guard import lua, redis_codec
from vigie.guard.breaker import CircuitBreaker
from vigie.guard.cluster_scripts import ClusterScripts
from vigie.guard.coalesce import AdmitBatcher
from vigie.guard.connection import redis_client
from vigie.guard.limits import Budget
from vigie.guard.memory_store import MemoryStore
from vigie.guard.quarantine_index import index_field, parse_index
from vigie.guard.redis_codec import NUMKEYS, RedisCodec
from vigie.guard.reservation import Settlement
from vigie.guard.store import Check, Quarantine, Verdict, client_tag, principal_tag
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.guard.redis")

_FAILURES = (RedisError, OSError, TimeoutError)


class RedisStore:
    backend = "redis"

    def __init__(self, client: Redis | RedisCluster | str, *, prefix: str = "vigie:",
                 timeout: float = 0.1,
                 metrics: Metrics | None = None, fallback: MemoryStore | None = None,
                 failure_threshold: int = 3, reset_seconds: float = 2.0,
                 flush_interval: float = 0.05, max_pending: int = 10_000,
                 max_connections: int = 16) -> None:
        if isinstance(client, str):
            client = redis_client(client, timeout=timeout, max_connections=max_connections)
        self.redis: Any = client  # Redis or RedisCluster: the commands used are common
        self.prefix = prefix
        self.codec = RedisCodec(prefix)
        self.timeout = timeout
        self.fallback = fallback or MemoryStore()
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.max_connections = max_connections
        self._gauge = None if metrics is None else metrics.state_backend_up.labels(
            backend="redis")
        self.breaker = CircuitBreaker(failure_threshold, reset_seconds,
                                      on_change=self._health_changed)
        self._sha = {"guard": ""}
        self._facts: list[tuple[str, Budget, int, Sequence[str]]] = []
        self._pending: dict[tuple[str, str], Quarantine] = {}
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        # The hot path: concurrent admissions and settlements share a round trip.
        self._batcher: AdmitBatcher | ClusterScripts
        if isinstance(client, RedisCluster):
            self._batcher = ClusterScripts(client, numkeys=NUMKEYS, timeout=timeout,
                                           sha=lambda: self._sha["guard"],
                                           reload=self._load_scripts)
        else:
            self._batcher = AdmitBatcher(client.connection_pool, numkeys=NUMKEYS, timeout=timeout,
                                         sha=lambda: self._sha["guard"],
                                         reload=self._load_scripts)

    def _health_changed(self, up: bool) -> None:
        if self._gauge is not None:
            self._gauge.set(1 if up else 0)
        log.warning("guard state backend redis is %s", "back" if up else "unreachable")

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        try:
            async with asyncio.timeout(max(self.timeout, 1.0)):
                await self._batcher.connect()
                await self._load_scripts()
                # Warm the pool so the first burst of requests finds open connections.
                await asyncio.gather(*(self.redis.ping()
                                       for _ in range(min(8, self.max_connections))))
                before = time.time()
                seconds, micros = await self.redis.time()
                self.codec.offset = seconds + micros / 1e6 - (before + time.time()) / 2
            self.breaker.success()
            if self._gauge is not None:
                self._gauge.set(1)
        except _FAILURES:
            log.warning("guard state backend redis unreachable at start; per-replica limits")
            for _ in range(self.breaker.threshold):
                self.breaker.failure()
        self._flusher = asyncio.create_task(self._flush_loop(), name="vigie-guard-flush")

    async def close(self) -> None:
        self._closing = True
        if self._flusher is not None:
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        await self._batcher.close()
        await self.redis.aclose()

    async def _load_scripts(self) -> None:
        self._sha["guard"] = await self.redis.script_load(lua.GUARD)

    # -- hot path ----------------------------------------------------------------------
    async def admit(self, checks: Sequence[Check]) -> list[Verdict]:
        for check in checks:
            if check.principal is not None and check.principal in self._pending:
                found = self._pending[check.principal]
                return [Verdict(quarantine=found, retry_after_s=found.until - time.time())
                        for _ in checks]
        if not self.breaker.allow():
            return self.fallback.admit_now(checks)
        calls = [self.codec.admit_call(check) for check in checks]
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._batcher.run(calls)
        except _FAILURES as exc:
            log.debug("redis admit failed: %r", exc)
            self.breaker.failure()
            return self.fallback.admit_now(checks)
        self.breaker.success()
        return [self._verdict(check, reply) for check, reply in zip(checks, replies, strict=True)]

    def _verdict(self, check: Check, reply: list[Any]) -> Verdict:
        found = self.codec.verdict(check, reply)
        if found.quarantine is not None:
            self.fallback.quarantine(found.quarantine)  # the cache that outlives an outage
        return found

    async def settle(self, settlements: Sequence[Settlement]) -> list[tuple[str, str]]:
        shared = [s for s in settlements if s.shared]
        local = [s for s in settlements if not s.shared]
        observations: list[tuple[str, str]] = []
        if shared and self.breaker.allow():
            calls = [self.codec.settle_calls(s) for s in shared]
            try:
                async with asyncio.timeout(self.timeout):
                    replies = await self._batcher.run([c for cs in calls for c in cs])
                self.breaker.success()
                first = 0
                for settled, made in zip(shared, calls, strict=True):
                    if settled.observation:
                        observations += redis_codec.observations(replies[first])
                    first += len(made)
                shared = []
            except _FAILURES as exc:
                log.debug("redis settle failed: %r", exc)
                self.breaker.failure()
        # Not settled in Redis: the facts count on this replica; the lease expires there.
        for settled in shared:
            self.fallback.record(settled.tag, settled.budget, settled.records,
                                 settled.patients)
            if settled.observation:
                observations.append(("", settled.observation))
        if local:
            observations += self.fallback.settle_now(local)
        return observations

    # -- late facts --------------------------------------------------------------------
    def record(self, tag: str, budget: Budget, records: int, patients: Sequence[str]) -> None:
        if not (budget.records_interval_ms or budget.patients_limit):
            return
        if not (records or patients):
            return
        if not self.breaker.closed:
            self.fallback.record(tag, budget, records, patients)
        if len(self._facts) >= self.max_pending:
            del self._facts[: self.max_pending // 2]  # shed the oldest rather than grow
        self._facts.append((tag, budget, records, patients))
        if len(self._facts) >= 256:
            self._wake.set()

    def quarantine(self, quarantine: Quarantine) -> None:
        self.fallback.quarantine(quarantine)
        self._pending[(quarantine.client, quarantine.subject)] = quarantine
        self._wake.set()

    async def _flush_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the flusher must survive anything
                log.error("guard flush failed: %s", type(exc).__name__)

    async def flush(self) -> None:
        async with self._flush_lock:
            await self._flush()

    async def _flush(self) -> None:
        if not (self._facts or self._pending) or not self.breaker.allow():
            return
        facts, self._facts = self._facts, []
        pending = dict(self._pending)
        pipe = self.redis.pipeline(transaction=False)
        self._queue_facts(pipe, facts)
        for quarantine in pending.values():
            self.codec.queue_quarantine(pipe, quarantine)
        try:
            async with asyncio.timeout(max(self.timeout, 0.5)):
                try:
                    await pipe.execute()
                except NoScriptError:
                    await self._load_scripts()
                    pipe = self.redis.pipeline(transaction=False)
                    self._queue_facts(pipe, facts)
                    for quarantine in pending.values():
                        self.codec.queue_quarantine(pipe, quarantine)
                    await pipe.execute()
        except _FAILURES as exc:
            log.debug("redis flush failed: %r", exc)
            self.breaker.failure()
            for fact in facts:  # keep enforcing them on this replica
                self.fallback.record(*fact)
            return
        self.breaker.success()
        for key, written in pending.items():
            if self._pending.get(key) is written:
                del self._pending[key]

    def _queue_facts(self, pipe: Any, facts: list[tuple[str, Budget, int, Sequence[str]]]
                     ) -> None:
        merged: dict[tuple[str, Budget], tuple[int, set[str]]] = {}
        for tag, budget, count, refs in facts:
            records, patients = merged.get((tag, budget), (0, set()))
            patients.update(refs)
            merged[(tag, budget)] = (records + count, patients)
        for (tag, budget), (records, patients) in merged.items():
            settled = Settlement(tag, budget, "", True, records, list(patients))
            for call in self.codec.settle_calls(settled):
                pipe.evalsha(self._sha["guard"], NUMKEYS, *call)

    # -- operators ---------------------------------------------------------------------
    async def lift(self, client: str, subject: str) -> bool:
        lifted = self.fallback.lift_now(client, subject)
        lifted = self._pending.pop((client, subject), None) is not None or lifted
        try:
            # Under the flush lock: a flush in flight must not re-create the key afterwards.
            async with self._flush_lock, asyncio.timeout(max(self.timeout, 1.0)):
                pipe = self.redis.pipeline(transaction=False)
                pipe.delete(self.codec.key(principal_tag(client, subject), "q"))
                pipe.hdel(self.codec.index, index_field(client, subject))
                deleted, unindexed = await pipe.execute()
        except _FAILURES:
            log.warning("quarantine lift could not reach redis; lifted on this replica only")
            return lifted
        return lifted or bool(deleted) or bool(unindexed)

    async def suspect(self, client: str, subject: str, window_s: float, threshold: int,
                      alert_s: float) -> tuple[float, bool]:
        if self.breaker.allow():
            tag = client_tag(client)
            try:
                async with asyncio.timeout(self.timeout):
                    ttl, raised = await self.redis.eval(
                        lua.SUSPECT, 2, self.codec.key(tag, "suspects"),
                        self.codec.key(tag, "alert"),
                        subject, str(math.ceil(window_s * 1000)), str(threshold),
                        str(math.ceil(alert_s * 1000)))
                self.breaker.success()
                # Remembered here too: the fallback keeps enforcing it through an outage.
                self.fallback.suspect_now(client, subject, window_s, threshold, alert_s)
                return (time.time() + int(ttl) / 1000.0 if int(ttl) > 0 else 0.0,
                        bool(int(raised)))
            except _FAILURES as exc:
                log.debug("redis suspect failed: %r", exc)
                self.breaker.failure()
        return self.fallback.suspect_now(client, subject, window_s, threshold, alert_s)

    async def alerts(self, clients: Sequence[str]) -> dict[str, float]:
        found = self.fallback.alerts_now(clients)
        if not clients or not self.breaker.allow():
            return found
        try:
            async with asyncio.timeout(max(self.timeout, 0.5)):
                pipe = self.redis.pipeline(transaction=False)
                for client in clients:
                    pipe.pttl(self.codec.key(client_tag(client), "alert"))
                ttls = await pipe.execute()
        except _FAILURES as exc:
            log.debug("redis alerts failed: %r", exc)
            return found
        now = time.time()
        for client, ttl in zip(clients, ttls, strict=True):
            if int(ttl) > 0:
                found[client] = max(found.get(client, 0.0), now + int(ttl) / 1000.0)
        return found

    async def quarantines(self) -> list[Quarantine]:
        found = {(q.client, q.subject): q for q in self.fallback.quarantines_now()}
        if not self.breaker.allow():
            return sorted(found.values(), key=lambda q: (q.client, q.subject))
        # A flush finishing while we read the index takes its quarantines out of
        # `_pending`: those seen pending before the read count too.
        pending = dict(self._pending)
        try:
            async with asyncio.timeout(max(self.timeout, 1.0)):
                raw = await self.redis.hgetall(self.codec.index)
                offset = self.codec.offset
                expired, shared = parse_index(raw, time.time() + offset, offset)
                if expired:
                    await self.redis.hdel(self.codec.index, *expired)
            self.breaker.success()
            # Redis is the truth for what replicas learnt; pending ones are not there yet.
            found = {(q.client, q.subject): q for q in shared}
            found.update(pending)
            found.update(self._pending)
        except _FAILURES:
            self.breaker.failure()
        return sorted(found.values(), key=lambda q: (q.client, q.subject))

