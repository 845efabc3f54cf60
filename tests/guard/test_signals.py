"""Enumeration signals: alone (explicit clock) and through the Guard (detections, throttle,
quarantine, metrics) on both stores."""

from __future__ import annotations

import random

import pytest

from support.guard import answered, decision, identity, limits, policy, read, search
from vigie.errors import Throttled
from vigie.guard import GuardTuning, PrincipalSignals
from vigie.policy.model import Mode

TUNING = GuardTuning()


def lookups(signals: PrincipalSignals, ids: list[int], status: int = 200) -> list[str]:
    found: list[str] = []
    for step, number in enumerate(ids):  # one lookup every 3 s: 100 per baseline window
        detections = signals.observe(1000.0 + 3 * step, "read-patient", {"id": str(number)},
                                     "", status, 1 if status == 200 else 0, 0)
        found += [d.signal for d in detections]
    return found


def test_sequential_ids_are_detected_after_one_run() -> None:
    signals = PrincipalSignals(TUNING)
    found = lookups(signals, list(range(1000, 1000 + TUNING.sequential_run - 1)))
    assert found == []
    assert signals.score() >= TUNING.throttle_score  # throttled before being caught
    assert lookups(signals, [1000 + TUNING.sequential_run - 1]) == ["sequential_ids"]


@pytest.mark.parametrize("stride", [2, 7, -1, -3])
def test_constant_small_strides_in_both_directions(stride: int) -> None:
    signals = PrincipalSignals(TUNING)
    ids = [50_000 + stride * i for i in range(TUNING.sequential_run)]
    assert lookups(signals, ids) == ["sequential_ids"]


def test_random_ids_raise_nothing() -> None:
    rng = random.Random(7)
    signals = PrincipalSignals(TUNING)
    assert lookups(signals, [rng.randrange(1, 10_000_000) for _ in range(500)]) == []
    assert signals.score() < TUNING.throttle_score


def test_random_ids_in_a_small_practice_raise_nothing() -> None:
    rng = random.Random(11)
    signals = PrincipalSignals(TUNING)
    assert lookups(signals, [rng.randrange(1, 300) for _ in range(500)]) == []


def test_repeating_one_patient_is_not_a_run() -> None:
    signals = PrincipalSignals(TUNING)
    assert lookups(signals, [42] * 100) == []
    assert signals.score() == 0.0


def test_a_broken_run_starts_again() -> None:
    signals = PrincipalSignals(TUNING)
    half = TUNING.sequential_run // 2
    assert lookups(signals, list(range(1, 1 + half)) + [900_000]
                   + list(range(5000, 5000 + half))) == []


def test_not_found_ratio_on_id_lookups() -> None:
    rng = random.Random(3)
    signals = PrincipalSignals(TUNING)
    found: list[str] = []
    for i in range(30):
        status = 404 if i % 2 else 200
        found += [d.signal for d in signals.observe(
            1000.0, "read-patient", {"id": str(rng.randrange(10**6))}, "", status,
            1 if status == 200 else 0, 0)]
    assert found == ["not_found_ratio"]


def test_a_few_misses_are_normal() -> None:
    rng = random.Random(5)
    signals = PrincipalSignals(TUNING)
    found = []
    for i in range(200):
        status = 404 if i % 10 == 0 else 200
        found += [d.signal for d in signals.observe(
            1000.0 + 3 * i, "read-patient", {"id": str(rng.randrange(10**6))}, "", status, 1, 0)]
    assert found == []


def test_withheld_records_count_as_misses() -> None:
    signals = PrincipalSignals(TUNING)
    rng = random.Random(1)
    found = []
    for _ in range(TUNING.lookup_min):
        found += [d.signal for d in signals.observe(
            1000.0, "read-patient", {"id": str(rng.randrange(10**6))}, "", 200, 0, 1)]
    assert found == ["not_found_ratio"]


def searches(signals: PrincipalSignals, queries: list[str]) -> list[str]:
    found: list[str] = []
    for step, query in enumerate(queries):
        found += [d.signal for d in signals.observe(1000.0 + 30 * step, "search-patients", {},
                                                    query, 200, 10, 0, 50)]
    return found


def test_deep_paging_at_max_page_size() -> None:
    signals = PrincipalSignals(TUNING)
    pages = [f"last_name=martin&page={p}&page_size=50" for p in range(1, 11)]
    assert searches(signals, pages) == ["deep_paging"]


