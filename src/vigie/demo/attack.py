"""`vigie attack`: three extraction styles against the demo, and where each was stopped.

The breaches Vigie exists for were bulk extraction with valid accounts. This runs
them against a private demo stack (legacy API + issuer + vigie with the demo
policies and their budgets) and prints how many records each style got:

- sequential: one account reads /patients/1, /2, /3 ... as fast as it can;
- paging:     one account pages through a broad search, just under its request rate;
- accounts:   many accounts of one application, each under the per-user rate,
              each reading its own slice of ids.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from vigie.demo.runner import DemoStack, demo_stack

CLIENT = "gp-frontdesk"
SCOPES = ("patient.read", "patient.search")
CONSECUTIVE_REFUSALS_TO_STOP = 5


@dataclass
class Outcome:
    style: str
    accounts: int
    requests: int = 0
    records: int = 0
    patients: set[str] = field(default_factory=set)
    refused_by: str = "not stopped"
    seconds: float = 0.0


async def _account(http: httpx.AsyncClient, stack: DemoStack, outcome: Outcome, user: str,
                   paths: Sequence[str], interval: float, deadline: float) -> None:
    token = stack.issuer.mint(CLIENT, user, SCOPES, practice_id="P1")
    headers = {"Authorization": f"Bearer {token}"}
    refusals = 0
    for path in paths:
        if time.monotonic() > deadline:
            return
        started = time.monotonic()
        response = await http.get(stack.proxy_url + path, headers=headers)
        outcome.requests += 1
        if response.status_code == 429:
            refusals += 1
            if outcome.refused_by == "not stopped":
                outcome.refused_by = str(response.json().get("detail", "429"))
            if refusals >= CONSECUTIVE_REFUSALS_TO_STOP:
                return
        elif response.status_code == 200:
            refusals = 0
            body = response.json()
            records = body.get("items", [body]) if isinstance(body, dict) else body
            for record in records:
                outcome.records += 1
                outcome.patients.add(str(record.get("id")))
        pause = interval - (time.monotonic() - started)
        if pause > 0:
            await asyncio.sleep(pause)


async def sequential(stack: DemoStack, budget_seconds: float) -> Outcome:
    outcome = Outcome("fast sequential enumeration", 1)
    paths = [f"/patients/{i}" for i in range(1, 5001)]
    await _run(stack, outcome, [("scraper-1", paths, 0.0)], budget_seconds)
    return outcome


async def paging(stack: DemoStack, budget_seconds: float) -> Outcome:
    outcome = Outcome("low-and-slow search paging", 1)
    paths = [f"/patients?last_name=&page={page}&page_size=50" for page in range(1, 101)]
    # 120 requests/minute is the per-user budget: stay just under it.
    await _run(stack, outcome, [("scraper-2", paths, 0.55)], budget_seconds)
    return outcome


async def accounts(stack: DemoStack, budget_seconds: float, count: int = 20) -> Outcome:
    outcome = Outcome("many accounts, each under its limit", count)
    slices = [[f"/patients/{i}" for i in range(1 + n * 250, 251 + n * 250)]
              for n in range(count)]
    await _run(stack, outcome, [(f"scraper-acct-{n}", slices[n], 0.55) for n in range(count)],
               budget_seconds)
    return outcome


async def _run(stack: DemoStack, outcome: Outcome,
               plans: Sequence[tuple[str, Sequence[str], float]], budget_seconds: float) -> None:
    started = time.monotonic()
    deadline = started + budget_seconds
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=64)) as http:
        await asyncio.gather(*(_account(http, stack, outcome, user, paths, interval, deadline)
                               for user, paths, interval in plans))
    outcome.seconds = time.monotonic() - started


STYLES = {"sequential": sequential, "paging": paging, "many-accounts": accounts}


async def simulate(styles: Sequence[str], state: Path,
                   budget_seconds: float = 60.0) -> list[Outcome]:
    """Each style against a fresh stack, so one style's quarantine does not help another."""
    outcomes = []
    for index, style in enumerate(styles):
        run_state = state / f"{index}-{style}"
        run_state.mkdir()
        async with demo_stack(run_state, preferred_ports=False) as stack:
            outcomes.append(await STYLES[style](stack, budget_seconds))
    return outcomes


def report(outcomes: Sequence[Outcome]) -> str:
    lines = [f"{'style':38} {'accounts':>8} {'requests':>8} {'records':>8} {'patients':>8} "
             f"{'seconds':>7}  stopped by"]
    for o in outcomes:
        lines.append(f"{o.style:38} {o.accounts:>8} {o.requests:>8} {o.records:>8} "
                     f"{len(o.patients):>8} {o.seconds:>7.1f}  {o.refused_by}")
    return "\n".join(lines)


def main(style: str = "all") -> int:
    import uvloop

    styles = list(STYLES) if style == "all" else [style]
    print("Simulating extraction against a private demo stack (gp-frontdesk budgets: "
          "120 requests/minute, 2000 records/hour, 300 distinct patients/day per user)...",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="vigie-attack-") as tmp, \
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        outcomes = runner.run(simulate(styles, Path(tmp)))
    print(report(outcomes))
    unstopped = [o.style for o in outcomes if o.refused_by == "not stopped"]
    if unstopped:
        print(f"not stopped: {', '.join(unstopped)}", file=sys.stderr)
        return 1
    return 0


__all__ = ["STYLES", "Outcome", "main", "report", "simulate"]
