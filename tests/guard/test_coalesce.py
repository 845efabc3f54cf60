"""Concurrent admissions share one Redis round trip: each caller gets its own verdict, a
failed batch fails every caller over to the fallback, and a cancelled caller disturbs no
other. Real Redis, real store; `_batcher.batches` counts round trips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis

from support.guard import (
    REDIS_URL,
    ThrowawayRedis,
    cleanup,
    redis_store,
    require_redis,
    unique_prefix,
)
from vigie.guard.limits import Budget
from vigie.guard.redis_store import RedisStore
from vigie.guard.store import Check, Verdict, principal_tag

ONE_PER_HOUR = Budget(request_interval_ms=3_600_000.0, request_tolerance_ms=0.0)
MANY = Budget(request_interval_ms=1.0, request_tolerance_ms=1_000.0)


def check(subject: str, budget: Budget = ONE_PER_HOUR) -> list[Check]:
    return [Check(principal_tag("app", subject), budget, principal=("app", subject))]


@pytest.fixture
async def store() -> AsyncIterator[RedisStore]:
    require_redis()
    prefix = unique_prefix()
    made = redis_store(prefix, timeout=1.0)  # generous: a loaded CI machine is no failure
    await made.start()
    yield made
    await made.close()
    cleanup(prefix)


async def test_many_concurrent_admits_share_one_round_trip_and_get_their_own_verdict(
        store: RedisStore) -> None:
    spent = [f"spent-{i}" for i in range(20)]
    for subject in spent:  # one request an hour, already made
        assert (await store.admit(check(subject)))[0].refused is None
    before = store._batcher.batches
    subjects = [f"{'fresh' if i % 2 else 'spent'}-{i // 2}" for i in range(40)]
    verdicts = await asyncio.gather(*(store.admit(check(s)) for s in subjects))
    assert store._batcher.batches - before == 1
    for subject, (verdict,) in zip(subjects, verdicts, strict=True):
        if subject.startswith("spent"):
            assert verdict.refused == "requests" and verdict.retry_after_s > 3000
        else:
            assert verdict.refused is None and verdict.remaining == 0
    assert len(store.fallback) == 0  # Redis decided every one of them


async def test_a_request_with_two_checks_gets_both_replies_in_order(store: RedisStore) -> None:
    client = Check("app", ONE_PER_HOUR)  # the client aggregate, no quarantine lookup
    first, second = await asyncio.gather(store.admit([*check("a", MANY), client]),
                                         store.admit([*check("b", MANY), client]))
    assert [first[0].refused, second[0].refused] == [None, None]
    assert sorted([first[1].refused or "", second[1].refused or ""]) == ["", "requests"]


async def test_an_error_reply_fails_over_only_its_own_caller(store: RedisStore) -> None:
    # A key of the wrong type makes that one script call fail inside Redis.
    broken = redis.Redis.from_url(REDIS_URL)
    broken.hset(f"{store.prefix}{{{principal_tag('app', 'broken')}}}:req", "x", "1")
    broken.close()
    subjects = ["ok-1", "broken", "ok-2"]
    verdicts = await asyncio.gather(*(store.admit(check(s)) for s in subjects))
    assert [v[0].refused for v in verdicts] == [None, None, None]
    assert len(store.fallback) == 1  # only "broken" was decided by the fallback
    assert (await store.admit(check("ok-1")))[0].refused == "requests"  # still in sync


async def test_a_cancelled_caller_does_not_disturb_the_others(store: RedisStore) -> None:
    for cancel_after in (0, 1, 2):  # before its batch is sent, and while it is in flight
        tag = f"c{cancel_after}"
        tasks = [asyncio.create_task(store.admit(check(f"{tag}-{i}"))) for i in range(30)]
        for _ in range(cancel_after):
            await asyncio.sleep(0)
        tasks[7].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[7], asyncio.CancelledError)
        others = [r for i, r in enumerate(results) if i != 7]
        assert all(isinstance(r, list) and r[0].refused is None for r in others)
        # The connection is still in step: a second round gets the right answers.
        again = await asyncio.gather(*(store.admit(check(f"{tag}-{i}")) for i in (1, 2)))
        assert [v[0].refused for v in again] == ["requests", "requests"]
    assert len(store.fallback) == 0


async def test_a_failed_batch_fails_every_caller_over_to_the_fallback() -> None:
    server = ThrowawayRedis()
    server.start()
    made = RedisStore(server.url, timeout=0.2, failure_threshold=1000)
    await made.start()
    try:
        assert (await made.admit(check("before")))[0].refused is None
        server.kill()
        before = made._batcher.batches
        verdicts: list[list[Verdict]] = await asyncio.gather(
            *(made.admit(check(f"u{i}")) for i in range(25)))
        assert made._batcher.batches - before == 1  # one batch, failed as a whole
        assert all(v[0].refused is None and v[0].remaining == 0 for v in verdicts)
        assert len(made.fallback) == 25  # each decided by the per-replica store
        assert made.breaker._failures == 25  # every caller counted its failure
        # the fallback keeps counting: the same principals are now refused
        again = await asyncio.gather(*(made.admit(check(f"u{i}")) for i in range(3)))
        assert [v[0].refused for v in again] == ["requests"] * 3
    finally:
        await made.close()
        server.kill()


async def test_it_reconnects_after_redis_comes_back() -> None:
    server = ThrowawayRedis()
    server.start()
    made = RedisStore(server.url, timeout=0.2, failure_threshold=1000)
    await made.start()
    try:
        server.kill()
        await asyncio.gather(*(made.admit(check(f"down-{i}")) for i in range(3)))
        server.start()  # a fresh server without the scripts: NOSCRIPT, reload, replay
        # The failed batch dropped every idle connection (ours and the pool's, which
        # reloads the scripts): the first batch after the restart reconnects.
        decided_locally = len(made.fallback)
        verdicts = await asyncio.gather(*(made.admit(check(f"up-{i}")) for i in range(5)))
        assert all(v[0].refused is None for v in verdicts)
        assert len(made.fallback) == decided_locally  # decided by Redis again
        assert made.breaker.closed
    finally:
        await made.close()
        server.kill()
