"""Replicas sharing Redis share the enumeration evidence and the client alert."""

from __future__ import annotations

import random

import pytest

from support.guard import answered, decision, identity, limits, policy, read
from vigie.errors import Throttled
from vigie.guard import GuardTuning

TUNING = GuardTuning()
POLICY = policy(principal=limits(requests="100000/minute", enumeration=True))


async def misses(kit, who, count: int, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    for _ in range(count):
        grant = read(POLICY, str(rng.randrange(10**7)))
        made = decision()
        try:
            await kit.guard.admit(who, grant, made)
        except Throttled:
            return  # slowed or quarantined: this principal is anomalous enough
        await kit.guard.observe(who, grant, answered(made, status=404))


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_the_client_alert_is_raised_by_principals_on_different_replicas(backend) -> None:
    kits = [await backend.guard() for _ in range(TUNING.coordinated_principals)]
    rng = random.Random(5)
    for n, kit in enumerate(kits):  # one anomalous principal per replica
        await misses(kit, identity(subject=f"scraper-{n}"), 12, rng)
    raised = [e for kit in kits for e in kit.events() if e["event"] == "coordinated_extraction"]
    assert len(raised) == 1  # raised once, by the replica that saw the third principal
    # Every replica slows the client's principals, even one that raised nothing itself.
    first = kits[0]
    await first.guard.quarantines_.refresh_alerts(["gp-frontdesk"])
    assert first.guard.quarantines_.alerted("gp-frontdesk")


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_a_walk_spread_over_replicas_is_seen_whole(backend) -> None:
    kits = [await backend.guard() for _ in range(3)]
    who = identity(subject="walker")
    refused: list[str] = []
    for step, number in enumerate(range(7000, 7000 + TUNING.sequential_run + 2)):
        kit = kits[step % 3]  # each replica alone sees every third id
        grant = read(POLICY, str(number))
        made = decision()
        try:
            await kit.guard.admit(who, grant, made)
        except Throttled as error:
            refused.append(error.decision)
            if error.decision == "quarantined":
                break
            continue
        await kit.guard.observe(who, grant, answered(made, patients=[str(number)]))
    assert refused and refused[-1] == "quarantined"
    detected = sum(kit.sample("vigie_enumeration_detections_total", client="gp-frontdesk",
                              signal="sequential_ids") for kit in kits)
    assert detected == 1
