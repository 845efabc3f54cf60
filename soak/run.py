"""`python -m soak.run --seconds 1800`: the soak with faults; exits 1 on any broken promise.

Checked at the end: no undocumented status (documented: 502/503/504 and the refusals), no
NIR in any response, RSS and file descriptors of the replica that is never restarted
flat, every request that reached the upstream has its audit line, every replica's hash
chain verifies, and every extraction episode was stopped by a 429.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from soak import faults, policies
from soak.servers import load_key
from soak.stack import (
    HOST,
    Service,
    free_port,
    http_ready,
    python,
    redis_ready,
    vigie_config,
    write_key,
)
from soak.traffic import Traffic
from vigie.audit.log import rotated_files
from vigie.demo.issuer import DemoIssuer

PATIENTS = 2000


@dataclass
class Stack:
    state: Path
    upstream: Service
    issuer: Service
    redis: Service
    replicas: list[Service]
    urls: dict[str, str]
    issuer_url: str
    services: list[Service] = field(default_factory=list)


def build(state: Path) -> Stack:
    upstream_port, issuer_port, redis_port = free_port(), free_port(), free_port()
    upstream_url, issuer_url = f"http://{HOST}:{upstream_port}", f"http://{HOST}:{issuer_port}"
    write_key(state / "issuer.pem")
    (state / "pseudonym.key").write_text(secrets.token_hex(32))
    (state / "admin.token").write_text(secrets.token_urlsafe(24))
    policies.write(state / "policies", 0)
    upstream = Service("upstream", python("-m", "soak.servers", "upstream", "--port",
                                          str(upstream_port), "--log",
                                          str(state / "upstream-requests.log"),
                                          "--count", str(PATIENTS)),
                       http_ready(f"{upstream_url}/health"), state / "upstream.out")
    issuer = Service("issuer", python("-m", "soak.servers", "issuer", "--port",
                                      str(issuer_port), "--key", str(state / "issuer.pem"),
                                      "--issuer-url", issuer_url),
                     http_ready(f"{issuer_url}/jwks"), state / "issuer.out")
    redis = Service("redis", ["redis-server", "--port", str(redis_port), "--bind", HOST,
                              "--save", "", "--appendonly", "no"], redis_ready(redis_port),
                    state / "redis.out")
    replicas, urls = [], {}
    for name in ("replica-a", "replica-b"):
        port, admin = free_port(), free_port()
        config = vigie_config(state, name, upstream=upstream_url, issuer=issuer_url,
                              redis=f"redis://{HOST}:{redis_port}/0", port=port, admin=admin)
        replicas.append(Service(name, python("-m", "vigie", "serve", "--config", str(config)),
                                http_ready(f"http://{HOST}:{admin}/readyz"),
                                state / f"{name}.out"))
        urls[name] = f"http://{HOST}:{port}"
    return Stack(state, upstream, issuer, redis, replicas, urls, issuer_url,
                 [upstream, issuer, redis, *replicas])


def fault_plan(stack: Stack, log: faults.FaultLog) -> list[Callable[[], Awaitable[None]]]:
    b = stack.replicas[1]
    return [
        lambda: faults.restart(stack.upstream, signal.SIGKILL, 1.0, log, "upstream killed"),
        lambda: faults.restart(stack.redis, signal.SIGTERM, 1.0, log, "redis restarted"),
        lambda: faults.restart(stack.issuer, signal.SIGTERM, 3.0, log, "JWKS down"),
        lambda: faults.drain_replica(b, log),
        lambda: faults.restart(stack.redis, signal.SIGKILL, 3.0, log, "redis killed"),
        lambda: faults.restart(stack.upstream, signal.SIGTERM, 0.5, log, "upstream restarted"),
    ]


async def sample(replica: Service, until: float, every: float,
                 into: list[tuple[int, int]]) -> None:
    while time.monotonic() < until:
        into.append(replica.resources())
        await asyncio.sleep(every)


@dataclass
class Result:
    traffic: Traffic
    faults: faults.FaultLog
    samples: list[tuple[int, int]]  # (RSS KiB, open fds) of the replica never restarted


async def drive(stack: Stack, seconds: float, doctors: int) -> Result:
    issuer = DemoIssuer(stack.issuer_url, key=load_key(stack.state / "issuer.pem"))
    log = faults.FaultLog()
    samples: list[tuple[int, int]] = []
    until = time.monotonic() + seconds
    pause = max(2.0, seconds / 30)
    async with Traffic(stack.replicas, stack.urls, issuer, PATIENTS,
                       stack.state / "leaks.jsonl") as traffic:
        await asyncio.gather(
            *(traffic.doctor(f"dr-{n}", until) for n in range(doctors)),
            traffic.research(until), traffic.extractor(until),
            faults.inject(fault_plan(stack, log), until, pause),
            faults.reload_policies(stack.state / "policies", stack.replicas, until,
                                   min(60.0, max(5.0, seconds / 8)), log),
            sample(stack.replicas[0], until, max(1.0, seconds / 60), samples))
    return Result(traffic, log, samples)


def audit_ids(path: Path) -> set[str]:
    ids: set[str] = set()
    for file in (*rotated_files(path), path):
        with file.open("rb") as handle:
            for line in handle:
                if line.strip():
                    ids.add(json.loads(line)["request_id"])
    return ids


def verify_chain(path: Path) -> bool:
    files = [str(p) for p in (*rotated_files(path), path)]
    out = subprocess.run(python("-m", "vigie", "audit", "verify", *files),
                         capture_output=True, check=False)
    return out.returncode == 0


def judge(stack: Stack, result: Result) -> tuple[list[str], dict[str, object]]:
    log, samples, tally = result.faults, result.samples, result.traffic.tally
    problems = list(log.problems)
    problems += [f"{count} x {what}" for what, count in tally.failures.items()]
    if tally.nir_leaks:
        problems.append(f"{tally.nir_leaks} responses carried a NIR")
    if tally.retried > max(5, tally.requests // 100):
        problems.append(f"{tally.retried} requests needed a retry (over 1 %)")
    judged = [e for e in tally.episodes if not e.cut_short]
    unstopped = [e for e in judged if not e.stopped]
    if unstopped:
        problems.append(f"{len(unstopped)} of {len(judged)} extraction episodes not stopped")
    received = {line for line in (stack.state / "upstream-requests.log").read_text().split()}
    audited: set[str] = set()
    for replica in stack.replicas:
        path = stack.state / f"audit-{replica.name}.jsonl"
        audited |= audit_ids(path)
        if not verify_chain(path):
            problems.append(f"{replica.name}: audit chain does not verify")
    missing = received - audited
    if missing:
        problems.append(f"{len(missing)} requests reached the upstream without an audit line")
    rss_growth = fd_growth = 0
    if len(samples) >= 8:
        quarter = len(samples) // 4
        base = samples[quarter: 2 * quarter] or samples[:1]
        rss_base = statistics.median(s[0] for s in base)
        fd_base = statistics.median(s[1] for s in base)
        rss_end = statistics.median(s[0] for s in samples[-3:])
        fd_end = statistics.median(s[1] for s in samples[-3:])
        rss_growth, fd_growth = int(rss_end - rss_base), int(fd_end - fd_base)
        if rss_end > rss_base * 1.25 + 20_000:
            problems.append(f"RSS of replica-a grew from {rss_base:.0f} to {rss_end:.0f} KiB")
        if fd_end > fd_base + 16:
            problems.append(f"open files of replica-a grew from {fd_base:.0f} to {fd_end:.0f}")
    worst = max((e.records for e in judged), default=0)
    figures: dict[str, object] = {
        "requests": tally.requests, "statuses": dict(sorted(tally.statuses.items())),
        "retried": tally.retried, "nir_leaks": tally.nir_leaks,
        "faults": len(log.events) - log.reloads, "policy_reloads": log.reloads,
        "replica_restarts": stack.replicas[1].starts - 1,
        "upstream_requests": len(received), "audited_requests": len(audited),
        "missing_audit_lines": len(missing),
        "extraction_episodes": len(judged), "episodes_stopped": len(judged) - len(unstopped),
        "most_records_in_an_episode": worst,
        "most_patients_in_an_episode": max((len(e.patients) for e in judged), default=0),
        "rss_growth_kib": rss_growth, "fd_growth": fd_growth,
        "rss_kib_end": samples[-1][0] if samples else 0,
    }
    return problems, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.run")
    parser.add_argument("--seconds", type=float, default=1800)
    parser.add_argument("--doctors", type=int, default=6)
    parser.add_argument("--keep", action="store_true", help="keep the state folder")
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="vigie-soak-"))
    stack = build(state)
    try:
        for service in stack.services:
            service.start()
        result = asyncio.run(drive(stack, args.seconds, args.doctors))
    finally:
        for service in reversed(stack.services):
            service.stop(signal.SIGTERM)
    problems, figures = judge(stack, result)
    print(json.dumps(figures, indent=2))
    for problem in problems:
        print(f"soak: FAILED: {problem}", file=sys.stderr)
    print(f"soak: state in {state}" if args.keep or problems else "soak: passed")
    if not args.keep and not problems:
        shutil.rmtree(state, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
