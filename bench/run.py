"""`make bench`: wrk against the direct upstream, nginx, a naive proxy and Vigie.

All on this machine, in one run, interleaved over rounds so that drift hits
every target alike. Cases: a 1 KB patient record and a 100-record page. Vigie
runs with every feature on (JWT, policy, field rules, NIR scan, guard, audit to
a file), with in-memory guard state, with Redis, and with the library forwarders
(`VIGIE_UPSTREAM_CLIENT=httpx`, `VIGIE_UPSTREAM_CLIENT=aiohttp`) instead of the native one,
and with the native client to an https:// upstream (nginx with a certificate from a
throwaway CA, verified through `upstream_ca_file`): `vigie/https`.
`vigie+redis/2w` is the Redis variant with `workers: 2` (two processes on one port).
Prints requests/s, p50/p99 and the ratios; `--markdown FILE` appends the table to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from vigie.demo.patients import patient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.servers import free_port  # noqa: E402
from support.upstream_pki import make_pki  # noqa: E402  - the test CA, one definition

VENV_BIN = Path(sys.executable).parent
POLICY = """\
client: bench
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    scopes: [patient.read]
    response:
      records: "$"
      fields:
        id: keep
        last_name: keep
        first_name: keep
        birth_date: {generalize: year}
        nir: {mask: last2}
        address.postcode: {generalize: department}
        notes: keep
  - name: search-patients
    methods: [GET]
    path: /patients
    scopes: [patient.read]
    query: {allowed: [last_name, page, page_size], max: {page_size: 100}}
    response:
      records: "$.items[*]"
      fields: {id: keep, last_name: keep, first_name: keep, birth_date: {generalize: year},
               notes: keep}
limits:
  requests: 100000000/minute
  records: 1000000000/hour
  distinct_patients: 100000000/day
  enumeration: false
  concurrency: 100000
"""


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def record_1k() -> dict[str, object]:
    record = dict(patient(42))
    record["notes"] = (str(record.get("notes") or "") + " Suivi tensionnel. " * 40)[:520]
    return record


@contextlib.contextmanager
def processes(work: Path, redis_port: int) -> Iterator[dict[str, str]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(cmd: list[str], env: dict[str, str] | None = None) -> None:
        log = open(work / f"{len(procs)}.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, **(env or {})}))

    (up, up_tls, ngx, naive, vig, vig_redis, vig_httpx, vig_aiohttp, vig_https, vig_2w,
     admin1, admin2, admin3, admin4, admin5, admin6) = (free_port() for _ in range(16))
    pki = make_pki(work / "pki")
    work.chmod(0o755)  # nginx workers drop root and must read the static files
    static = work / "static"
    (static / "patients").mkdir(parents=True)
    (static / "patients" / "42").write_bytes(orjson.dumps(record_1k()))
    page = {"items": [record_1k() | {"id": str(i)} for i in range(100)], "page": 1, "total": 100}
    (static / "page.json").write_bytes(orjson.dumps(page))
    (work / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  default_type application/json;
  upstream legacy {{ server 127.0.0.1:{up}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{up};
    root {static};
    location = /patients {{ try_files /page.json =404; }}
  }}
  server {{
    listen 127.0.0.1:{up_tls} ssl;
    ssl_certificate {pki.server_cert};
    ssl_certificate_key {pki.server_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    root {static};
    location = /patients {{ try_files /page.json =404; }}
  }}
  server {{
    listen 127.0.0.1:{ngx};
    location / {{ proxy_pass http://legacy; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }}
  }}
}}
""")
    start(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)])
    start(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"])
    start([str(VENV_BIN / "uvicorn"), "naive_proxy:app", "--app-dir", str(ROOT / "bench"),
           "--port", str(naive), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
           "--log-level", "warning"], {"NAIVE_UPSTREAM": f"http://127.0.0.1:{up}"})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = orjson.loads(RSAAlgorithm.to_jwk(key.public_key())) | {"kid": "b1", "use": "sig"}
    (work / "jwks.json").write_bytes(orjson.dumps({"keys": [jwk]}))
    (work / "policies").mkdir()
    (work / "policies" / "bench.yaml").write_text(POLICY)
    (work / "psn.key").write_bytes(b"b" * 48)
    variants = ((vig, admin1, "", {}),
                (vig_https, admin5, f"upstream_ca_file: {pki.ca}\n",
                 {"VIGIE_UPSTREAM": f"https://localhost:{up_tls}"}),
                (vig_redis, admin2, f"redis: redis://127.0.0.1:{redis_port}/0\n", {}),
                (vig_httpx, admin3, "", {"VIGIE_UPSTREAM_CLIENT": "httpx"}),
                (vig_aiohttp, admin4, "", {"VIGIE_UPSTREAM_CLIENT": "aiohttp"}),
                (vig_2w, admin6, f"redis: redis://127.0.0.1:{redis_port}/0\nworkers: 2\n", {}))
    for port, admin, extra, env in variants:
        conf = work / f"vigie-{port}.yaml"
        conf.write_text(
            f"upstream: http://127.0.0.1:{up}\nlisten: {{host: 127.0.0.1, port: {port}}}\n"
            f"admin: {{host: 127.0.0.1, port: {admin}}}\npolicies: {work / 'policies'}\n"
            f"pseudonym_key_file: {work / 'psn.key'}\naudit: {{path: {work}/audit-{port}.jsonl}}\n"
            f"guard: {{events_path: {work}/events-{port}.jsonl}}\n" + extra +
            "issuers:\n  - issuer: https://idp.bench.example\n    audiences: [patient-api]\n"
            f"    jwks_file: {work / 'jwks.json'}\n    algorithms: [RS256]\n")
        start([str(VENV_BIN / "vigie"), "serve", "--config", str(conf)], env)
    try:
        for port in (up, up_tls, ngx, naive, vig, vig_redis, vig_httpx, vig_aiohttp, vig_https,
                     vig_2w):
            wait_port(port)
        now = int(time.time())
        token = jwt.encode({"iss": "https://idp.bench.example", "aud": "patient-api",
                            "azp": "bench", "sub": "bench-user", "scope": "patient.read",
                            "iat": now, "nbf": now, "exp": now + 7200}, key, "RS256",
                           headers={"kid": "b1"})
        yield {"direct": f"http://127.0.0.1:{up}", "nginx": f"http://127.0.0.1:{ngx}",
               "naive": f"http://127.0.0.1:{naive}", "vigie": f"http://127.0.0.1:{vig}",
               "vigie+redis": f"http://127.0.0.1:{vig_redis}",
               "vigie/httpx": f"http://127.0.0.1:{vig_httpx}",
               "vigie/aiohttp": f"http://127.0.0.1:{vig_aiohttp}",
               "vigie/https": f"http://127.0.0.1:{vig_https}",
               "vigie+redis/2w": f"http://127.0.0.1:{vig_2w}", "token": token}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_LAT = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)", re.M)