def test_deep_paging_with_small_pages_needs_a_longer_walk() -> None:
    signals = PrincipalSignals(TUNING)
    pages = [f"last_name=martin&page={p}&page_size=10" for p in range(1, 11)]
    assert searches(signals, pages) == []
    more = [f"last_name=martin&page={p}&page_size=10" for p in range(11, 21)]
    assert searches(signals, more) == ["deep_paging"]


def test_a_few_pages_of_a_real_search_are_fine() -> None:
    signals = PrincipalSignals(TUNING)
    queries = []
    for name in ("martin", "bernard", "dubois", "thomas", "robert", "richard"):
        queries += [f"last_name={name}&page={p}&page_size=50" for p in (1, 2, 3)]
    assert searches(signals, queries) == []


def test_broad_searches_short_names_and_wildcards() -> None:
    signals = PrincipalSignals(TUNING)
    queries = [f"last_name={n}" for n in ("a", "b*", "%", "ma", "c", "d", "e", "f", "g", "h")]
    assert searches(signals, queries) == ["broad_search"]


def test_specific_searches_are_not_broad() -> None:
    signals = PrincipalSignals(TUNING)
    assert searches(signals, [f"last_name=dupont{i}" for i in range(100)]) == []


def window(signals: PrincipalSignals, index: int, records: int) -> list[str]:
    at = index * TUNING.baseline_window_s + 1.0
    found = []
    for _ in range(records // 10):
        found += [d.signal for d in signals.observe(at, "search-patients", {}, "", 200, 10, 0)]
    return found


def test_baseline_learns_a_steady_user_and_never_fires() -> None:
    signals = PrincipalSignals(TUNING)
    for index in range(50):
        assert window(signals, index, 150) == []
    assert TUNING.baseline_floor < signals.baseline <= 150


def test_baseline_growth_is_capped_so_a_scraper_cannot_raise_it() -> None:
    signals = PrincipalSignals(TUNING)
    before = signals.baseline
    window(signals, 0, 10 * int(TUNING.baseline_floor) * 3)  # far above: detected, not learnt
    window(signals, 1, 0)
    assert signals.baseline == before
    # A slow ramp just under detection each window: growth is at most 25% per window.
    ramp = PrincipalSignals(TUNING)
    baseline = ramp.baseline
    for index in range(1, 8):
        window(ramp, index, int(baseline * 3.9) // 10 * 10)
        window(ramp, index + 1, 0)
        assert ramp.baseline <= baseline * (1 + TUNING.baseline_growth) + 1e-9
        baseline = ramp.baseline


def test_baseline_detects_a_burst_over_the_learnt_volume() -> None:
    signals = PrincipalSignals(TUNING)
    for index in range(10):
        window(signals, index, 40)
    assert "baseline" in window(signals, 10, int(TUNING.baseline_floor
                                                 * TUNING.baseline_ratio_detect) + 10)


# -- through the guard ---------------------------------------------------------------------
async def test_sequential_scraper_is_throttled_then_quarantined(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(requests="600/minute", enumeration=True))
    who = identity()
    refused_as: list[str] = []
    scores = []
    for number in range(5000, 5000 + 200):
        grant = read(pol, str(number))
        made = decision()
        try:
            await kit.guard.admit(who, grant, made)
        except Throttled as error:
            refused_as.append(error.decision)
            if error.decision == "quarantined":
                break
            continue
        scores.append(made.anomaly_score)
        await kit.guard.observe(who, grant, answered(made, patients=[str(number)]))
    assert refused_as[-1] == "quarantined"
    assert max(scores) >= TUNING.throttle_score
    # Counted once: when the signal throttled the principal (not again at the quarantine).
    assert kit.sample("vigie_enumeration_detections_total", client="gp-frontdesk",
                      signal="sequential_ids") == 1
    assert kit.sample("vigie_anomaly_score", client="gp-frontdesk") == 1.0
    event = kit.events()[-1]
    assert (event["event"], event["signal"], event["action"]) == (
        "enumeration_detected", "sequential_ids", "quarantine")


async def test_anomaly_throttle_slows_the_principal_before_quarantine(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(requests="120/minute"))  # burst 12
    who = identity()
    refused = decision()
    with pytest.raises(Throttled):
        for number in range(100, 100 + TUNING.sequential_run - 1):
            grant = read(pol, str(number))
            refused = decision()
            await kit.guard.admit(who, grant, refused)
            await kit.guard.observe(who, grant, answered(refused, patients=[str(number)]))
    assert refused.reason == "anomaly"
    assert refused.decision == "throttled"
    events = kit.events()
    assert events and events[0]["event"] == "anomaly_throttled"


async def test_an_enumeration_only_throttled_is_counted_as_a_detection(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(requests="100000/minute", enumeration=True))
    who = identity()
    rng = random.Random(3)
    for _ in range(12):  # misses: the not-found signal throttles, nothing quarantines yet
        grant = read(pol, str(rng.randrange(10**7)))
        made = decision()
        await kit.guard.admit(who, grant, made)
        await kit.guard.observe(who, grant, answered(made, status=404))
    assert await kit.guard.quarantines() == []
    assert kit.sample("vigie_enumeration_detections_total", client="gp-frontdesk",
                      signal="not_found_ratio") == 1  # counted when the signal fired
    assert [e["event"] for e in kit.events()] == ["anomaly_throttled"]


async def test_random_lookups_through_the_guard_raise_nothing(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(enumeration=True))
    who = identity()
    rng = random.Random(42)
    for _ in range(150):
        number = str(rng.randrange(1, 10**7))
        grant = read(pol, number)
        made = decision()
        await kit.guard.admit(who, grant, made)
        await kit.guard.observe(who, grant, answered(made, patients=[number]))
    assert kit.events() == []
    assert kit.sample("vigie_anomaly_score", client="gp-frontdesk") < TUNING.throttle_score


async def test_enumeration_false_disables_signals(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(enumeration=False))
    who = identity()
    for number in range(1, 100):
        grant = read(pol, str(number))
        await kit.guard.admit(who, grant, decision())
        await kit.guard.observe(who, grant, answered(decision(), patients=[str(number)]))
    assert kit.events() == []


async def test_report_only_scraper_is_recorded_not_blocked(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(enumeration=True), mode=Mode.REPORT_ONLY)
    who = identity()
    blocked = []
    for p in range(1, 40):
        grant = search(pol, f"last_name=martin&page={p}&page_size=50", Mode.REPORT_ONLY)
        made = decision()
        await kit.guard.admit(who, grant, made)
        blocked.append(made.would_block)
        await kit.guard.observe(who, grant, answered(made, patients=[f"{p}-{i}" for i in
                                                                     range(5)]))
    assert "quarantined" in blocked
    assert kit.sample("vigie_enumeration_detections_total", client="gp-frontdesk",
                      signal="deep_paging") >= 1


async def test_withheld_404s_denied_by_the_proxy_feed_the_not_found_signal(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(enumeration=True))
    who = identity()
    rng = random.Random(8)
    for _ in range(TUNING.lookup_min):
        grant = read(pol, str(rng.randrange(10**7)))
        made = decision()
        await kit.guard.admit(who, grant, made)
        made.status, made.decision, made.withheld = 404, "denied", 1  # bind failed: 404
        await kit.guard.observe(who, grant, made)
    assert kit.sample("vigie_enumeration_detections_total", client="gp-frontdesk",
                      signal="not_found_ratio") == 1


async def test_principal_records_are_bounded_but_a_penalized_one_is_kept(backend) -> None:
    tuning = GuardTuning(max_principals=3)
    kit = await backend.guard(tuning=tuning)
    pol = policy(principal=limits(requests="100000/minute", enumeration=True))
    walker = identity(subject="walker")
    for number in range(7000, 7000 + tuning.sequential_run // 2 + 1):  # throttled, not caught
        grant = read(pol, str(number))
        made = decision()
        await kit.guard.admit(walker, grant, made)
        await kit.guard.observe(walker, grant, answered(made, patients=[str(number)]))
    walker_pseudonym = kit.pseudonym(subject="walker")
    assert kit.guard.detector.score("gp-frontdesk", walker_pseudonym) >= tuning.throttle_score
    for index in range(8):  # more principals than the bound, each seen once
        who = identity(subject=f"reader-{index}")
        grant = read(pol, str(100 + 50 * index))
        made = decision()
        await kit.guard.admit(who, grant, made)
        await kit.guard.observe(who, grant, answered(made, patients=[str(100 + 50 * index)]))
    assert len(kit.guard.detector) == tuning.max_principals  # the oldest were forgotten
    assert kit.guard.detector.score("gp-frontdesk", walker_pseudonym) >= tuning.throttle_score
