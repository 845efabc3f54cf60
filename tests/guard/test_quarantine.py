"""Quarantines, decoys, lifting, report-only mode and security events, on both stores."""

from __future__ import annotations

from datetime import datetime

import pytest

from support.guard import (
    answered,
    decision,
    identity,
    limits,
    policy,
    read,
    search,
    settings,
)
from vigie.errors import Throttled
from vigie.policy.model import Mode

DECOYS = ("990001", "990002")


async def test_decoy_in_path_quarantines_at_once(backend) -> None:
    kit = await backend.guard(settings(decoys=DECOYS, quarantine_minutes=15))
    pol = policy(principal=limits(enumeration=False))
    who = identity()
    await kit.guard.admit(who, read(pol, "42"), decision())
    first = decision()
    with pytest.raises(Throttled) as caught:
        await kit.guard.admit(who, read(pol, "990001"), first)
    assert caught.value.decision == "quarantined"
    assert first.decision == "quarantined"
    assert first.anomaly_score == 1.0
    assert 890 <= int(caught.value.headers["Retry-After"]) <= 900

    later = decision()  # an innocent request afterwards is refused too
    with pytest.raises(Throttled) as again:
        await kit.guard.admit(who, read(pol, "42"), later)
    assert again.value.decision == "quarantined"
    assert later.decision == "quarantined"
    # another principal of the same client is not affected
    await kit.guard.admit(identity(subject="dr-watson"), read(pol, "42"), decision())


async def test_decoy_among_disclosed_records_quarantines(backend) -> None:
    kit = await backend.guard(settings(decoys=DECOYS))
    pol = policy(principal=limits(enumeration=False))
    who = identity()
    grant = search(pol, "last_name=martin")
    await kit.guard.admit(who, grant, decision())
    await kit.guard.observe(who, grant, answered(decision(), patients=["12", "990002", "13"]))
    with pytest.raises(Throttled) as caught:
        await kit.guard.admit(who, grant, decision())
    assert caught.value.decision == "quarantined"


async def test_pseudonymized_decoy_reference_is_recognized(backend) -> None:
    kit = await backend.guard(settings(decoys=DECOYS))
    pol = policy(principal=limits(enumeration=False))
    who = identity()
    grant = search(pol, "last_name=martin")
    token = kit.pseudonymizer.token("gp-frontdesk", "990001")
    await kit.guard.observe(who, grant, answered(decision(), patients=[token]))
    with pytest.raises(Throttled):
        await kit.guard.admit(who, grant, decision())


async def test_quarantine_listing_gauge_and_lift(backend) -> None:
    kit = await backend.guard(settings(decoys=DECOYS))
    pol = policy(principal=limits(enumeration=False))
    who = identity()
    with pytest.raises(Throttled):
        await kit.guard.admit(who, read(pol, "990001"), decision())
    await kit.guard.store.flush()

    listed = await kit.guard.quarantines()
    assert len(listed) == 1
    entry = listed[0]
    assert entry["client"] == "gp-frontdesk"
    assert entry["subject"] == kit.pseudonym()
    assert entry["reason"] == "decoy"
    assert str(entry["until"]).endswith("Z")
    datetime.fromisoformat(str(entry["until"]).replace("Z", "+00:00"))
    assert kit.sample("vigie_quarantined_clients") == 1
    assert kit.sample("vigie_anomaly_score", client="gp-frontdesk") == 1.0

    assert await kit.guard.lift("gp-frontdesk", kit.pseudonym()) is True
    await kit.guard.admit(who, read(pol, "42"), decision())
    assert await kit.guard.quarantines() == []
    assert kit.sample("vigie_quarantined_clients") == 0
    assert kit.sample("vigie_anomaly_score", client="gp-frontdesk") == 0.0
    assert await kit.guard.lift("gp-frontdesk", kit.pseudonym()) is False
    assert await kit.guard.lift("gp-frontdesk", "psn-unknown") is False


async def test_security_events_never_carry_the_raw_subject(backend) -> None:
    kit = await backend.guard(settings(decoys=DECOYS))
    pol = policy(principal=limits(enumeration=False))
    who = identity(subject="dr-gregory-house-1234")
    with pytest.raises(Throttled):
        await kit.guard.admit(who, read(pol, "990002"), decision())
    await kit.guard.lift("gp-frontdesk", kit.pseudonym(subject="dr-gregory-house-1234"))
    text = kit.events_path.read_text()
    assert "dr-gregory-house" not in text
    assert "990002" not in text
    events = kit.events()
    assert [e["event"] for e in events] == ["decoy_accessed", "quarantine_lifted"]
    first = events[0]
    assert set(first) == {"ts", "kind", "level", "logger", "service", "version",  # envelope
                          "event", "client", "principal", "signal", "score", "action", "mode"}
    assert first["principal"] == kit.pseudonym(subject="dr-gregory-house-1234")
    assert first["action"] == "quarantine"
    assert first["signal"] == "decoy"
    assert kit.sample("vigie_security_events_total", client="gp-frontdesk", signal="decoy",
                      action="quarantine") == 1