def wrk(url: str, token: str, seconds: int, connections: int) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True).stdout
    match = _RPS.search(out)
    if not match or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed against {url}:\n{out}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    lat = {p: float(v) * scale[u] for p, v, u in _LAT.findall(out)}
    return float(match.group(1)), lat.get("50", 0.0), lat.get("99", 0.0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--only", help="comma-separated targets (naive and nginx always run)")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} missing (scripts/bench-tools.sh installs it)", file=sys.stderr)
            return 2
    cases = {"1 KB record": "/patients/42", "100-record page": "/patients?page=1&page_size=100"}
    targets = ["direct", "nginx", "naive", "vigie", "vigie+redis", "vigie/httpx", "vigie/aiohttp",
               "vigie/https", "vigie+redis/2w"]  # 2w: `workers: 2` (issue 15)
    if args.only:
        chosen = {"nginx", "naive", *args.only.split(",")}
        targets = [target for target in targets if target in chosen]
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="vigie-bench-") as tmp, \
            processes(Path(tmp), free_port()) as urls:
        for path in cases.values():
            for target in targets:  # warm-up
                wrk(urls[target] + path, urls["token"], 1, args.connections)
        for _ in range(args.rounds):
            for case, path in cases.items():
                for target in targets:
                    results.setdefault((case, target), []).append(
                        wrk(urls[target] + path, urls["token"], args.seconds, args.connections))
    lines = [f"### {dt.date.today().isoformat()} — {args.rounds} rounds × {args.seconds} s, "
             f"wrk -t1 -c{args.connections}, {os.cpu_count()} cores",
             "", "| case | target | req/s | p50 ms | p99 ms | vs naive | vs nginx |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for case in cases:
        med = {t: tuple(statistics.median(r[i] for r in results[(case, t)]) for i in range(3))
               for t in targets}
        for target in targets:
            rps, p50, p99 = med[target]
            lines.append(f"| {case} | {target} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | "
                         f"{rps / med['naive'][0]:.2f} | {rps / med['nginx'][0]:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.markdown:
        with args.markdown.open("a") as out:
            out.write("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
