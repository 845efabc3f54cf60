"""What only the Redis store has: state shared by replicas, key layout and TTLs, script
reloading, and surviving a Redis that dies and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from support.guard import (
    REDIS_URL,
    ThrowawayRedis,
    answered,
    cleanup,
    decision,
    identity,
    limits,
    make_guard,
    policy,
    read,
    redis_store,
    require_redis,
    search,
    settings,
    unique_prefix,
)
from vigie.errors import Throttled
from vigie.telemetry.metrics import Metrics


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    require_redis()
    made = unique_prefix()
    yield made
    cleanup(made)


async def admitted(kit_guard, who, grant) -> bool:  # type: ignore[no-untyped-def]
    try:
        await kit_guard.admit(who, grant, decision())
    except Throttled:
        return False
    return True


async def test_two_replicas_share_one_request_budget(prefix: str, tmp_path: Path) -> None:
    metrics_a, metrics_b = Metrics(process_collectors=False), Metrics(process_collectors=False)
    # A generous call budget: this test is about sharing, not about a loaded CI machine
    # pushing calls past 100 ms (those are decided by the per-replica fallback, by design).
    a = make_guard(redis_store(prefix, metrics_a, timeout=1.0), tmp_path, metrics=metrics_a)
    b = make_guard(redis_store(prefix, metrics_b, timeout=1.0), tmp_path, metrics=metrics_b)
    await a.guard.start()
    await b.guard.start()
    try:
        pol = policy(principal=limits(requests="120/hour", enumeration=False))  # burst 12
        who = identity()
        grant = read(pol, "1")
        results = await asyncio.gather(*[
            admitted((a if i % 2 else b).guard, who, grant) for i in range(60)])
        assert 12 <= sum(results) <= 13  # exact up to one emission interval (30 s)
        # records disclosed through one replica are counted by the other
        rec_pol = policy(principal=limits(records="50/hour", enumeration=False))
        other = identity(subject="dr-watson")
        await a.guard.observe(other, search(rec_pol, "last_name=x"), answered(
            decision(), patients=[str(i) for i in range(50)]))
        await a.guard.store.flush()
        with pytest.raises(Throttled):
            await b.guard.admit(other, search(rec_pol, "last_name=x"), decision())
    finally:
        await a.guard.close()
        await b.guard.close()


async def test_a_quarantine_learnt_by_one_replica_holds_on_the_other(prefix: str,
                                                                   tmp_path: Path) -> None:
    conf = settings(decoys=("990001",))
    a = make_guard(redis_store(prefix), tmp_path, conf=conf)
    b = make_guard(redis_store(prefix), tmp_path, conf=conf)
    await a.guard.start()
    await b.guard.start()
    try:
        pol = policy(principal=limits(enumeration=False))
        with pytest.raises(Throttled):
            await a.guard.admit(identity(), read(pol, "990001"), decision())
        await a.guard.store.flush()
        with pytest.raises(Throttled) as caught:
            await b.guard.admit(identity(), read(pol, "7"), decision())
        assert caught.value.decision == "quarantined"
        assert [q["reason"] for q in await b.guard.quarantines()] == ["decoy"]
        assert await b.guard.lift("gp-frontdesk", b.pseudonym()) is True
        await a.guard.admit(identity(), read(pol, "7"), decision())
    finally:
        await a.guard.close()
        await b.guard.close()


async def test_keys_are_hash_tagged_by_principal_and_all_expire(prefix: str,
                                                                tmp_path: Path) -> None:
    kit = make_guard(redis_store(prefix), tmp_path, conf=settings(decoys=("990001",)))
    await kit.guard.start()
    try:
        pol = policy(principal=limits(requests="600/minute", records="100/hour",
                                      patients="100/day"),
                     client_limits=limits(requests="6000/minute", patients="1000/day"))
        who = identity()
        grant = search(pol, "last_name=martin")
        await kit.guard.admit(who, grant, decision())
        await kit.guard.observe(who, grant, answered(
            decision(), patients=["patient-secret-77", "patient-secret-78"]))
        with pytest.raises(Throttled):
            await kit.guard.admit(identity(subject="x"), read(pol, "990001"), decision())
        await kit.guard.store.flush()
    finally:
        await kit.guard.close()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{prefix}*"))
        tag = f"{{gp-frontdesk:{kit.pseudonym()}}}"
        assert f"{prefix}{tag}:req" in keys
        assert f"{prefix}{tag}:rec" in keys
        assert any(k.startswith(f"{prefix}{tag}:pat:") for k in keys)
        assert f"{prefix}{{gp-frontdesk}}:req" in keys  # the client aggregate
        assert f"{prefix}{{gp-frontdesk:{kit.pseudonym(subject='x')}}}:q" in keys
        for key in keys:
            assert client.pttl(key) > 0, key
        values = b" ".join(client.dump(k) or b"" for k in keys)
        assert b"dr-house" not in values
        assert b"patient-secret" not in values  # patients are counted by keyed digest
    finally:
        client.close()


async def test_scripts_are_reloaded_after_a_script_flush(prefix: str, tmp_path: Path) -> None:
    kit = make_guard(redis_store(prefix), tmp_path)
    await kit.guard.start()
    try:
        pol = policy(principal=limits(records="100/hour"))
        who = identity()
        client = redis.Redis.from_url(REDIS_URL)
        client.script_flush()
        client.close()
        await kit.guard.admit(who, read(pol, "1"), decision())
        await kit.guard.observe(who, read(pol, "1"), answered(decision(), patients=["1"]))
        await kit.guard.store.flush()
        assert kit.guard.store.breaker.closed  # type: ignore[attr-defined]
    finally:
        await kit.guard.close()


async def test_redis_dies_fallback_limits_hold_and_it_recovers(tmp_path: Path) -> None:
    server = ThrowawayRedis()
    server.start()
    metrics = Metrics(process_collectors=False)
    store = redis_store("vigie-failover:", metrics, url=server.url, failure_threshold=2,
                        reset_seconds=0.3)
    kit = make_guard(store, tmp_path, conf=settings(decoys=("990001",)), metrics=metrics)
    await kit.guard.start()
    up = {"backend": "redis"}
    try:
        assert kit.sample("vigie_state_backend_up", **up) == 1
        pol = policy(principal=limits(requests="60/minute", enumeration=False))  # burst 6
        suspect, who = identity(subject="suspect"), identity()
        with pytest.raises(Throttled):
            await kit.guard.admit(suspect, read(pol, "990001"), decision())
        await kit.guard.store.flush()
        await kit.guard.admit(who, read(pol, "1"), decision())

        server.kill()
        outcomes = []
        for _ in range(8):  # never an exception other than a 429 from the fallback
            outcomes.append(await admitted(kit.guard, who, read(pol, "1")))
        assert outcomes[:6] == [True] * 6 and outcomes[6:] == [False, False]
        assert kit.sample("vigie_state_backend_up", **up) == 0
        with pytest.raises(Throttled) as caught:  # the cached quarantine is still enforced
            await kit.guard.admit(suspect, read(pol, "2"), decision())
        assert caught.value.decision == "quarantined"
        await kit.guard.observe(who, read(pol, "1"), answered(decision(), patients=["1"]))
        assert [q["reason"] for q in await kit.guard.quarantines()] == ["decoy"]

        server.start()
        await asyncio.sleep(0.35)
        await admitted(kit.guard, identity(subject="probe"), read(pol, "1"))
        assert kit.sample("vigie_state_backend_up", **up) == 1
        assert await admitted(kit.guard, identity(subject="fresh"), read(pol, "1"))
    finally:
        await kit.guard.close()
        server.kill()


async def test_redis_unreachable_from_the_start_never_raises(tmp_path: Path) -> None:
    server = ThrowawayRedis()  # never started: nothing listens on its port
    metrics = Metrics(process_collectors=False)
    kit = make_guard(redis_store("vigie-down:", metrics, url=server.url), tmp_path,
                     metrics=metrics)
    await kit.guard.start()
    try:
        assert kit.sample("vigie_state_backend_up", backend="redis") == 0
        pol = policy(principal=limits(requests="10/minute"))
        await kit.guard.admit(identity(), read(pol, "1"), decision())
        with pytest.raises(Throttled):
            await kit.guard.admit(identity(), read(pol, "1"), decision())
        await kit.guard.observe(identity(), read(pol, "1"), answered(decision(), patients=["1"]))
        assert await kit.guard.quarantines() == []
        assert await kit.guard.lift("gp-frontdesk", "psn-x") is False
    finally:
        await kit.guard.close()


async def test_a_slow_redis_costs_at_most_the_timeout(tmp_path: Path) -> None:
    import time

    server = ThrowawayRedis()
    server.start()
    metrics = Metrics(process_collectors=False)
    kit = make_guard(redis_store("vigie-slow:", metrics, url=server.url), tmp_path,
                     metrics=metrics)
    await kit.guard.start()
    try:
        pol = policy(principal=limits(requests="600/minute"))
        await kit.guard.admit(identity(), read(pol, "1"), decision())
        pauser = redis.Redis.from_url(server.url)
        pauser.execute_command("CLIENT", "PAUSE", "1500", "ALL")  # every command now hangs
        pauser.close()
        started = time.perf_counter()
        await kit.guard.admit(identity(), read(pol, "2"), decision())
        assert time.perf_counter() - started < 0.3
    finally:
        await kit.guard.close()
        server.kill()


def test_breaker_opens_probes_once_and_closes() -> None:
    from vigie.guard.breaker import BreakerState, CircuitBreaker

    now = [0.0]
    changes: list[bool] = []
    breaker = CircuitBreaker(threshold=3, reset_seconds=2.0, clock=lambda: now[0],
                             on_change=changes.append)
    breaker.failure()
    breaker.success()  # a success resets the count
    breaker.failure()
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and changes == [False]
    assert not breaker.allow()
    now[0] = 2.0
    assert breaker.allow()  # the one probe
    assert not breaker.allow()
    breaker.failure()  # probe failed: open again
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    now[0] = 4.5
    assert breaker.allow()
    breaker.success()
    assert breaker.closed and changes == [False, False, True]