async def test_report_only_records_every_decision_and_blocks_nothing(backend) -> None:
    kit = await backend.guard(settings(decoys=DECOYS))
    pol = policy(principal=limits(requests="10/minute", enumeration=False),
                 mode=Mode.REPORT_ONLY)
    who = identity()
    first = decision()
    await kit.guard.admit(who, read(pol, "1", Mode.REPORT_ONLY), first)
    assert first.would_block is None and first.decision == "allowed"

    second = decision()  # over the rate: recorded, not enforced
    await kit.guard.admit(who, read(pol, "2", Mode.REPORT_ONLY), second)
    assert second.would_block == "throttled"
    assert second.decision == "allowed"
    assert second.reason == "requests"

    decoy = decision()
    await kit.guard.admit(who, read(pol, "990001", Mode.REPORT_ONLY), decoy)
    assert decoy.would_block == "quarantined"
    assert decoy.decision == "allowed"
    assert decoy.anomaly_score == 1.0

    after = decision()
    await kit.guard.admit(who, read(pol, "3", Mode.REPORT_ONLY), after)
    assert after.would_block == "quarantined"
    listed = await kit.guard.quarantines()
    assert listed and listed[0]["mode"] == "report-only"
    assert kit.events()[0]["mode"] == "report-only"


async def test_observe_never_raises_and_skips_refused_requests(backend) -> None:
    kit = await backend.guard()
    pol = policy(principal=limits(records="1/hour"))
    who = identity()
    refused = answered(decision(), status=429, patients=["1", "2", "3"])
    refused.decision = "throttled"
    await kit.guard.observe(who, read(pol, "1"), refused)  # not forwarded: not counted
    await kit.guard.store.flush()
    await kit.guard.admit(who, read(pol, "1"), decision())
    broken = decision()
    broken.patients = None  # type: ignore[assignment]  # a stage bug must not escape observe
    broken.records = 3
    await kit.guard.observe(who, read(pol, "1"), broken)


async def test_guard_builds_its_store_from_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from support.guard import REDIS_URL, require_redis
    from vigie.guard import Guard, MemoryStore, RedisStore
    from vigie.pseudonym import Pseudonymizer
    from vigie.telemetry.metrics import Metrics

    conf = settings(events_path=str(tmp_path / "events.jsonl"))
    metrics = Metrics(process_collectors=False)
    memory = Guard(conf, metrics, Pseudonymizer.ephemeral())
    assert isinstance(memory.store, MemoryStore)
    await memory.start()
    assert metrics.registry.get_sample_value("vigie_state_backend_up",
                                             {"backend": "memory"}) == 1
    await memory.close()

    require_redis()
    shared = Guard(replace(conf, redis=REDIS_URL), metrics, Pseudonymizer.ephemeral())
    assert isinstance(shared.store, RedisStore)
    await shared.start()
    assert metrics.registry.get_sample_value("vigie_state_backend_up",
                                             {"backend": "redis"}) == 1
    await shared.close()


async def test_quarantined_gauge_follows_without_anyone_listing(backend) -> None:
    import asyncio

    kit = await backend.guard(settings(decoys=DECOYS))
    pol = policy(principal=limits(enumeration=False))
    with pytest.raises(Throttled):
        await kit.guard.admit(identity(), read(pol, "990001"), decision())
    for _ in range(50):
        if kit.sample("vigie_quarantined_clients") == 1:
            break
        await asyncio.sleep(0.02)
    assert kit.sample("vigie_quarantined_clients") == 1


async def test_a_report_only_quarantine_is_not_enforced_once_the_client_enforces(
        backend) -> None:  # type: ignore[no-untyped-def]
    kit = await backend.guard(settings(decoys=DECOYS))
    watched = policy(principal=limits(enumeration=False), mode=Mode.REPORT_ONLY)
    enforced = policy(principal=limits(enumeration=False))
    who = identity()
    await kit.guard.admit(who, read(watched, "990001", Mode.REPORT_ONLY), decision())
    await kit.guard.store.flush()
    later = decision()
    await kit.guard.admit(who, read(enforced, "5"), later)
    assert later.would_block == "quarantined" and later.decision == "allowed"
