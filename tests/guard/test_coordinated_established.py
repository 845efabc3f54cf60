"""The client alert (one operation behind many accounts) slows the client's fresh and
suspicious accounts, not its established doctors: a principal seen for
`established_after_s` with a clean history keeps being served while the fresh accounts
of the same client are slowed, then refused (issue 19, soak finding)."""

from __future__ import annotations

import asyncio
import random
import time

from support.guard import answered, decision, identity, limits, policy, read
from vigie.errors import Throttled
from vigie.guard import GuardTuning

CLIENT = "gp-frontdesk"
TUNING = GuardTuning(established_after_s=0.3)
POLICY = policy(CLIENT, principal=limits(requests="200/hour", enumeration=True))  # burst 20


async def ask(kit, subject: str, patient: str, status: int = 200) -> str:  # type: ignore[no-untyped-def]
    """'served', or the refusal's reason."""
    who, grant, made = identity(CLIENT, subject), read(POLICY, patient), decision()
    try:
        await kit.guard.admit(who, grant, made)
    except Throttled:
        return made.reason
    await kit.guard.observe(who, grant, answered(made, status=status, patients=[patient]))
    return "served"


async def wait_established(kit, subject: str) -> None:  # type: ignore[no-untyped-def]
    pseudonym = kit.pseudonym(CLIENT, subject)
    deadline = time.monotonic() + 5
    while not kit.guard.detector.established(CLIENT, pseudonym):
        assert time.monotonic() < deadline, "the doctor never became established"
        await asyncio.sleep(0.02)


async def test_an_established_doctor_is_served_while_fresh_accounts_are_refused(
        backend) -> None:  # type: ignore[no-untyped-def]
    kit = await backend.guard(tuning=TUNING)
    rng = random.Random(19)
    own = [str(1000 + 7919 * n) for n in range(12)]  # the doctor's patients, no walk
    assert [await ask(kit, "dr-established", p) for p in own[:3]] == ["served"] * 3
    assert not kit.guard.detector.established(CLIENT, kit.pseudonym(CLIENT, "dr-established"))
    await wait_established(kit, "dr-established")

    for n in range(TUNING.coordinated_principals):  # the extractor's accounts: misses
        for _ in range(15):
            if await ask(kit, f"extractor-{n}", str(rng.randrange(10**7)), 404) != "served":
                break
    assert kit.guard.quarantines_.alerted(CLIENT)

    fresh = [await ask(kit, "extractor-fresh", p) for p in own]
    doctor = [await ask(kit, "dr-established", p) for p in own]
    assert "anomaly" in fresh, fresh  # slowed: its request rate divided by the penalty
    assert fresh.count("served") < 8, fresh
    assert doctor == ["served"] * len(own), doctor


async def test_an_established_doctor_who_turns_anomalous_is_slowed_again(
        backend) -> None:  # type: ignore[no-untyped-def]
    kit = await backend.guard(tuning=TUNING)
    assert await ask(kit, "dr-turned", "4242") == "served"
    await wait_established(kit, "dr-turned")
    rng = random.Random(7)
    while kit.guard.detector.score(CLIENT, kit.pseudonym(CLIENT, "dr-turned")) < 0.5:
        assert await ask(kit, "dr-turned", str(rng.randrange(10**7)), 404) == "served"
    assert not kit.guard.detector.established(CLIENT, kit.pseudonym(CLIENT, "dr-turned"))
