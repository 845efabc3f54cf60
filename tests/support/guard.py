"""Factories for guard tests: settings, policies, identities, grants, decisions, Redis.

Objects are built directly (no proxy): the guard is a stage that takes an Identity,
a Grant and a Decision. Redis comes from VIGIE_TEST_REDIS (default
redis://127.0.0.1:6379/14); a throwaway `redis-server` can be started on a free port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import redis

from support.servers import free_port
from vigie.config import GuardSettings, Settings
from vigie.context import Decision, Grant, Identity
from vigie.guard import Guard, GuardStore, GuardTuning, MemoryStore, RedisStore, SecurityEvents
from vigie.policy.model import ClientPolicy, Mode, QueryRule, Route
from vigie.pseudonym import Pseudonymizer
from vigie.rates import Limits, Rate
from vigie.telemetry.metrics import Metrics

REDIS_URL = os.environ.get("VIGIE_TEST_REDIS", "redis://127.0.0.1:6379/14")
PSEUDONYM_KEY = b"guard-tests-pseudonym-key-0123456789abcdef"

READ = Route(name="read-patient", methods=frozenset({"GET"}), path="/patients/{id}",
             segments=("patients", None), params=("id",))
SEARCH = Route(name="search-patients", methods=frozenset({"GET"}), path="/patients",
               segments=("patients",), params=(),
               query=QueryRule(frozenset({"last_name", "birth_date", "page", "page_size"}),
                               {"page_size": 50}))

GENEROUS = Limits(requests=Rate.parse("100000/minute"), records=Rate.parse("1000000/hour"),
                  distinct_patients=Rate.parse("1000000/day"), enumeration=True)


def limits(requests: str | None = None, records: str | None = None,
           patients: str | None = None, enumeration: bool | None = None) -> Limits:
    return Limits(
        requests=Rate.parse(requests) if requests else None,
        records=Rate.parse(records) if records else None,
        distinct_patients=Rate.parse(patients) if patients else None,
        enumeration=enumeration,
    )


def settings(*, global_limits: Limits = GENEROUS, decoys: tuple[str, ...] = (),
             quarantine_minutes: int = 15, events_path: str = "-") -> Settings:
    return Settings(upstream="http://upstream.invalid", limits=global_limits,
                    guard=GuardSettings(quarantine_minutes=quarantine_minutes,
                                        decoy_ids=decoys, events_path=events_path))


def policy(client: str = "gp-frontdesk", *, principal: Limits | None = None,
           client_limits: Limits | None = None, mode: Mode | None = None) -> ClientPolicy:
    return ClientPolicy(client=client, routes=(READ, SEARCH), mode=mode,
                        limits=principal or Limits(), client_limits=client_limits)


def identity(client: str = "gp-frontdesk", subject: str = "dr-house") -> Identity:
    return Identity(issuer="https://idp.test", client=client, subject=subject,
                    scopes=frozenset({"patient.read"}), claims={"sub": subject})


def read(pol: ClientPolicy, patient_id: str, mode: Mode = Mode.ENFORCE) -> Grant:
    return Grant(policy=pol, route=READ, path=f"/patients/{patient_id}", query="",
                 params={"id": patient_id}, mode=mode)


def search(pol: ClientPolicy, query: str, mode: Mode = Mode.ENFORCE) -> Grant:
    return Grant(policy=pol, route=SEARCH, path="/patients", query=query, params={},
                 mode=mode)


def decision(grant: Grant | None = None) -> Decision:
    made = Decision(request_id=uuid.uuid4().hex, method="GET")
    if grant is not None:
        made.route = grant.route.name
        made.mode = grant.mode
    return made


def answered(made: Decision, status: int = 200, patients: list[str] | None = None,
             withheld: int = 0) -> Decision:
    """Fill in what the later stages would have written before `observe`."""
    made.status = status
    made.patients = list(patients or [])
    made.records = len(made.patients)
    made.withheld = withheld
    return made


@dataclass
class GuardKit:
    """A guard wired to a store, with the metrics and events it writes."""

    guard: Guard
    metrics: Metrics
    events_path: Path
    pseudonymizer: Pseudonymizer = field(default_factory=lambda: Pseudonymizer(PSEUDONYM_KEY))

    def events(self) -> list[dict[str, object]]:
        import orjson

        if not self.events_path.exists():
            return []
        return [orjson.loads(line) for line in self.events_path.read_bytes().splitlines()]

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def pseudonym(self, client: str = "gp-frontdesk", subject: str = "dr-house") -> str:
        return self.pseudonymizer.principal(client, subject)


def make_guard(store: GuardStore, tmp: Path, *, conf: Settings | None = None,
               tuning: GuardTuning | None = None, metrics: Metrics | None = None) -> GuardKit:
    metrics = metrics or Metrics(process_collectors=False)
    conf = conf or settings()
    events_path = tmp / f"events-{uuid.uuid4().hex[:8]}.jsonl"
    conf = replace(conf, guard=replace(conf.guard, events_path=str(events_path)))
    pseudonymizer = Pseudonymizer(PSEUDONYM_KEY)
    guard = Guard(conf, metrics, pseudonymizer, store, tuning=tuning,
                  events=SecurityEvents(str(events_path)))
    return GuardKit(guard, metrics, events_path, pseudonymizer)


# -- Redis ---------------------------------------------------------------------------------
def redis_available(url: str = REDIS_URL) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def require_redis(url: str = REDIS_URL) -> None:
    """Skip locally without Redis; in CI a missing Redis is a failure, never a skip."""
    if redis_available(url):
        return
    if os.environ.get("CI"):
        pytest.fail(f"Redis unreachable at {url} and CI is set")
    pytest.skip(f"Redis unreachable at {url}")


def unique_prefix() -> str:
    return f"vigie-test:{uuid.uuid4().hex[:12]}:"


def cleanup(prefix: str, url: str = REDIS_URL) -> None:
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_store(prefix: str, metrics: Metrics | None = None, url: str = REDIS_URL,
                **options: float) -> RedisStore:
    return RedisStore(url, prefix=prefix, metrics=metrics, fallback=MemoryStore(),
                      **options)  # type: ignore[arg-type]


class ThrowawayRedis:
    """A private redis-server on a free port, started and killed by the test."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI"):
                pytest.fail("redis-server is not installed and CI is set")
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if redis_available(self.url):
                return
            time.sleep(0.02)
        self.kill()
        pytest.fail("throwaway redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            self.process = None
