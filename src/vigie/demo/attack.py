"""`vigie attack`: extraction styles against the demo, and what stopped each of them.

The breaches Vigie exists for were bulk extraction with valid accounts. This runs
them against a private demo stack (legacy API + issuer + vigie with the demo
policies and their budgets) and reports, per style, how much it got and which budget
or signal stopped it (read from the `Vigie-Decision` header of the 429s):

- sequential:      one account reads /patients/1, /2, /3 ... as fast as it can;
- slow-sequential: the same walk paced under the per-user request rate, so that only
                   enumeration detection can catch it;
- paging:          one account pages through a broad search, just under its request rate;
- many-accounts:   many accounts of one application, each under the per-user rate,
                   each reading its own slice of ids.

The attacker is persistent: on a 429 it waits `Retry-After` and tries again. An account
is stopped when it is quarantined, or refused for longer than `LONG_REFUSAL_SECONDS`
(a spent budget); a style is stopped when all its accounts are.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from vigie.demo.runner import DemoStack, demo_stack

CLIENT = "gp-frontdesk"
SCOPES = ("patient.read", "patient.search")
PACE_SECONDS = 0.55  # 109 requests/minute: under gp-frontdesk's 120/minute
LONG_REFUSAL_SECONDS = 60
DEFAULT_BUDGET_SECONDS = 20.0


@dataclass
class Account:
    user: str
    requests: int = 0
    records: int = 0
    patients: set[str] = field(default_factory=set)
    stopped_by: str = ""  # "quarantined: <signal>" or "throttled: <signal>"; "" = not stopped


@dataclass
class Outcome:
    style: str
    accounts: list[Account]
    seconds: float = 0.0
    first_refusal: str = ""  # "<decision>: <signal> after N requests"
    budgets: tuple[int, int] = (0, 0)  # the per-account records and distinct-patient budgets

    @property
    def requests(self) -> int:
        return sum(a.requests for a in self.accounts)

    @property
    def records(self) -> int:
        return sum(a.records for a in self.accounts)

    @property
    def patients(self) -> int:
        return len(set().union(*(a.patients for a in self.accounts)))

    @property
    def stopped(self) -> bool:
        return all(a.stopped_by for a in self.accounts)

    @property
    def stopped_by(self) -> str:
        counts = Counter(a.stopped_by or "not stopped" for a in self.accounts)
        if len(self.accounts) == 1:
            return next(iter(counts))
        return ", ".join(f"{how} ({n})" for how, n in counts.most_common())

    @property
    def within_budgets(self) -> bool:
        records, patients = self.budgets
        return all(a.records <= records and len(a.patients) <= patients
                   for a in self.accounts)

    def as_dict(self) -> dict[str, object]:
        return {"style": self.style, "accounts": len(self.accounts),
                "requests": self.requests, "records": self.records,
                "patients": self.patients, "seconds": round(self.seconds, 1),
                "first_refusal": self.first_refusal, "stopped": self.stopped,
                "stopped_by": self.stopped_by, "within_budgets": self.within_budgets,
                "max_records_per_account": max(a.records for a in self.accounts),
                "max_patients_per_account": max(len(a.patients) for a in self.accounts)}


async def _attack(http: httpx.AsyncClient, stack: DemoStack, outcome: Outcome,
                  account: Account, paths: Sequence[str], pace: float,
                  deadline: float) -> None:
    token = stack.issuer.mint(CLIENT, account.user, SCOPES, practice_id="P1")
    headers = {"Authorization": f"Bearer {token}"}
    index = 0
    while index < len(paths) and time.monotonic() < deadline:
        started = time.monotonic()
        response = await http.get(stack.proxy_url + paths[index], headers=headers)
        account.requests += 1
        if response.status_code == 429:
            kind, _, signal = response.headers.get("vigie-decision", "throttled").partition(
                ";signal=")
            refusal = f"{kind}: {signal or 'unknown'}"
            if not outcome.first_refusal:
                outcome.first_refusal = f"{refusal} after {outcome.requests} requests"
            wait = int(response.headers.get("retry-after", "1"))
            if kind == "quarantined" or wait >= LONG_REFUSAL_SECONDS:
                account.stopped_by = refusal
                return
            await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            continue  # a persistent attacker tries the same path again
        index += 1
        if response.status_code == 200:
            body = response.json()
            for record in body.get("items", [body]) if isinstance(body, dict) else body:
                account.records += 1
                account.patients.add(str(record.get("id")))
        pause = pace - (time.monotonic() - started)
        if pause > 0:
            await asyncio.sleep(pause)


async def _run(stack: DemoStack, style: str, plans: Sequence[tuple[str, Sequence[str]]],
               pace: float, budget_seconds: float) -> Outcome:
    limits = stack.vigie.policies.current.clients[CLIENT].limits.inherit(
        stack.vigie.settings.limits)
    budgets = (limits.records.count if limits.records else sys.maxsize,
               limits.distinct_patients.count if limits.distinct_patients else sys.maxsize)
    outcome = Outcome(style, [Account(user) for user, _ in plans], budgets=budgets)
    started = time.monotonic()
    deadline = started + budget_seconds
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=64)) as http:
        await asyncio.gather(*(_attack(http, stack, outcome, account, paths, pace, deadline)
                               for account, (_, paths) in zip(outcome.accounts, plans,
                                                              strict=True)))
    outcome.seconds = time.monotonic() - started
    return outcome


def _ids(first: int, count: int) -> list[str]:
    return [f"/patients/{i}" for i in range(first, first + count)]


async def sequential(stack: DemoStack, budget_seconds: float) -> Outcome:
    return await _run(stack, "fast sequential enumeration", [("scraper-1", _ids(1, 5000))],
                      0.0, budget_seconds)


async def slow_sequential(stack: DemoStack, budget_seconds: float) -> Outcome:
    return await _run(stack, "slow sequential, under the rate",
                      [("scraper-3", _ids(2001, 3000))], PACE_SECONDS, budget_seconds)


async def paging(stack: DemoStack, budget_seconds: float) -> Outcome:
    paths = [f"/patients?last_name=&page={page}&page_size=50" for page in range(1, 101)]
    return await _run(stack, "low-and-slow search paging", [("scraper-2", paths)],
                      PACE_SECONDS, budget_seconds)


async def accounts(stack: DemoStack, budget_seconds: float, count: int = 20) -> Outcome:
    plans = [(f"scraper-acct-{n}", _ids(1 + n * 250, 250)) for n in range(count)]
    return await _run(stack, "many accounts, each under its limit", plans, PACE_SECONDS,
                      budget_seconds)


STYLES: dict[str, Callable[[DemoStack, float], Awaitable[Outcome]]] = {
    "sequential": sequential, "slow-sequential": slow_sequential, "paging": paging,
    "many-accounts": accounts}


async def simulate(styles: Sequence[str], state: Path,
                   budget_seconds: float = DEFAULT_BUDGET_SECONDS) -> list[Outcome]:
    """Each style against a fresh stack, so one style's quarantine does not help another."""
    outcomes = []
    for index, style in enumerate(styles):
        run_state = state / f"{index}-{style}"
        run_state.mkdir()
        async with demo_stack(run_state, preferred_ports=False) as stack:
            outcomes.append(await STYLES[style](stack, budget_seconds))
    return outcomes


