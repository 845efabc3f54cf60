"""Budgets that hold against requests in flight: reserved at admission, settled after.

Each case is what broke the budgets before reservations (issue 10), over real HTTP, on
the memory store and on a real Redis, one replica or two sharing Redis. Patient ids are
far apart and enumeration is off, so only the budgets act.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from support.guard import REDIS_URL, ThrowawayRedis
from support.guard_e2e import answer_patients, metric, subject_of, wait_for
from support.harness import AUDIENCE, ISSUER, Keys
from support.servers import free_port, serve_in_thread

FAR_APART = [1000 + 7919 * n for n in range(40)]  # never a sequential walk


def slowly(seconds: float) -> Callable[[Request], Any]:
    """The demo answers, each after `seconds`: a burst is in flight all at once."""

    async def handler(request: Request) -> Response:
        await asyncio.sleep(seconds)
        return answer_patients(request)

    return handler


def burst(requests: Sequence[tuple[str, str]], token: str) -> list[httpx.Response]:
    """Every (base url, path) sent at the same time with one token."""

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(requests))
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            headers = {"Authorization": f"Bearer {token}"}
            return list(await asyncio.gather(*(http.get(base + path, headers=headers)
                                               for base, path in requests)))

    return asyncio.run(send_all())


def signals(responses: Sequence[httpx.Response]) -> list[str]:
    return sorted({r.headers.get("vigie-decision", "") for r in responses
                   if r.status_code == 429})


def test_a_concurrent_burst_of_distinct_patients_holds_the_budget(stacks) -> None:
    s = stacks(distinct_patients="10/day", enumeration=False, concurrency="64")
    s.h.upstream.handler = slowly(0.3)
    answers = burst([(s.h.base_url, f"/patients/{pid}") for pid in FAR_APART], s.token())
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) == 10, statuses  # was 40 of 40
    assert signals(answers) == ["throttled;signal=patients"]
    assert len(s.h.upstream.requests) == 10
    # A patient already counted is still readable once the budget is spent.
    seen = next(pid for pid, r in zip(FAR_APART, answers, strict=True) if r.status_code == 200)
    assert s.get(f"/patients/{seen}").status_code == 200
    assert s.get("/patients/999").status_code == 429


def test_a_concurrent_burst_of_pages_holds_the_records_budget(stacks) -> None:
    s = stacks(records="100/hour", enumeration=False, concurrency="64")
    s.h.upstream.handler = slowly(0.3)
    pages = [(s.h.base_url, f"/patients?last_name=Martin&page={n}&page_size=50")
             for n in range(1, 21)]
    answers = burst(pages, s.token())
    # Each page reserves its maximum (50): two fit in 100, the third waits.
    assert [r.status_code for r in answers].count(200) == 2
    assert signals(answers) == ["throttled;signal=records"]
    disclosed = 20  # ten records a page; the rest of the reservation was given back
    for page in range(21, 60):
        response = s.get(f"/patients?last_name=Martin&page={page}&page_size=50")
        if response.status_code != 200:
            break
        disclosed += len(response.json()["items"])
    assert 100 <= disclosed <= 100 + 50  # the budget, overshot by at most one reservation
    assert response.headers["vigie-decision"] == "throttled;signal=records"


def test_the_concurrency_cap_refuses_what_is_over_and_frees_on_settlement(stacks) -> None:
    s = stacks(enumeration=False)  # default cap: 8 in flight per principal
    s.h.upstream.handler = slowly(0.5)
    answers = burst([(s.h.base_url, f"/patients/{pid}") for pid in FAR_APART[:12]],
                    s.token())
    assert [r.status_code for r in answers].count(200) == 8
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["vigie-decision"] == "throttled;signal=concurrency"
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["signal"] == "concurrency"
    assert '"concurrency";q=8' in refused.headers["ratelimit-policy"]
    assert refused.headers["ratelimit"].startswith('"concurrency";r=0;t=')
    # Settled leases are released at once: the principal is not stuck at the cap.
    s.h.upstream.handler = answer_patients
    assert s.get("/patients/4242").status_code == 200
    assert s.get("/patients/4343", sub="dr-watson").status_code == 200


def test_client_concurrency_caps_the_application(stacks) -> None:
    s = stacks(enumeration=False, concurrency="64", client_limits={"concurrency": "3"})
    s.h.upstream.handler = slowly(0.5)
    tokens = [s.token(f"user-{n}") for n in range(6)]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            return list(await asyncio.gather(*(
                http.get(f"{s.h.base_url}/patients/{FAR_APART[n]}",
                         headers={"Authorization": f"Bearer {token}"})
                for n, token in enumerate(tokens))))

    answers = asyncio.run(send_all())
    assert [r.status_code for r in answers].count(200) == 3
    assert signals(answers) == ["throttled;signal=client-concurrency"]


def test_the_requests_burst_is_configurable(stacks) -> None:
    s = stacks(requests="{rate: 600/minute, burst: 3}", enumeration=False)
    statuses = [s.get(f"/patients/{pid}").status_code for pid in FAR_APART[:5]]
    assert statuses == [200, 200, 200, 429, 429]  # burst 3, not 60


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_two_replicas_alternating_hold_one_patient_budget(stacks) -> None:
    a = stacks(name="a", distinct_patients="10/day", enumeration=False)
    b = stacks(name="b", distinct_patients="10/day", enumeration=False)
    statuses = [(a if n % 2 else b).get(f"/patients/{pid}").status_code
                for n, pid in enumerate(FAR_APART[:20])]
    assert statuses == [200] * 10 + [429] * 10  # was 20 of 20 inside the flush window


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_two_replicas_under_a_concurrent_burst_hold_one_patient_budget(stacks) -> None:
    a = stacks(name="a", distinct_patients="10/day", enumeration=False, concurrency="64")
    b = stacks(name="b", distinct_patients="10/day", enumeration=False, concurrency="64")
    a.h.upstream.handler = b.h.upstream.handler = slowly(0.3)
    targets = [((a if n % 2 else b).h.base_url, f"/patients/{pid}")
               for n, pid in enumerate(FAR_APART)]
    answers = burst(targets, a.token())
    assert [r.status_code for r in answers].count(200) == 10  # was 40 of 40
    assert len(a.h.upstream.requests) + len(b.h.upstream.requests) == 10


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_redis_lost_between_reservation_and_settlement(stacks) -> None:
    server = ThrowawayRedis()
    server.start()
    try:
        s = stacks(redis_url=server.url, records="100/hour", enumeration=False)
        s.h.upstream.handler = slowly(0.6)
        connection = redis.Redis.from_url(server.url)
        lease_key = f"vigie:{{{s.client}:{subject_of(s.h, s.client, 'dr-house')}}}:lease"

        async def page_while_redis_is_paused() -> httpx.Response:
            async with httpx.AsyncClient(timeout=30) as http:
                pending = asyncio.ensure_future(http.get(
                    f"{s.h.base_url}/patients?last_name=Martin&page=1&page_size=50",
                    headers={"Authorization": f"Bearer {s.token()}"}))
                while not s.h.upstream.requests:  # reserved in Redis, now upstream
                    await asyncio.sleep(0.01)
                connection.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
                return await pending

        answer = asyncio.run(page_while_redis_is_paused())
        assert answer.status_code == 200  # settled on this replica instead, never a 5xx
        assert wait_for(lambda: connection.zcard(lease_key) == 1, timeout=3)  # left behind
        # The stale lease holds 50 records; pages are admitted while 10 more fit.
        statuses = []
        s.h.upstream.handler = answer_patients
        for page in range(2, 12):
            statuses.append(s.get(f"/patients?last_name=Martin&page={page}").status_code)
        assert 200 in statuses and statuses[-1] == 429
        # Never stuck: the lease expires and the budget frees without any settlement.
        assert wait_for(lambda: s.get("/patients?last_name=Martin&page=99").status_code
                        == 200, timeout=15, step=0.5)

        def nothing_held() -> bool:
            # Admissions that timed out during the pause may still have run in Redis
            # afterwards: their leases, settled by nobody, expire like the first one.
            now_ms = int(connection.time()[0]) * 1000
            return int(connection.zcount(lease_key, now_ms, "+inf")) == 0

        assert wait_for(nothing_held, timeout=15, step=0.5)
        records_tat = float(connection.get(lease_key.replace(":lease", ":rec")) or 0)
        assert records_tat >= 0
        connection.close()
    finally:
        server.kill()


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_a_replica_killed_while_holding_leases_frees_them_on_expiry(stacks, keys) -> None:
    b = stacks(name="b", enumeration=False)  # default cap: 8 in flight per principal
    released = threading.Event()

    async def never_in_time(request: Request) -> Response:
        while not released.is_set():
            await asyncio.sleep(0.02)
        return answer_patients(request)

    upstream = Starlette(routes=[Route("/{path:path}", never_in_time)])
    seen: list[str] = []
    upstream.add_middleware(_Recorder, seen=seen)
    with serve_in_thread(upstream) as upstream_url, \
            ThreadPoolExecutor(max_workers=8) as pool:
        replica = _vigie_process(b, upstream_url, keys)
        try:
            token = b.token()
            for pid in FAR_APART[:8]:
                pool.submit(_quietly, f"{replica.url}/patients/{pid}", token)
            assert wait_for(lambda: len(seen) == 8, timeout=10)  # eight leases held
            assert b.get("/patients/77").headers.get("vigie-decision") == \
                "throttled;signal=concurrency"
            replica.process.kill()  # dies holding them: nobody will settle
            replica.process.wait(timeout=10)
            assert b.get("/patients/78").status_code == 429  # still held...
            # ...until the leases expire (upstream timeout + margin), never longer.
            assert wait_for(lambda: b.get("/patients/79").status_code == 200, timeout=20,
                            step=0.5)
        finally:
            released.set()
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait(timeout=10)


class _Recorder:
    """ASGI middleware: note each request's path as it arrives."""

    def __init__(self, app: Any, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


def _quietly(url: str, token: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@dataclass
class _Replica:
    process: subprocess.Popen[bytes]
    url: str


def _vigie_process(peer: Any, upstream_url: str, keys: Keys) -> _Replica:
    """`vigie serve` sharing `peer`'s policies, pseudonym key and Redis."""
    folder = peer.h.tmp / "replica"
    folder.mkdir()
    (folder / "jwks.json").write_bytes(orjson.dumps(keys.jwks()))
    proxy_port, admin_port = free_port(), free_port()
    (folder / "vigie.yaml").write_text(
        f"upstream: {upstream_url}\n"
        f"listen: {{host: 127.0.0.1, port: {proxy_port}}}\n"
        f"admin: {{host: 127.0.0.1, port: {admin_port}}}\n"
        f"policies: {peer.h.policy_dir}\n"
        f"pseudonym_key_file: {peer.h.tmp / 'pseudonym.key'}\n"
        f"redis: {REDIS_URL}\n"
        "upstream_timeout_seconds: 5\n"
        f"audit: {{path: {folder / 'audit.jsonl'}}}\n"
        f"guard: {{events_path: {folder / 'events.jsonl'}}}\n"
        "issuers:\n"
        f"  - issuer: {ISSUER}\n    audiences: [{AUDIENCE}]\n"
        f"    jwks_file: {folder / 'jwks.json'}\n    algorithms: [RS256]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIE_", "OTEL_"))}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "vigie", "serve", "--config", str(folder / "vigie.yaml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def ready() -> bool:
        assert process.poll() is None, "vigie did not start"
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"http://127.0.0.1:{admin_port}/readyz",
                             timeout=1).status_code == 200
        return False

    assert wait_for(ready, timeout=30, step=0.1)
    return _Replica(process, f"http://127.0.0.1:{proxy_port}")


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_signals_are_shared_by_replicas_behind_a_round_robin(stacks) -> None:
    replicas = [stacks(name=name) for name in ("a", "b", "c")]
    misses = [512_340 + 7_919 * n for n in range(20)]  # unknown ids: 404s, far apart
    statuses = [replicas[n % 3].get(f"/patients/{pid}").status_code
                for n, pid in enumerate(misses)]
    assert statuses == [404] * 20
    # Twenty misses in all, about seven on each replica: detected as if on one.
    for replica in replicas:
        refused = replica.get("/patients/42")
        assert refused.headers["vigie-decision"] == "quarantined;signal=not_found_ratio"
    counted = [metric(r.h, "vigie_enumeration_detections_total", client=r.client,
                      signal="not_found_ratio") or 0 for r in replicas]
    assert sum(counted) == 1, counted  # acted on by the replica that served the 20th only
