"""How far a budget overshoots while Sentinel fails over: two Vigie replicas share a real
Sentinel group; a doctor's account spends its distinct-patients budget, the master is
killed, and the account keeps asking for new patients on both replicas until the new
master serves them again. What is served beyond the budget is the figure in
docs/reliability.md ("Budgets during a Redis failover"): today up to one whole budget per
replica, from an empty fallback."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from support.guard_e2e import answer_patients, metric, policy_text
from support.harness import Harness, Keys
from support.redis_ha import SentinelGroup, sentinel_group, servers, wait_until

PATIENTS = "gp-patients"
BUDGET = 10  # distinct patients a day


@dataclass
class Stack:
    replicas: list[Harness]
    redis: SentinelGroup


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("sentinel-budget")
    policies = {"patients.yaml": policy_text(PATIENTS, enumeration=False,
                                             distinct_patients=f"{BUDGET}/day")}
    keys = Keys()
    with servers(tmp / "redis") as group, contextlib.ExitStack() as running:
        redis_group = sentinel_group(group)
        replicas = []
        for name in ("a", "b"):
            (tmp / name).mkdir()
            h = running.enter_context(Harness(tmp / name, policies, keys=keys,
                                              env={"VIGIE_REDIS": redis_group.url()}))
            h.upstream.handler = answer_patients  # the record of the patient asked for
            replicas.append(h)
        yield Stack(replicas, redis_group)


def test_a_spent_budget_overshoots_by_at_most_one_budget_per_replica_during_a_failover(
        stack: Stack) -> None:
    a, b = stack.replicas
    group = stack.redis
    token = a.token(PATIENTS, sub="dr-failover", scope="patient.read")
    patients = (str(100 + 7919 * n) for n in itertools.count())  # never a walk
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as http:
        def ask(h: Harness) -> int:
            return http.get(f"{h.base_url}/patients/{next(patients)}").status_code

        spent = [ask(a if n % 2 else b) for n in range(BUDGET + 1)]
        assert spent == [200] * BUDGET + [429]  # shared: the two replicas hold one budget
        assert group.master.client().wait(1, 2000) == 1  # the replica holds the budget

        group.master.crash()
        during: list[int] = []

        def recovered() -> bool:
            during.extend(ask(h) for h in (a, b))
            return group.current_master_port() == group.replica.port and all(
                metric(h, "vigie_state_backend_up", backend="redis") == 1 for h in (a, b))

        wait_until(recovered, timeout=30, what="the failover and both replicas back on Redis")
        after = [ask(h) for h in (a, b) for _ in range(3)]
    beyond = during.count(200)
    print(f"failover: {len(during)} requests for new patients, {beyond} served beyond the "
          f"budget of {BUDGET}")
    assert set(during) <= {200, 429}, during  # never a 5xx
    assert after == [429] * 6  # the budget in the new master still holds
    # Measured and documented, not yet the aim (one response's worth): each
    # replica's fallback starts from an empty budget, so two replicas serve up to two
    # budgets more. The test holds that bound; docs/reliability.md says what closes it.
    assert 0 < beyond <= 2 * BUDGET, f"{beyond} patients served beyond a spent budget"
