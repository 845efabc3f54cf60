"""The in-memory store and the pieces under it, with a controlled clock: GCRA exactness,
bounded memory that never forgets a penalized principal, the distinct counter, headers."""

from __future__ import annotations

import random

import pytest

from support.guard import limits
from vigie.guard import Budget, Check, MemoryStore, Quarantine, rate_limit_headers
from vigie.guard.sketch import EXACT_LIMIT, DistinctCounter


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def admits(store: MemoryStore, check: Check) -> bool:
    return store.admit_now([check])[0].refused is None


@pytest.mark.parametrize(("rate", "burst"), [("10/second", 1), ("600/minute", 60),
                                             ("7/minute", 1), ("120/minute", 12)])
def test_gcra_admits_exactly_rate_times_time_plus_burst(rate: str, burst: int) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    budget = Budget.of(limits(requests=rate))
    check = Check("c:p", budget)
    interval = budget.request_interval_ms / 1000.0
    assert sum(admits(store, check) for _ in range(burst * 3)) == burst  # the burst at once
    # then a client hammering every interval/10 for 50 intervals gets exactly one per interval
    admitted = 0
    for _ in range(505):
        clock.now += interval / 10
        admitted += admits(store, check)
    assert admitted == 50


def test_gcra_retry_after_and_remaining() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    check = Check("c:p", Budget.of(limits(requests="60/minute")))  # T = 1 s, burst 6
    first = store.admit_now([check])[0]
    assert first.remaining == 5
    for _ in range(5):
        store.admit_now([check])
    refused = store.admit_now([check])[0]
    assert refused.refused == "requests"
    assert refused.retry_after_s == pytest.approx(1.0)
    clock.now += 0.999
    assert store.admit_now([check])[0].refused == "requests"
    clock.now += 0.002
    assert store.admit_now([check])[0].refused is None


def test_penalty_divides_the_rate() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    budget = Budget.of(limits(requests="60/minute"))
    slowed = Check("c:p", budget, penalty=4.0)
    admitted = 0
    for _ in range(600):
        clock.now += 0.1
        admitted += admits(store, slowed)
    assert 15 <= admitted <= 17  # 60 s at a quarter of 1/s, plus the tolerance


def test_records_window_slides() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    budget = Budget.of(limits(records="100/hour"))
    check = Check("c:p", budget)
    store.record("c:p", budget, 100, [])
    verdict = store.admit_now([check])[0]
    assert verdict.refused == "records"
    assert verdict.retry_after_s == pytest.approx(36.0)  # one record's worth
    clock.now += 36.5
    assert admits(store, check)


def test_patient_window_resets() -> None:
    clock = Clock(1_800_000_000.0 - 10)
    store = MemoryStore(clock=clock)
    budget = Budget.of(limits(patients="3/hour"))
    check = Check("c:p", budget)
    store.record("c:p", budget, 3, ["a", "b", "c"])
    refused = store.admit_now([check])[0]
    assert refused.refused == "patients"
    assert refused.retry_after_s == pytest.approx(10.0)
    clock.now += 10
    assert admits(store, check)


def test_quarantine_expires_on_its_own() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    store.quarantine(Quarantine("c", "psn-p", clock.now + 60, "decoy"))
    check = Check("c:psn-p", Budget(), principal=("c", "psn-p"))
    assert store.admit_now([check])[0].quarantine is not None
    assert len(store.quarantines_now()) == 1
    clock.now += 61
    assert store.admit_now([check])[0].quarantine is None
    assert store.quarantines_now() == []


def test_memory_is_bounded_but_penalized_principals_are_never_evicted() -> None:
    clock = Clock()
    store = MemoryStore(max_subjects=50, clock=clock)
    budget = Budget.of(limits(requests="10/minute"))  # burst 1
    penalized = Check("c:penalized", budget)
    assert admits(store, penalized)
    assert not admits(store, penalized)
    calm = Budget.of(limits(requests="600/minute"))
    for i in range(2000):
        clock.now += 0.001
        store.admit_now([Check(f"c:user{i}", calm)])
        assert len(store) <= 50
        if i % 97 == 0:  # the penalized principal keeps knocking: still refused
            assert not admits(store, penalized)
    assert not admits(store, penalized)


def test_distinct_counter_is_exact_when_small_and_close_when_large() -> None:
    counter = DistinctCounter()
    counter.add(str(i) for i in range(EXACT_LIMIT))
    counter.add(str(i) for i in range(EXACT_LIMIT))
    assert counter.count() == EXACT_LIMIT and counter.exact
    rng = random.Random(9)
    values = [f"patient-{rng.getrandbits(64)}" for _ in range(20_000)]
    counter.add(values)
    assert not counter.exact
    assert abs(counter.count() - 20_000 - EXACT_LIMIT) / 20_256 < 0.05
    counter.add(values[:1000])  # repeats do not count
    assert abs(counter.count() - 20_256) / 20_256 < 0.05


def test_headers_use_the_structured_field_syntax() -> None:
    headers = rate_limit_headers(limits(requests="120/minute", records="2000/hour",
                                        patients="300/day"),
                                 limits(requests="20000/minute"), "requests", 0, 11.2)
    assert headers["RateLimit-Policy"] == ('"requests";q=120;w=60, "records";q=2000;w=3600, '
                                           '"patients";q=300;w=86400, '
                                           '"client-requests";q=20000;w=60')
    assert headers["RateLimit"] == '"requests";r=0;t=12'


def test_memory_has_a_hard_ceiling_even_when_everyone_is_penalized() -> None:
    clock = Clock()
    store = MemoryStore(max_subjects=50, clock=clock)
    budget = Budget.of(limits(requests="10/minute"))  # one request penalizes for 6 s
    for i in range(1000):
        store.admit_now([Check(f"c:user{i}", budget)])
        assert len(store) <= 100