def report(outcomes: Sequence[Outcome]) -> str:
    lines = [f"{'style':36} {'accounts':>8} {'requests':>8} {'records':>7} {'patients':>8} "
             f"{'seconds':>7}  {'first refused':34} stopped by"]
    for o in outcomes:
        verdict = o.stopped_by if o.stopped else f"NOT STOPPED ({o.stopped_by})"
        lines.append(f"{o.style:36} {len(o.accounts):>8} {o.requests:>8} {o.records:>7} "
                     f"{o.patients:>8} {o.seconds:>7.1f}  {o.first_refusal or '-':34} "
                     f"{verdict}")
    records, patients = outcomes[0].budgets if outcomes else (0, 0)
    over = [o.style for o in outcomes if not o.within_budgets]
    lines.append(f"budgets per account: {records} records, {patients} distinct patients: "
                 + (f"EXCEEDED by {', '.join(over)}" if over else "never exceeded"))
    return "\n".join(lines)


def main(style: str = "all", budget_seconds: float = DEFAULT_BUDGET_SECONDS,
         as_json: bool = False) -> int:
    import uvloop

    styles = list(STYLES) if style == "all" else [style]
    if not as_json:
        print("Simulating extraction against a private demo stack (gp-frontdesk budgets: "
              "120 requests/minute, 2000 records/hour, 300 distinct patients/day per user; "
              f"{budget_seconds:g} s per style)...", flush=True)
    with tempfile.TemporaryDirectory(prefix="vigie-attack-") as tmp, \
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        outcomes = runner.run(simulate(styles, Path(tmp), budget_seconds))
    if as_json:
        print(orjson.dumps([o.as_dict() for o in outcomes], option=orjson.OPT_INDENT_2).decode())
    else:
        print(report(outcomes))
    failed = [o.style for o in outcomes if not (o.stopped and o.within_budgets)]
    if failed:
        print(f"not stopped within the budgets: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


__all__ = ["STYLES", "Account", "Outcome", "main", "report", "simulate"]
