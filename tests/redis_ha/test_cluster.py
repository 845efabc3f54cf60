"""Redis Cluster end to end: three primaries, each with a replica, on loopback, shared by
two Vigie instances. Budgets and quarantines hold across the instances, the admin list
reads the shared quarantines, and losing a primary during traffic costs no 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
from starlette.requests import Request
from starlette.responses import Response

from support.guard_e2e import (
    ADMIN_TOKEN,
    admin,
    answer_patients,
    guard_config,
    metric,
    policy_text,
    subject_of,
    wait_for,
)
from support.harness import Harness, Keys
from support.redis_ha import Cluster, cluster, servers, wait_until
from vigie.guard.limits import Budget
from vigie.guard.redis_store import RedisStore
from vigie.guard.store import Check, principal_tag

PATIENTS, QUARANTINE, BUSY, TIGHT = "gp-patients", "gp-decoys", "gp-busy", "gp-tight"
FAR_APART = [1000 + 7919 * n for n in range(40)]  # never a sequential walk
SLOW_FROM = 1000  # patient ids answered after SLOW_S: a burst is in flight all at once
SLOW_S = 0.3


async def answer(request: Request) -> Response:
    pid = request.url.path.rsplit("/", 1)[1]
    if pid.isdigit() and int(pid) >= SLOW_FROM:
        await asyncio.sleep(SLOW_S)
    return answer_patients(request)


@dataclass
class Stack:
    a: Harness
    b: Harness
    redis: Cluster

    def token(self, client: str, sub: str, scope: str = "patient.read") -> str:
        return self.a.token(client, sub=sub, scope=scope)  # both instances trust the keys


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("cluster")
    policies = {
        "patients.yaml": policy_text(PATIENTS, enumeration=False, distinct_patients="10/day",
                                     concurrency="64",
                                     client_limits={"distinct_patients": "1000/day"}),
        "decoys.yaml": policy_text(QUARANTINE),
        "busy.yaml": policy_text(BUSY, enumeration=False),
        "tight.yaml": policy_text(TIGHT, enumeration=False, requests="120/day"),  # burst 12
    }
    keys = Keys()
    with servers(tmp / "redis") as group, contextlib.ExitStack() as running:
        nodes = cluster(group, size=3, replicas=1, node_timeout_ms=1000)
        instances = []
        for name in ("a", "b"):
            (tmp / name).mkdir()
            config, env = guard_config(tmp / name, nodes.url())
            h = running.enter_context(Harness(tmp / name, policies, keys=keys,
                                              config=config, env=env))
            h.upstream.handler = answer
            instances.append(h)
        yield Stack(instances[0], instances[1], nodes)


def burst(targets: list[str], token: str) -> list[int]:
    async def send_all() -> list[int]:
        limits = httpx.Limits(max_connections=len(targets))
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            headers = {"Authorization": f"Bearer {token}"}
            answers = await asyncio.gather(*(http.get(url, headers=headers)
                                             for url in targets))
            return [r.status_code for r in answers]

    return asyncio.run(send_all())


def test_two_instances_hold_one_patient_budget_under_a_concurrent_burst(stack: Stack) -> None:
    a, b = stack.a, stack.b
    urls = [f"{(a if n % 2 else b).base_url}/patients/{pid}" for n, pid in enumerate(FAR_APART)]
    statuses = burst(urls, stack.token(PATIENTS, "dr-burst"))
    assert statuses.count(200) == 10, statuses  # distinct patients 10/day, 40 at once
    assert set(statuses) == {200, 429}
    forwarded = [r for h in (a, b) for r in h.upstream.requests
                 if r.path.startswith("/patients/") and int(r.path.rsplit("/", 1)[1]) >= 1000]
    assert len(forwarded) == 10
    # The budget lives in the cluster, on the primary of the principal's slot.
    subject = subject_of(a, PATIENTS, "dr-burst")
    key = f"vigie:{{{principal_tag(PATIENTS, subject)}}}:pats:"
    primary = stack.redis.primary_of(key)
    assert primary.client().keys(f"{key}*"), "the patients were not counted in the cluster"


def test_quarantines_are_shared_and_listed_by_either_instance(stack: Stack) -> None:
    a, b = stack.a, stack.b
    mallory = stack.token(QUARANTINE, "dr-mallory")
    refused = a.get("/patients/990001", mallory)
    assert refused.headers["vigie-decision"] == "quarantined;signal=decoy"
    assert wait_for(lambda: b.get("/patients/42", mallory).status_code == 429)
    assert b.get("/patients/42", stack.token(QUARANTINE, "dr-watson")).status_code == 200
    subject = subject_of(b, QUARANTINE, "dr-mallory")

    def listed() -> list[dict[str, object]]:
        return [q for q in admin(b, "GET", "/quarantine").json()
                if q["client"] == QUARANTINE]

    assert wait_for(lambda: [q["subject"] for q in listed()] == [subject])
    assert admin(b, "DELETE", f"/quarantine/{QUARANTINE}/{subject}").status_code == 204
    assert a.get("/patients/42", mallory).status_code == 200  # lifted everywhere
    assert listed() == []


def test_a_containment_set_on_one_instance_reaches_the_other(stack: Stack) -> None:
    a, b = stack.a, stack.b
    token = stack.token(BUSY, "dr-contained")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Vigie-Operator": "soc-alice"}
    path = f"/incident/containments/{BUSY}"
    answer = httpx.put(f"{a.admin_url}{path}", headers=headers, timeout=10,
                       json={"mode": "deny", "reason": "INC-7 drill", "for": "1h"})
    assert answer.status_code == 201, answer.text  # confirmed by the cluster
    assert wait_for(lambda: b.get("/patients/5", token).status_code == 403)
    assert httpx.delete(f"{b.admin_url}{path}", headers=headers, timeout=10).status_code == 204
    assert wait_for(lambda: a.get("/patients/5", token).status_code == 200)


def test_losing_a_primary_during_traffic_costs_no_5xx_and_keeps_budgets(stack: Stack) -> None:
    a, b, nodes = stack.a, stack.b, stack.redis
    tight = stack.token(TIGHT, "dr-second")
    assert {(a if n % 2 else b).get("/patients/2", tight).status_code
            for n in range(10)} == {200}
    tag = principal_tag(TIGHT, subject_of(a, TIGHT, "dr-second"))
    primary = nodes.primary_of(f"vigie:{{{tag}}}:req")
    replica = nodes.replica_of(primary)
    assert primary.client().wait(1, 2000) == 1  # the replica holds those ten requests

    statuses: list[int] = []
    stop = threading.Event()
    busy = stack.token(BUSY, "dr-busy")

    def traffic() -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not stop.is_set():
                n += 1
                url = f"{(a if n % 2 else b).base_url}/patients/3"
                statuses.append(client.get(url, headers={
                    "Authorization": f"Bearer {busy}"}).status_code)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        wait_until(lambda: len(statuses) >= 20, what="traffic before the crash")
        primary.crash()
        during = len(statuses)
        wait_until(lambda: replica.client().info("replication")["role"] == "master",
                   timeout=20, what="the cluster to promote the replica")
        wait_until(lambda: all(n.client().cluster("info")["cluster_state"] == "ok"
                               for n in nodes.nodes if n is not primary),
                   what="the cluster to cover every slot again")
        for h in (a, b):
            wait_until(lambda h=h: metric(h, "vigie_state_backend_up", backend="redis") == 1,
                       timeout=20, what="the guard to reach the cluster again")
        wait_until(lambda: len(statuses) >= during + 20, what="traffic after the failover")
    finally:
        stop.set()
        worker.join(15)
    assert statuses and all(status == 200 for status in statuses), sorted(set(statuses))
    # The budget spent before the crash survived it: two requests left of twelve, then 429
    # (one more at most: a request decided by the fallback while the slot map refreshed).
    after = [a.get("/patients/2", tight).status_code for _ in range(4)]
    assert after in ([200, 200, 429, 429], [200, 200, 200, 429]), after
    assert replica.client().keys(f"vigie:{{{tag}}}:req")


def test_concurrent_admissions_share_batches_across_nodes_and_survive_a_script_flush(
        stack: Stack) -> None:
    budget = Budget(request_interval_ms=60_000.0, request_tolerance_ms=60_000.0)  # burst 2
    checks = [Check(principal_tag("gp-spread", f"psn-{n}"), budget,
                    principal=("gp-spread", f"psn-{n}")) for n in range(30)]

    async def scenario() -> None:
        store = RedisStore(stack.redis.url(), timeout=1.0)
        await store.start()
        try:
            nodes = {store.redis.get_node_from_key(f"vigie:{{{c.tag}}}:req").name
                     for c in checks}
            assert len(nodes) == 3  # the principals spread over every primary
            verdicts = await asyncio.gather(*(store.admit([c]) for c in checks))
            assert all(v.shared and v.remaining == 1 for [v] in verdicts), verdicts
            assert store._batcher.batches < len(checks)  # coalesced, not one per request
            for node in stack.redis.nodes:
                with contextlib.suppress(redis.RedisError):
                    node.client().script_flush()
            verdicts = await asyncio.gather(*(store.admit([c]) for c in checks))
            assert all(v.shared and v.remaining == 0 for [v] in verdicts), verdicts
        finally:
            await store.close()

    asyncio.run(scenario())
