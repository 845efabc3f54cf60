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
                   each reading its own slice of ids;
- parallel-burst:  one account sends 64 requests at once, and again as they come back
                   (budgets checked before forwarding and counted after the response
                   let a whole burst through);
- spread:          the sequential walk round-robined over two proxies sharing Redis
                   (anything per replica sees only every other id).

With `--replicas N` every style spreads its requests round-robin over N proxies (as a
load balancer would), sharing Redis when `--redis` names one. The attacker is
persistent: on a 429 it waits `Retry-After` and tries again. An account is stopped when
it is quarantined, or refused for longer than `LONG_REFUSAL_SECONDS` (a spent budget); a
style is stopped when all its accounts are. For each style the report gives what was
disclosed in all, before the first refusal and before the first quarantine.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from vigie.app import Vigie
from vigie.config import load_settings
from vigie.demo.runner import HOST, DemoStack, demo_stack
from vigie.guard.reservation import plan_route
from vigie.server import bind, serve

CLIENT = "gp-frontdesk"
SCOPES = ("patient.read", "patient.search")
PACE_SECONDS = 0.55  # 109 requests/minute: under gp-frontdesk's 120/minute
LONG_REFUSAL_SECONDS = 60
DEFAULT_BUDGET_SECONDS = 20.0
BURST = 64


@dataclass(frozen=True, slots=True)
class Target:
    """The demo stack and the proxies an attack spreads over (round-robin)."""

    stack: DemoStack
    proxies: tuple[str, ...]
    backend: str = "memory"


@dataclass
class Account:
    user: str
    requests: int = 0
    records: int = 0
    patients: set[str] = field(default_factory=set)
    stopped_by: str = ""  # "quarantined: <signal>" or "throttled: <signal>"; "" = not stopped
    halted: asyncio.Event = field(default_factory=asyncio.Event)  # set once stopped


@dataclass
class Outcome:
    style: str
    accounts: list[Account]
    seconds: float = 0.0
    first_refusal: str = ""  # "<decision>: <signal> after N requests"
    budgets: tuple[int, int] = (0, 0)  # the per-account records and distinct-patient budgets
    slack: int = 0  # one response's worth: the most records one admission reserves
    replicas: int = 1
    backend: str = "memory"
    before_refusal: tuple[int, int] | None = None  # (records, patients) at the first 429
    before_quarantine: tuple[int, int] | None = None  # ... at the first quarantine

    def snapshot(self) -> tuple[int, int]:
        return self.records, self.patients

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
        """No account past a budget by more than one response's worth."""
        records, patients = self.budgets
        return all(a.records <= records + self.slack
                   and len(a.patients) <= patients + self.slack for a in self.accounts)

    def as_dict(self) -> dict[str, object]:
        return {"style": self.style, "accounts": len(self.accounts),
                "requests": self.requests, "records": self.records,
                "patients": self.patients, "seconds": round(self.seconds, 1),
                "first_refusal": self.first_refusal, "stopped": self.stopped,
                "stopped_by": self.stopped_by, "within_budgets": self.within_budgets,
                "max_records_per_account": max(a.records for a in self.accounts),
                "max_patients_per_account": max(len(a.patients) for a in self.accounts),
                "backend": self.backend, "replicas": self.replicas,
                "before_first_refusal": _pair(self.before_refusal),
                "before_quarantine": _pair(self.before_quarantine)}


def _pair(found: tuple[int, int] | None) -> dict[str, int] | None:
    return None if found is None else {"records": found[0], "patients": found[1]}


async def _attack(http: httpx.AsyncClient, target: Target, outcome: Outcome,
                  account: Account, paths: Sequence[str], pace: float, deadline: float,
                  workers: int = 1) -> None:
    """One account's persistent attack; `workers` requests of it in flight at once."""
    stack = target.stack
    token = stack.issuer.mint(CLIENT, account.user, SCOPES, practice_id="P1")
    headers = {"Authorization": f"Bearer {token}"}
    queue = iter(range(len(paths)))
    sent = 0

    async def worker() -> None:
        nonlocal sent
        for index in queue:
            while not account.stopped_by and time.monotonic() < deadline:
                started = time.monotonic()
                proxy = target.proxies[sent % len(target.proxies)]
                sent += 1
                response = await http.get(proxy + paths[index], headers=headers)
                account.requests += 1
                if response.status_code != 429:
                    _count(account, response)
                    pause = pace - (time.monotonic() - started)
                    if pause > 0:
                        await asyncio.sleep(pause)
                    break
                wait = _refused(outcome, account, response)
                # a persistent attacker tries the same path again (unless stopped meanwhile)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(account.halted.wait(),
                                           min(wait, max(0.0, deadline - time.monotonic())))
            if account.stopped_by or time.monotonic() >= deadline:
                return

    await asyncio.gather(*(worker() for _ in range(workers)))


