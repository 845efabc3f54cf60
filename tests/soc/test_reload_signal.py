"""SIGHUP through a real `vigie serve` process: a failing reload moves the counter, logs
the error at INFO-level stderr, and the previous policies keep being served."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from support.harness import AUDIENCE, ISSUER, Keys
from support.servers import free_port
from support.soc import SOC_POLICY, value


def test_sighup_reload_failure_keeps_the_old_policies(tmp_path: Path, keys: Keys) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    policy = policies / "soc-app.yaml"
    policy.write_text(SOC_POLICY)
    (tmp_path / "jwks.json").write_bytes(orjson.dumps(keys.jwks()))
    proxy_port, admin_port = free_port(), free_port()
    (tmp_path / "vigie.yaml").write_text(
        "upstream: http://127.0.0.1:9\n"
        f"listen: {{host: 127.0.0.1, port: {proxy_port}}}\n"
        f"admin: {{host: 127.0.0.1, port: {admin_port}}}\n"
        f"policies: {policies}\n"
        f"audit: {{path: {tmp_path / 'audit.jsonl'}}}\n"
        "issuers:\n"
        f"  - issuer: {ISSUER}\n    audiences: [{AUDIENCE}]\n"
        f"    jwks_file: {tmp_path / 'jwks.json'}\n    algorithms: [RS256]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIE_", "OTEL_"))}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "vigie", "serve", "--config", str(tmp_path / "vigie.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    admin = f"http://127.0.0.1:{admin_port}"
    try:
        deadline = time.monotonic() + 60  # waits for readiness; generous for a loaded machine
        while True:
            try:
                if httpx.get(f"{admin}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "vigie did not start"
            time.sleep(0.1)
        # Same size, same mtime: invisible to the file watcher, so only SIGHUP reloads it.
        stat = policy.stat()
        broken = SOC_POLICY.replace("100000/minute", "100000/minutx")
        assert len(broken) == len(SOC_POLICY)
        policy.write_text(broken)
        os.utime(policy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        time.sleep(2.5)  # more than one watcher period
        metrics = httpx.get(f"{admin}/metrics", timeout=5).text
        assert value(metrics, "vigie_policy_reload_failures_total") == 0
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while value(httpx.get(f"{admin}/metrics", timeout=5).text,
                    "vigie_policy_reload_failures_total") < 1:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.1)
        assert httpx.get(f"{admin}/readyz", timeout=2).status_code == 200
        metrics = httpx.get(f"{admin}/metrics", timeout=5).text
        assert value(metrics, "vigie_policy_reload_failures_total") == 1
        assert 'vigie_anomaly_score{client="soc-app"} 0.0' in metrics  # old policies live
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
        assert process.returncode == 0
        log = stderr.decode()
        assert "policy reload failed, previous policies kept" in log
        assert "soc-app.yaml" in log
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)
