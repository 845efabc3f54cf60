"""Budgets through the Guard on both stores: requests (GCRA), records, distinct patients,
client_limits, and the 429 it raises."""

from __future__ import annotations

import asyncio

import pytest

from support.guard import (
    answered,
    decision,
    identity,
    limits,
    policy,
    read,
    search,
)
from vigie.errors import Throttled
from vigie.guard import burst_of
from vigie.rates import Rate


def test_burst_is_ten_percent_at_least_one() -> None:
    assert burst_of(Rate.parse("120/minute")) == 12
    assert burst_of(Rate.parse("600/minute")) == 60
    assert burst_of(Rate.parse("5/minute")) == 1
    assert burst_of(Rate.parse("15/minute")) == 2


async def test_request_burst_then_throttle_with_headers(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(requests="60/minute", enumeration=False))
    who = identity()
    for _ in range(6):  # burst of 10% of 60
        await kit.guard.admit(who, read(pol, "1"), decision())
    refused = decision()
    with pytest.raises(Throttled) as caught:
        await kit.guard.admit(who, read(pol, "1"), refused)
    error = caught.value
    assert error.status == 429
    assert error.decision == "throttled"
    assert refused.decision == "throttled"
    assert refused.reason == "requests"
    assert error.headers["Retry-After"] == "1"
    assert '"requests";q=60;w=60' in error.headers["RateLimit-Policy"]
    assert error.headers["RateLimit"].startswith('"requests";r=0;t=')
    assert error.problem_type.endswith("abnormal-usage-detected")


async def test_other_principals_keep_their_own_budget(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(requests="10/minute", enumeration=False))
    await kit.guard.admit(identity(subject="a"), read(pol, "1"), decision())
    with pytest.raises(Throttled):
        await kit.guard.admit(identity(subject="a"), read(pol, "1"), decision())
    await kit.guard.admit(identity(subject="b"), read(pol, "1"), decision())
    await kit.guard.admit(identity(client="other", subject="a"), read(policy("other", principal=
                          limits(requests="10/minute")), "1"), decision())


async def test_request_rate_refills_at_the_emission_interval(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(requests="20/second", enumeration=False))  # T = 50 ms, B = 2
    who = identity()
    await kit.guard.admit(who, read(pol, "1"), decision())
    await kit.guard.admit(who, read(pol, "1"), decision())
    with pytest.raises(Throttled):
        await kit.guard.admit(who, read(pol, "1"), decision())
    await asyncio.sleep(0.12)
    await kit.guard.admit(who, read(pol, "1"), decision())


async def test_records_budget_counts_late_facts(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(records="100/hour", enumeration=False))
    who = identity()
    grant = search(pol, "last_name=martin")
    await kit.guard.admit(who, grant, decision())
    await kit.guard.observe(who, grant, answered(decision(), patients=[f"p{i}" for i in range(60)]))
    await kit.guard.store.flush()
    await kit.guard.admit(who, grant, decision())
    await kit.guard.observe(who, grant, answered(decision(), patients=[f"q{i}" for i in range(40)]))
    await kit.guard.store.flush()
    refused = decision()
    with pytest.raises(Throttled) as caught:
        await kit.guard.admit(who, grant, refused)
    assert refused.reason == "records"
    assert caught.value.headers["RateLimit"].startswith('"records";r=0;')
    assert int(caught.value.headers["Retry-After"]) >= 1


async def test_distinct_patients_budget_ignores_repeats(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(patients="50/day", enumeration=False))
    who = identity()
    grant = search(pol, "last_name=durand")
    first = [f"patient-{i}" for i in range(30)]
    for _ in range(3):  # the same 30 patients again and again: still 30 distinct
        await kit.guard.admit(who, grant, decision())
        await kit.guard.observe(who, grant, answered(decision(), patients=first))
    await kit.guard.store.flush()
    await kit.guard.admit(who, grant, decision())
    await kit.guard.observe(who, grant, answered(
        decision(), patients=[f"patient-{i}" for i in range(30, 50)]))
    await kit.guard.store.flush()
    refused = decision()
    with pytest.raises(Throttled):
        await kit.guard.admit(who, grant, refused)
    assert refused.reason == "patients"


async def test_client_limits_cap_the_sum_of_principals(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(enumeration=False),
                 client_limits=limits(requests="60/minute"))  # client burst 6
    for subject in ("a", "b", "c"):
        for _ in range(2):
            await kit.guard.admit(identity(subject=subject), read(pol, "1"), decision())
    refused = decision()
    with pytest.raises(Throttled) as caught:
        await kit.guard.admit(identity(subject="d"), read(pol, "1"), refused)
    assert refused.reason == "client-requests"
    assert '"client-requests";q=60;w=60' in caught.value.headers["RateLimit-Policy"]


async def test_client_limits_apply_only_the_keys_they_set(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(enumeration=False),
                 client_limits=limits(requests="100000/minute"))
    who = identity()
    grant = search(pol, "last_name=x1")
    for round_ in range(5):
        await kit.guard.admit(who, grant, decision())
        await kit.guard.observe(who, grant, answered(
            decision(), patients=[f"r{round_}-{i}" for i in range(500)]))
    await kit.guard.store.flush()
    await kit.guard.admit(who, grant, decision())  # no client records/patients budget


async def test_policy_limits_inherit_missing_keys_from_settings(backend) -> None:
    from support.guard import settings

    conf = settings(global_limits=limits(requests="10/minute", records="1000/hour",
                                         patients="1000/day", enumeration=False))
    kit = await backend.guard(conf)
    pol = policy(principal=limits(records="5/hour"))  # requests inherited: 10/minute, burst 1
    who = identity()
    await kit.guard.admit(who, read(pol, "1"), decision())
    refused = decision()
    with pytest.raises(Throttled):
        await kit.guard.admit(who, read(pol, "1"), refused)
    assert refused.reason == "requests"