def _count(account: Account, response: httpx.Response) -> None:
    if response.status_code == 200:
        body = response.json()
        for record in body.get("items", [body]) if isinstance(body, dict) else body:
            account.records += 1
            account.patients.add(str(record.get("id")))


def _refused(outcome: Outcome, account: Account, response: httpx.Response) -> float:
    """Note a 429; the seconds to wait before retrying (0 once the account is stopped)."""
    kind, _, signal = response.headers.get("vigie-decision", "throttled").partition(
        ";signal=")
    refusal = f"{kind}: {signal or 'unknown'}"
    if not outcome.first_refusal:
        outcome.first_refusal = f"{refusal} after {outcome.requests} requests"
        outcome.before_refusal = outcome.snapshot()
    wait = int(response.headers.get("retry-after", "1"))
    if kind == "quarantined" and outcome.before_quarantine is None:
        outcome.before_quarantine = outcome.snapshot()
    if kind == "quarantined" or wait >= LONG_REFUSAL_SECONDS:
        account.stopped_by = refusal
        account.halted.set()
        return 0.0
    return float(wait)


async def _run(target: Target, style: str, plans: Sequence[tuple[str, Sequence[str]]],
               pace: float, budget_seconds: float, workers: int = 1) -> Outcome:
    vigie = target.stack.vigie
    policy = vigie.policies.current.clients[CLIENT]
    limits = policy.limits.inherit(vigie.settings.limits)
    budgets = (limits.records.count if limits.records else sys.maxsize,
               limits.distinct_patients.count if limits.distinct_patients else sys.maxsize)
    slack = max(plan_route(route).records for route in policy.routes)
    outcome = Outcome(style, [Account(user) for user, _ in plans], budgets=budgets,
                      slack=slack, replicas=len(target.proxies), backend=target.backend)
    started = time.monotonic()
    deadline = started + budget_seconds
    connections = httpx.Limits(max_connections=max(64, workers * len(plans)))
    async with httpx.AsyncClient(timeout=10, limits=connections) as http:
        await asyncio.gather(*(_attack(http, target, outcome, account, paths, pace, deadline,
                                       workers)
                               for account, (_, paths) in zip(outcome.accounts, plans,
                                                              strict=True)))
    outcome.seconds = time.monotonic() - started
    return outcome


def _ids(first: int, count: int) -> list[str]:
    return [f"/patients/{i}" for i in range(first, first + count)]


async def sequential(target: Target, budget_seconds: float) -> Outcome:
    return await _run(target, "fast sequential enumeration", [("scraper-1", _ids(1, 5000))],
                      0.0, budget_seconds)


async def slow_sequential(target: Target, budget_seconds: float) -> Outcome:
    return await _run(target, "slow sequential, under the rate",
                      [("scraper-3", _ids(2001, 3000))], PACE_SECONDS, budget_seconds)


async def paging(target: Target, budget_seconds: float) -> Outcome:
    paths = [f"/patients?last_name=&page={page}&page_size=50" for page in range(1, 101)]
    return await _run(target, "low-and-slow search paging", [("scraper-2", paths)],
                      PACE_SECONDS, budget_seconds)


async def accounts(target: Target, budget_seconds: float, count: int = 20) -> Outcome:
    plans = [(f"scraper-acct-{n}", _ids(1 + n * 250, 250)) for n in range(count)]
    return await _run(target, "many accounts, each under its limit", plans, PACE_SECONDS,
                      budget_seconds)


async def parallel_burst(target: Target, budget_seconds: float) -> Outcome:
    return await _run(target, f"parallel burst ({BURST} at once)",
                      [("scraper-burst", _ids(3001, 5000))], 0.0, budget_seconds,
                      workers=BURST)


async def spread(target: Target, budget_seconds: float) -> Outcome:
    return await _run(target, "spread over replicas",
                      [("scraper-spread", _ids(4001, 5000))], 0.0, budget_seconds)


STYLES: dict[str, Callable[[Target, float], Awaitable[Outcome]]] = {
    "sequential": sequential, "slow-sequential": slow_sequential, "paging": paging,
    "many-accounts": accounts, "parallel-burst": parallel_burst, "spread": spread}
MIN_REPLICAS = {"spread": 2}


@contextlib.asynccontextmanager
async def attack_target(state: Path, *, redis: str | None = None,
                        replicas: int = 1) -> AsyncIterator[Target]:
    """A demo stack and `replicas` proxies on it (sharing `redis` when given)."""
    extra = f"redis: {redis}\n" if redis else ""
    async with demo_stack(state, preferred_ports=False, extra_config=extra) as stack, \
            contextlib.AsyncExitStack() as more:
        proxies = [stack.proxy_url]
        for _ in range(replicas - 1):
            proxies.append(await more.enter_async_context(_replica(stack)))
        yield Target(stack, tuple(proxies), "redis" if redis else "memory")


