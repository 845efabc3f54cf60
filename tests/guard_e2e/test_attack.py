"""`vigie attack` as a test: every extraction style is stopped within the demo budgets.

The styles run at once, each against its own demo stack (the simulator runs them one
after the other; concurrently the test takes as long as the slowest style). "spread"
runs over two proxies sharing the test Redis.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.guard import REDIS_URL, require_redis
from support.guard_e2e import forget_client
from vigie.demo.attack import CLIENT, MIN_REPLICAS, STYLES, Outcome, attack_target, report

BUDGET_SECONDS = 25.0


async def _one(style: str, state: Path) -> Outcome:
    state.mkdir()
    replicas = MIN_REPLICAS.get(style, 1)
    async with attack_target(state, redis=REDIS_URL if replicas > 1 else None,
                             replicas=replicas) as target:
        return await STYLES[style](target, BUDGET_SECONDS)


async def test_every_style_is_stopped_within_the_budgets(tmp_path: Path) -> None:
    require_redis()
    try:
        outcomes = dict(zip(STYLES, await asyncio.gather(
            *(_one(style, tmp_path / style) for style in STYLES)), strict=True))
    finally:
        forget_client(CLIENT)  # its quarantines would show in other tests' admin lists
    table = report(list(outcomes.values()))
    for style, outcome in outcomes.items():
        assert outcome.within_budgets, table
        if style == "parallel-burst":
            continue  # throttled to a crawl: its quarantine may come after the budget time
        assert outcome.stopped, f"{style} not stopped:\n{table}"
        assert outcome.seconds < BUDGET_SECONDS, table
        assert all(a.stopped_by.startswith("quarantined: ") for a in outcome.accounts), table
    # The rate limit alone would let a paced walk through: enumeration catches it.
    assert outcomes["slow-sequential"].records <= 10, table
    # One operation behind many accounts: the client alert quarantines them all early.
    many = outcomes["many-accounts"]
    assert "coordinated" in many.stopped_by and many.records <= 60, table
    assert max(a.requests for a in many.accounts) <= 15, table
    # Requests in flight hold their reservations: a burst gets no more than a walk.
    burst = outcomes["parallel-burst"]
    assert burst.before_refusal is not None and burst.before_refusal[0] <= 8, table
    assert burst.records <= 12, table  # at most the request burst answered, then a crawl
    assert outcomes["spread"].replicas == 2 and outcomes["spread"].records <= 30, table
