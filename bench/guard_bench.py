"""Micro-benchmark of the guard: admit + observe per request, memory and Redis stores.

    .venv/bin/python bench/guard_bench.py [--requests 20000] [--redis redis://127.0.0.1:6379/14]

Prints the mean cost per request for sequential calls (latency) and for 64 concurrent
principals (throughput). Limits are generous and ids random, so nothing is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests"),
                str(Path(__file__).resolve().parents[1] / "src")]

from support.guard import (  # noqa: E402
    answered,
    cleanup,
    decision,
    identity,
    limits,
    make_guard,
    policy,
    read,
    redis_store,
    unique_prefix,
)
from vigie.guard import GuardStore, MemoryStore  # noqa: E402
from vigie.telemetry.metrics import Metrics  # noqa: E402

POLICY = policy(principal=limits(requests="1000000/minute", records="10000000/hour",
                                 patients="10000000/day", enumeration=True),
                client_limits=None)


async def one(kit, who, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    number = str(rng.randrange(1, 10**9))
    grant = read(POLICY, number)
    made = decision()
    await kit.guard.admit(who, grant, made)
    await kit.guard.observe(who, grant, answered(made, patients=[number]))


async def run(store: GuardStore, requests: int, label: str) -> None:
    metrics = Metrics(process_collectors=False)
    kit = make_guard(store, Path(tempfile.mkdtemp()), metrics=metrics)
    await kit.guard.start()
    rng = random.Random(1)
    try:
        # Many principals, a few requests each: one principal doing thousands of lookups
        # in a minute would (rightly) be quarantined by its baseline.
        users = [identity(subject=f"user-{i}") for i in range(4096)]
        for i in range(200):  # warm up
            await one(kit, users[i], rng)
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(requests):
            await one(kit, users[i % len(users)], rng)
        sequential = (time.perf_counter() - started) / requests
        sequential_cpu = (time.process_time() - cpu) / requests

        async def worker(offset: int, count: int) -> None:
            for i in range(count):
                await one(kit, users[(offset + i * 64) % len(users)], rng)

        started, cpu = time.perf_counter(), time.process_time()
        per_worker = max(1, requests // 64)
        await asyncio.gather(*(worker(w, per_worker) for w in range(64)))
        concurrent = (time.perf_counter() - started) / (per_worker * 64)
        concurrent_cpu = (time.process_time() - cpu) / (per_worker * 64)
        await kit.guard.store.flush()
        # CPU time of this process per request too: the wall time moves with whatever
        # else the machine runs (Redis included), the CPU time much less.
        print(f"{label:8s} sequential {sequential * 1e6:8.1f} us/request "
              f"(cpu {sequential_cpu * 1e6:6.1f})   64 concurrent {concurrent * 1e6:8.1f} "
              f"us/request (cpu {concurrent_cpu * 1e6:6.1f}; {1 / concurrent:,.0f} requests/s)")
    finally:
        await kit.guard.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    await run(MemoryStore(), args.requests, "memory")
    prefix = unique_prefix()
    try:
        await run(redis_store(prefix, url=args.redis), args.requests, "redis")
    finally:
        cleanup(prefix, args.redis)


if __name__ == "__main__":
    asyncio.run(main())
