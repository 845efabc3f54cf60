"""Peak RSS of a vigie process while it streams a large NDJSON export.

    .venv/bin/python bench/export_rss.py --gigabytes 1

Starts a streaming legacy-API stand-in and a JWKS server in this process, and
`vigie serve --config ...` as a subprocess in front of them (a pseudonymizing
research-export policy: every record is parsed, minimized and re-serialized).
Reads the whole export through vigie, checks that no NIR came through, and
prints vigie's VmRSS before, VmHWM (peak) after, and the throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ISSUER = "https://idp.bench.example"
AUDIENCE = "patient-api"
NIR = "185057800608491"
POLICY = """\
client: research-export
routes:
  - name: export
    methods: [GET]
    path: /export.ndjson
    scopes: [research.export]
    response:
      records: "$"
      fields:
        id: pseudonymize
        sex: keep
        birth_date: {generalize: year}
        address.postcode: {generalize: department}
        notes: keep
      unlisted: drop
limits:
  requests: 1000/minute
  records: 1000000000/day
  distinct_patients: 1000000000/day
  enumeration: false
"""


def record(i: int) -> bytes:
    return orjson.dumps({
        "id": f"P{i:09d}", "last_name": "Durand", "first_name": "Anne", "sex": "F",
        "nir": NIR, "birth_date": "1985-05-17",
        "address": {"line": "12 rue des Lilas", "postcode": "20200", "city": "Bastia"},
        "notes": f"seen on 2024-01-02, NIR {NIR} checked", "practice_id": "P1",
    }) + b"\n"


def block(records: int, offset: int = 0) -> bytes:
    return b"".join(record(offset + i) for i in range(records))


def upstream_app(total_bytes: int, piece: bytes | None = None,
                 media_type: str = "application/x-ndjson") -> Starlette:
    """An export of about `total_bytes` (`?bytes=N` for less), written in ~1 MiB pieces."""
    chunk = piece if piece is not None else block(4000)

    async def export(request: Request) -> Response:
        limit = int(request.query_params.get("bytes", total_bytes))

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            while sent < limit:
                yield chunk
                sent += len(chunk)
        return StreamingResponse(body(), media_type=media_type)
    return Starlette(routes=[Route("/export.ndjson", export)])


def jwks_app(key: rsa.RSAPrivateKey) -> Starlette:
    jwk = orjson.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="b1", use="sig", alg="RS256")

    async def certs(request: Request) -> Response:
        return JSONResponse({"keys": [jwk]})
    return Starlette(routes=[Route("/certs", certs)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def serve(app: Starlette) -> Iterator[str]:
    port = free_port()
    server = _Quiet(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                   log_config=None, access_log=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


@contextlib.contextmanager
def vigie(tmp: Path, upstream: str, jwks: str, policy: str = POLICY
          ) -> Iterator[tuple[int, str]]:
    """`vigie serve` as a subprocess: (pid, proxy base URL)."""
    (tmp / "policies").mkdir()
    (tmp / "policies" / "policy.yaml").write_text(policy)
    (tmp / "pseudonym.key").write_bytes(os.urandom(32).hex().encode())
    port, admin = free_port(), free_port()
    config = tmp / "vigie.yaml"
    config.write_text(
        f"upstream: {upstream}\nlisten: {{host: 127.0.0.1, port: {port}}}\n"
        f"admin: {{host: 127.0.0.1, port: {admin}}}\npolicies: {tmp / 'policies'}\n"
        f"pseudonym_key_file: {tmp / 'pseudonym.key'}\naudit: {{path: {tmp / 'audit.jsonl'}}}\n"
        f"issuers:\n  - issuer: {ISSUER}\n    audiences: [{AUDIENCE}]\n"
        f"    jwks_url: {jwks}/certs\n    algorithms: [RS256]\n    client_claim: azp\n"
        "upstream_timeout_seconds: 30\nmax_response_bytes: 4000000000\n")
    process = subprocess.Popen([sys.executable, "-m", "vigie", "serve", "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("vigie did not start: "
                                   + (process.stderr.read() if process.stderr else b"").decode())
            time.sleep(0.05)
        yield process.pid, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def token(key: rsa.RSAPrivateKey, client: str = "research-export",
          scope: str = "research.export") -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "azp": client, "sub": "bench",
                       "iat": now, "nbf": now, "exp": now + 3600, "scope": scope},
                      key, algorithm="RS256", headers={"kid": "b1"})


def measure(total_bytes: int) -> dict[str, Any]:
    """Stream an export of about `total_bytes` through vigie; sizes and RSS in KiB."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {"Authorization": f"Bearer {token(key)}"}
    with tempfile.TemporaryDirectory() as folder, serve(upstream_app(total_bytes)) as upstream, \
            serve(jwks_app(key)) as jwks, vigie(Path(folder), upstream, jwks) as (pid, base):
        with httpx.Client(base_url=base, timeout=60) as client:
            # warm-up: a small export, so imports and pools are counted in the baseline
            client.get("/export.ndjson?bytes=1", headers=headers)
            rss_before = status_kb(pid, "VmRSS")
            hwm_before = status_kb(pid, "VmHWM")
            records = received = 0
            leaked = False
            started = time.perf_counter()
            with client.stream("GET", "/export.ndjson", headers=headers) as response:
                status = response.status_code
                tail = b""
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    leaked = leaked or NIR.encode() in tail[-20:] + chunk
                    records += chunk.count(b"\n")
                    tail = chunk
            seconds = time.perf_counter() - started
            first = None
            if status == 200:
                first = orjson.loads(client.get("/export.ndjson?bytes=1", headers=headers)
                                     .content.split(b"\n", 1)[0])
            return {"status": status, "records": records, "bytes_out": received,
                    "seconds": seconds, "rss_before_kib": rss_before,
                    "hwm_before_kib": hwm_before, "hwm_after_kib": status_kb(pid, "VmHWM"),
                    "nir_leaked": leaked, "first_record": first}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    args = parser.parse_args()
    total = int(args.gigabytes * 1024 ** 3)
    result = measure(total)
    mib = 1024
    print(f"export of {total / 1024 ** 2:.0f} MiB upstream: status {result['status']}, "
          f"{result['records']} records, {result['bytes_out'] / 1024 ** 2:.0f} MiB out "
          f"in {result['seconds']:.1f} s "
          f"({total / 1024 ** 2 / result['seconds']:.1f} MiB/s upstream)")
    print(f"vigie RSS before: {result['rss_before_kib'] / mib:.1f} MiB; peak (VmHWM) after: "
          f"{result['hwm_after_kib'] / mib:.1f} MiB; "
          f"growth: {(result['hwm_after_kib'] - result['rss_before_kib']) / mib:.1f} MiB")
    print(f"NIR leaked: {result['nir_leaked']}")
    return 0 if result["status"] == 200 and not result["nir_leaked"] else 1


if __name__ == "__main__":
    sys.exit(main())
