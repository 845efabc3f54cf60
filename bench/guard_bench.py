"""Micro-benchmark of the guard: admit + observe per request, memory and Redis stores.

    .venv/bin/python bench/guard_bench.py [--requests 20000] [--redis redis://127.0.0.1:6379/14]
        [--stores memory,redis] [--kinds requests,record,page]

Prints the mean cost per request for sequential calls (latency) and for 64 concurrent
principals (throughput). Limits are generous and ids random, so nothing is refused.
Three kinds of request per store: `requests` (a request budget only, signals off: no
reservation, no settlement, the baseline), `record` (every budget and the signals: a
lease, the path's patient checked and added at admission, settled after with the
observation shared) and `page` (a page reserving 50 records, settled with 50 patients).
The difference from the baseline is the cost of reservation and settlement.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from dataclasses import replace
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
    search,
    unique_prefix,
)
from vigie.guard import GuardStore, MemoryStore  # noqa: E402
from vigie.telemetry.metrics import Metrics  # noqa: E402

POLICY = policy(principal=replace(limits(requests="1000000/minute", records="10000000/hour",
                                         patients="10000000/day", enumeration=True),
                                  concurrency=1000),
                client_limits=None)
# No records or patient budget, no concurrency cap, no signals: nothing to reserve or
# settle, one store call per request (the 0.1 hot path without its late facts).
REQUESTS_ONLY = policy(principal=limits(requests="1000000/minute", enumeration=False),
                       client_limits=None)
KINDS = ("requests", "record", "page")


async def one(kit, who, rng: random.Random, kind: str) -> None:  # type: ignore[no-untyped-def]
    number = rng.randrange(1, 10**9)
    if kind == "page":
        grant = search(POLICY, "last_name=Martin&page=1&page_size=50")
        patients = [str(number + i) for i in range(50)]
    else:
        grant = read(REQUESTS_ONLY if kind == "requests" else POLICY, str(number))
        patients = [str(number)]
    made = decision()
    await kit.guard.admit(who, grant, made)
    await kit.guard.observe(who, grant, answered(made, patients=patients))


async def run(store: GuardStore, requests: int, label: str, kind: str) -> None:
    metrics = Metrics(process_collectors=False)
    kit = make_guard(store, Path(tempfile.mkdtemp()), metrics=metrics)
    await kit.guard.start()
    rng = random.Random(1)
    try:
        # Many principals, a few requests each: one principal doing thousands of lookups
        # in a minute would (rightly) be quarantined by its baseline.
        users = [identity(subject=f"user-{i}") for i in range(4096)]
        for i in range(200):  # warm up
            await one(kit, users[i], rng, kind)
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(requests):
            await one(kit, users[i % len(users)], rng, kind)
        sequential = (time.perf_counter() - started) / requests
        sequential_cpu = (time.process_time() - cpu) / requests

        async def worker(offset: int, count: int) -> None:
            for i in range(count):
                await one(kit, users[(offset + i * 64) % len(users)], rng, kind)

        started, cpu = time.perf_counter(), time.process_time()
        per_worker = max(1, requests // 64)
        await asyncio.gather(*(worker(w, per_worker) for w in range(64)))
        concurrent = (time.perf_counter() - started) / (per_worker * 64)
        concurrent_cpu = (time.process_time() - cpu) / (per_worker * 64)
        await kit.guard.store.flush()
        # CPU time of this process per request too: the wall time moves with whatever
        # else the machine runs (Redis included), the CPU time much less.
        print(f"{label:8s} {kind:8s} sequential {sequential * 1e6:8.1f} us/request "
              f"(cpu {sequential_cpu * 1e6:6.1f})   64 concurrent {concurrent * 1e6:8.1f} "
              f"us/request (cpu {concurrent_cpu * 1e6:6.1f}; {1 / concurrent:,.0f} requests/s)")
    finally:
        await kit.guard.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--stores", default="memory,redis", help="memory, redis or both")
    parser.add_argument("--kinds", default=",".join(KINDS), help="requests, record, page")
    args = parser.parse_args()
    stores, kinds = args.stores.split(","), [k for k in args.kinds.split(",") if k in KINDS]
    for kind in kinds if "memory" in stores else ():
        await run(MemoryStore(), args.requests, "memory", kind)
    for kind in kinds if "redis" in stores else ():
        prefix = unique_prefix()
        try:
            await run(redis_store(prefix, url=args.redis), args.requests, "redis", kind)
        finally:
            cleanup(prefix, args.redis)


if __name__ == "__main__":
    asyncio.run(main())
