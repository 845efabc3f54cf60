"""`vigie attack` as a test: every extraction style is stopped within the demo budgets.

The four styles run at once, each against its own demo stack (the simulator runs them one
after the other; concurrently the test takes as long as the slowest style).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from vigie.demo.attack import STYLES, Outcome, report
from vigie.demo.runner import demo_stack

BUDGET_SECONDS = 25.0


async def _one(style: str, state: Path) -> Outcome:
    state.mkdir()
    async with demo_stack(state, preferred_ports=False) as stack:
        return await STYLES[style](stack, BUDGET_SECONDS)


async def test_every_style_is_stopped_within_the_budgets(tmp_path: Path) -> None:
    outcomes = dict(zip(STYLES, await asyncio.gather(
        *(_one(style, tmp_path / style) for style in STYLES)), strict=True))
    table = report(list(outcomes.values()))
    for style, outcome in outcomes.items():
        assert outcome.stopped, f"{style} not stopped:\n{table}"
        assert outcome.within_budgets, table
        assert outcome.seconds < BUDGET_SECONDS, table
        assert all(a.stopped_by.startswith("quarantined: ") for a in outcome.accounts), table
    # The rate limit alone would let a paced walk through: enumeration catches it.
    assert outcomes["slow-sequential"].records <= 10, table
    # One operation behind many accounts: the client alert quarantines them all early.
    many = outcomes["many-accounts"]
    assert "coordinated" in many.stopped_by and many.records <= 60, table
    assert max(a.requests for a in many.accounts) <= 15, table
