"""Reservations in the memory store, as properties: whatever the interleaving of
admissions and settlements, a budget is overshot by at most one reservation, leases
never outlive their settlement or their expiry, and observations survive encoding."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vigie.guard import Budget, Check, MemoryStore, Reservation, Settlement
from vigie.guard.observation import Observation, decode, encode
from vigie.rates import Limits, Rate

PATIENTS = Budget.of(Limits(distinct_patients=Rate.parse("10/day"), concurrency=64))
RECORDS = Budget.of(Limits(records=Rate.parse("100/hour"), concurrency=64))
PAGE = 50

# One step: admit a lookup of patient p, admit a page, or settle the k-th request in flight
# with what it disclosed.
steps = st.lists(st.one_of(
    st.tuples(st.just("lookup"), st.integers(0, 40)),
    st.tuples(st.just("page"), st.integers(0, PAGE)),
    st.tuples(st.just("settle"), st.integers(0, 63))), max_size=80)


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def run(budget: Budget, plan: list[tuple[str, int]], store: MemoryStore, *,
        settle_all: bool = True) -> tuple[set[str], int]:
    """Disclosed (distinct patients, records) once what is still in flight is settled
    with everything it could disclose (unless `settle_all` is False: a replica died)."""
    in_flight: list[tuple[str, int, list[str]]] = []  # (lease, records it will disclose, ...)
    patients: set[str] = set()
    records = 0
    for n, (kind, value) in enumerate(plan):
        if kind == "settle":
            if not in_flight:
                continue
            lease, count, refs = in_flight.pop(value % len(in_flight))
            store.settle_now([Settlement("t", budget, lease, False, count, refs)])
            records += count
            patients.update(refs)
            continue
        if kind == "lookup":
            held = Reservation(f"r{n}", 60_000, 1, 0, f"p{value}")
            disclosed = (1, [f"p{value}"])
        else:
            held = Reservation(f"r{n}", 60_000, PAGE, PAGE)
            disclosed = (value, [f"q{n}-{i}" for i in range(value)])
        verdict = store.admit_now([Check("t", budget, reservation=held)])[0]
        if verdict.refused is None:
            in_flight.append((verdict.lease, *disclosed))
    if settle_all:
        for lease, count, refs in in_flight:
            store.settle_now([Settlement("t", budget, lease, False, count, refs)])
            records += count
            patients.update(refs)
    return patients, records


@settings(max_examples=150, deadline=None)
@given(steps)
def test_distinct_patients_overshoot_by_at_most_one_reservation(plan) -> None:
    patients, _ = run(PATIENTS, plan, MemoryStore(clock=Clock()))
    assert len(patients) <= 10 + PAGE


@settings(max_examples=150, deadline=None)
@given(steps)
def test_records_overshoot_by_at_most_one_reservation(plan) -> None:
    _, records = run(RECORDS, plan, MemoryStore(clock=Clock()))
    assert records <= 100 + PAGE


@given(steps)
def test_leases_expire_and_never_stick(plan) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    run(PATIENTS, plan, store, settle_all=False)  # leases left unsettled: a replica died
    clock.now += 61.0
    free = Reservation("after", 60_000, 1, 0, "p0")
    assert store.admit_now([Check("t", PATIENTS, reservation=free)])[0].refused in (None,
                                                                                   "patients")
    assert all(not b.live_leases(clock.now) or list(b.live_leases(clock.now)) == [free.member]
               for b, _ in store._buckets.values())


@given(st.builds(Observation, at=st.just(0.0), route=st.from_regex(r"[a-z][a-z0-9._-]{0,20}",
                                                                      fullmatch=True),
                 numbers=st.lists(st.tuples(st.from_regex(r"[a-z_][a-z0-9_]{0,8}",
                                                          fullmatch=True),
                                            st.integers(0, 2**62)), max_size=3).map(tuple),
                 lookup=st.booleans(), missed=st.booleans(), search=st.booleans(),
                 page=st.none() | st.integers(0, 10**12), at_max=st.booleans(),
                 broad=st.booleans(), records=st.integers(0, 10**6)))
def test_observations_survive_encoding(found: Observation) -> None:
    assert decode(encode(found), 0.0) == found
