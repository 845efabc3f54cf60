"""Redis Sentinel end to end: a real master, replica and three sentinels on loopback; the
guard's budgets live in the master, and losing it during traffic costs no 5xx."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from support.guard_e2e import metric, policy_text
from support.harness import Harness, Keys
from support.redis_ha import SentinelGroup, sentinel_group, servers, wait_until

BUSY, TIGHT = "gp-busy", "gp-tight"


@dataclass
class Stack:
    h: Harness
    redis: SentinelGroup




@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("sentinel")
    with servers(tmp / "redis") as group:
        redis_group = sentinel_group(group)
        policies = {"busy.yaml": policy_text(BUSY, enumeration=False),
                    "tight.yaml": policy_text(TIGHT, enumeration=False,
                                              requests="120/day")}  # a burst of 12
        with Harness(tmp, policies, keys=Keys(),
                     env={"VIGIE_REDIS": redis_group.url()}) as h:
            h.upstream.reply(json={"id": "1", "last_name": "Quennec"})
            yield Stack(h, redis_group)


def test_budgets_live_in_the_sentinel_master_and_reach_the_replica(stack: Stack) -> None:
    h, group = stack.h, stack.redis
    token = h.token(TIGHT, sub="dr-first", scope="patient.read")
    statuses = [h.get("/patients/1", token).status_code for _ in range(13)]
    assert statuses == [200] * 12 + [429]
    assert metric(h, "vigie_state_backend_up", backend="redis") == 1
    budget_keys = set(group.master.client().keys(f"vigie:{{{TIGHT}:*:req"))
    assert len(budget_keys) == 1, "the request budget was not kept in the master"
    assert group.master.client().wait(1, 2000) == 1
    assert set(group.replica.client().keys(f"vigie:{{{TIGHT}:*:req")) == budget_keys


def test_losing_the_master_during_traffic_costs_no_5xx_and_keeps_budgets(
        stack: Stack) -> None:
    h, group = stack.h, stack.redis
    tight = h.token(TIGHT, sub="dr-second", scope="patient.read")
    assert {h.get("/patients/2", tight).status_code for _ in range(10)} == {200}
    assert group.master.client().wait(1, 2000) == 1  # the replica holds those two requests

    statuses: list[int] = []
    stop = threading.Event()
    busy = h.token(BUSY, sub="dr-busy", scope="patient.read")

    def traffic() -> None:
        with httpx.Client(base_url=h.base_url, timeout=10) as client:
            while not stop.is_set():
                statuses.append(client.get("/patients/3", headers={
                    "Authorization": f"Bearer {busy}"}).status_code)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        wait_until(lambda: len(statuses) >= 20, what="traffic before the crash")
        group.master.crash()
        during = len(statuses)
        wait_until(lambda: group.current_master_port() == group.replica.port, timeout=30,
                   what="the sentinels to promote the replica")
        wait_until(lambda: metric(h, "vigie_state_backend_up", backend="redis") == 1,
                   timeout=30, what="the guard to reach the new master")
        wait_until(lambda: group.replica.client().keys(f"vigie:{{{BUSY}:*"), timeout=30,
                   what="a budget written to the new master")
        wait_until(lambda: len(statuses) >= during + 20, what="traffic after the failover")
    finally:
        stop.set()
        worker.join(15)
    assert statuses and all(status == 200 for status in statuses), sorted(set(statuses))
    # The budget spent before the crash survived it: two requests left of twelve, then 429.
    assert [h.get("/patients/2", tight).status_code for _ in range(3)] == [200, 200, 429]