@contextlib.asynccontextmanager
async def _replica(stack: DemoStack) -> AsyncIterator[str]:
    """One more proxy with the stack's configuration (policies, pseudonym key, Redis)."""
    settings = load_settings(stack.state / "vigie.yaml", {})
    proxy_sock, admin_sock = bind(HOST, 0), bind(HOST, 0)
    started, stop = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(serve(
        settings, vigie=Vigie.build(settings), proxy_socket=proxy_sock,
        admin_socket=admin_sock, started=lambda _: started.set(), stop=stop))
    try:
        await asyncio.wait({asyncio.create_task(started.wait()), serving},
                           return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()
        yield f"http://{HOST}:{proxy_sock.getsockname()[1]}"
    finally:
        stop.set()
        await asyncio.gather(serving, return_exceptions=True)


async def simulate(styles: Sequence[str], state: Path,
                   budget_seconds: float = DEFAULT_BUDGET_SECONDS, *,
                   redis: str | None = None, replicas: int = 1) -> list[Outcome]:
    """Each style against a fresh stack, so one style's quarantine does not help another."""
    outcomes = []
    for index, style in enumerate(styles):
        run_state = state / f"{index}-{style}"
        run_state.mkdir()
        count = max(replicas, MIN_REPLICAS.get(style, 1))
        try:
            async with attack_target(run_state, redis=redis, replicas=count) as target:
                outcomes.append(await STYLES[style](target, budget_seconds))
        finally:
            if redis:
                await _forget(redis)
    return outcomes


async def _forget(url: str, prefix: str = "vigie:") -> None:
    """Drop the demo client's shared state (budgets, alert, quarantines) after a style:
    the next one starts afresh, as it does on memory."""
    from redis.asyncio import Redis

    connection = Redis.from_url(url)
    try:
        keys = [key async for key in connection.scan_iter(match=f"{prefix}{{{CLIENT}*",
                                                          count=1000)]
        if keys:
            await connection.delete(*keys)
        index = f"{prefix}quarantines"
        fields = [f for f in await connection.hkeys(index)
                  if (f.decode() if isinstance(f, bytes) else f).startswith(f"{CLIENT}\x1f")]
        if fields:
            await connection.hdel(index, *fields)
    finally:
        await connection.aclose()


def report(outcomes: Sequence[Outcome]) -> str:
    lines = [f"{'style':36} {'state':>9} {'accounts':>8} {'requests':>8} {'records':>7} "
             f"{'patients':>8} {'<refusal':>9} {'<quarant.':>9} {'seconds':>7}  "
             f"{'first refused':34} stopped by"]
    for o in outcomes:
        verdict = o.stopped_by if o.stopped else f"NOT STOPPED ({o.stopped_by})"
        state = f"{o.backend}×{o.replicas}"
        lines.append(f"{o.style:36} {state:>9} {len(o.accounts):>8} {o.requests:>8} "
                     f"{o.records:>7} {o.patients:>8} {_slash(o.before_refusal):>9} "
                     f"{_slash(o.before_quarantine):>9} {o.seconds:>7.1f}  "
                     f"{o.first_refusal or '-':34} {verdict}")
    records, patients = outcomes[0].budgets if outcomes else (0, 0)
    over = [o.style for o in outcomes if not o.within_budgets]
    lines.append(f"budgets per account: {records} records, {patients} distinct patients "
                 "(<refusal, <quarant.: records/patients disclosed before the first refusal "
                 "and the first quarantine): "
                 + (f"EXCEEDED by {', '.join(over)}" if over else
                    "never exceeded by more than one response"))
    return "\n".join(lines)


def _slash(found: tuple[int, int] | None) -> str:
    return "-" if found is None else f"{found[0]}/{found[1]}"


def main(style: str = "all", budget_seconds: float = DEFAULT_BUDGET_SECONDS,
         as_json: bool = False, redis: str | None = None, replicas: int = 1) -> int:
    import uvloop

    styles = list(STYLES) if style == "all" else [style]
    if not as_json:
        print("Simulating extraction against a private demo stack (gp-frontdesk budgets: "
              "120 requests/minute, 2000 records/hour, 300 distinct patients/day per user; "
              f"{budget_seconds:g} s per style)...", flush=True)
    with tempfile.TemporaryDirectory(prefix="vigie-attack-") as tmp, \
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        outcomes = runner.run(simulate(styles, Path(tmp), budget_seconds, redis=redis,
                                       replicas=replicas))
    if as_json:
        print(orjson.dumps([o.as_dict() for o in outcomes], option=orjson.OPT_INDENT_2).decode())
    else:
        print(report(outcomes))
    failed = [o.style for o in outcomes if not (o.stopped and o.within_budgets)]
    if failed:
        print(f"not stopped within the budgets: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


__all__ = ["STYLES", "Account", "Outcome", "Target", "attack_target", "main", "report",
           "simulate"]
