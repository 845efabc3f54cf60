"""`vigie serve` with `workers: N` as a subprocess, and which worker holds which socket.

`worker_of_ports(pids)` reads /proc: the local TCP ports of each process's sockets,
so that an upstream that records its peer's port can tell which worker sent a request.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import jwt
import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from support.guard import REDIS_URL
from support.harness import AUDIENCE, ISSUER, Keys

VIGIE = [sys.executable, "-m", "vigie"]
POLICY = """\
client: app
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    response:
      records: "$"
      fields: {id: keep, nir: {mask: last2}}
      unlisted: drop
limits:
  requests: 100000/minute
  records: 100000/hour
  distinct_patients: 100000/day
  enumeration: false
  concurrency: 64
"""


def serve_config(tmp: Path, upstream: str, keys: Keys, port: int, admin: int,
                 policy: str = POLICY, extra: str = "") -> Path:
    """A vigie.yaml on loopback ports with one policy (`app`), a JWKS file and a file audit."""
    (tmp / "policies").mkdir(exist_ok=True)
    (tmp / "policies" / "app.yaml").write_text(policy)
    (tmp / "jwks.json").write_bytes(orjson.dumps(keys.jwks()))
    path = tmp / "vigie.yaml"
    path.write_text(
        f"upstream: {upstream}\nlisten: {{host: 127.0.0.1, port: {port}}}\n"
        f"admin: {{host: 127.0.0.1, port: {admin}}}\npolicies: ./policies\n"
        f"audit: {{path: {tmp / 'audit.jsonl'}}}\nshutdown_grace_seconds: 10\n"
        f"issuers:\n  - issuer: {ISSUER}\n    audiences: [{AUDIENCE}]\n"
        "    jwks_file: ./jwks.json\n    algorithms: [RS256]\n" + extra)
    return path


def config(tmp: Path, upstream: str, keys: Keys, port: int, admin: int,
           extra: str = "workers: 2\n") -> Path:
    return serve_config(tmp, upstream, keys, port, admin, POLICY, extra)


def accepts(port: int) -> bool:
    """Whether something listens on the loopback `port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def start(tmp: Path, config_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VIGIE_REDIS": REDIS_URL,
           "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")}
    return subprocess.Popen([*VIGIE, "serve", "--config", str(config_path)],
                            stderr=subprocess.PIPE, cwd=tmp, env=env)


def wait_ready(admin: int, proc: subprocess.Popen[bytes], workers: int, tmp: Path) -> list[int]:
    """Wait until every worker has written its metrics file and one answers ready."""
    deadline = time.monotonic() + 90  # a loaded machine starts processes slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
        pids = worker_pids(proc.pid)
        try:
            ready = httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=0.5).status_code
        except httpx.HTTPError:
            ready = 0
        if ready == 200 and len(pids) == workers:
            return pids
        time.sleep(0.05)
    raise AssertionError("vigie workers never became ready")


def worker_pids(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return sorted(found)


def token(keys: Keys) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "azp": "app", "sub": "dr-w",
                       "iat": now, "exp": now + 300}, keys.private, "RS256",
                      headers={"kid": keys.kid})


def worker_of_ports(pids: Iterable[int]) -> dict[int, int]:
    """Local TCP port -> pid of the worker holding that socket (IPv4 loopback)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    ports: dict[int, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports[int(fields[1].split(":")[1], 16)] = inodes[fields[9]]
    return ports


def requests_of(metrics_dir: Path, pid: int) -> float:
    """vigie_requests_total in one worker's own metrics file."""
    with tempfile.TemporaryDirectory() as alone:
        source = metrics_dir / f"counter_{pid}.db"
        if not source.exists():
            return 0.0
        shutil.copy(source, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=alone)  # type: ignore[no-untyped-call]
        return sum(sample.value for family in registry.collect()
                   for sample in family.samples if sample.name == "vigie_requests_total")
