"""`workers: 2`: two processes on one port, one metrics view, one audit chain, a clean drain."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response

from support.harness import Keys, ScriptedUpstream
from support.servers import free_port, serve_in_thread
from support.workers import (
    VIGIE,
    accepts,
    config,
    requests_of,
    start,
    token,
    wait_ready,
    worker_of_ports,
)

NIR = "185057800608491"  # synthetic


def _merged(admin: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"http://127.0.0.1:{admin}/metrics", timeout=5).text
    return {family.name: [(sample.labels, sample.value) for sample in family.samples]
            for family in text_string_to_metric_families(text)}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_two_workers_serve_one_port_count_once_and_chain_one_audit(tmp_path: Path) -> None:
    keys, upstream = Keys(), ScriptedUpstream()
    peer_of: dict[str, int] = {}  # patient id -> the port the request came from

    async def patient(request: Request) -> Response:
        pid = request.url.path.rsplit("/", 1)[-1]
        assert request.client is not None
        peer_of[pid] = request.client.port
        return Response(orjson.dumps({"id": pid, "nir": NIR, "name": "x"}),
                        media_type="application/json")
    upstream.handler = patient
    port, admin = free_port(), free_port()
    with serve_in_thread(upstream.app()) as upstream_url:
        proc = start(tmp_path, config(tmp_path, upstream_url, keys, port, admin))
        try:
            pids = wait_ready(admin, proc, 2, tmp_path)
            headers = {"Authorization": f"Bearer {token(keys)}"}
            served: dict[int, set[str]] = {pid: set() for pid in pids}
            sent = 0
            deadline = time.monotonic() + 60
            while not all(served.values()):  # new connections until both workers answered
                assert time.monotonic() < deadline, f"one worker never served: {served}"
                sent += 1
                response = httpx.get(f"http://127.0.0.1:{port}/patients/{sent}",
                                     headers=headers, timeout=10)
                assert response.status_code == 200
                assert response.json()["nir"].endswith("91")
                ports = worker_of_ports(pids)
                served[ports[peer_of[str(sent)]]].add(str(sent))
            # the per-worker counters say the same, and /metrics adds them up
            metrics_dir = tmp_path / "metrics"
            assert all(requests_of(metrics_dir, pid) >= 1 for pid in pids)
            deadline = time.monotonic() + 10
            while True:
                merged = _merged(admin)
                total = sum(v for _, v in merged["vigie_requests"])
                if total == sent:
                    break
                assert time.monotonic() < deadline, (total, sent)
                time.sleep(0.05)
            assert total == sum(requests_of(metrics_dir, pid) for pid in pids)
            # a gauge is one series for the pod (livemin), not one per worker
            assert [labels for labels, _ in merged["vigie_upstream_up"]] == [{}]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            _stop(proc)
    audit = tmp_path / "audit.jsonl"
    verify = subprocess.run([*VIGIE, "audit", "verify", str(audit)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    exposed = subprocess.run([*VIGIE, "audit", "exposed", str(audit), "--client", "app",
                              "--format", "jsonl"], capture_output=True, text=True, timeout=60,
                             check=False)
    assert exposed.returncode == 0, exposed.stderr
    for patients in served.values():
        for patient_id in patients:
            assert f'"{patient_id}"' in exposed.stdout, (patient_id, exposed.stdout[:400])
    assert len(audit.read_text().splitlines()) == sent


def test_sigterm_drains_the_in_flight_requests_of_every_worker(tmp_path: Path) -> None:
    keys, upstream = Keys(), ScriptedUpstream()
    release = threading.Event()
    peers: list[int] = []

    async def held(request: Request) -> Response:
        assert request.client is not None
        peers.append(request.client.port)
        while not release.is_set():
            await asyncio.sleep(0.01)
        return Response(orjson.dumps({"id": "1"}), media_type="application/json")
    upstream.handler = held
    port, admin = free_port(), free_port()
    in_flight = 16  # one 4-tuple hash each: all on one worker has odds 2 in 65,536
    with serve_in_thread(upstream.app()) as upstream_url:
        proc = start(tmp_path, config(tmp_path, upstream_url, keys, port, admin))
        try:
            pids = wait_ready(admin, proc, 2, tmp_path)
            headers = {"Authorization": f"Bearer {token(keys)}"}
            results: list[int] = []

            def one(n: int) -> None:
                results.append(httpx.get(f"http://127.0.0.1:{port}/patients/{n}",
                                         headers=headers, timeout=30).status_code)
            threads = [threading.Thread(target=one, args=(n,)) for n in range(in_flight)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            while len(peers) < in_flight:
                assert time.monotonic() < deadline, "the requests never reached the upstream"
                time.sleep(0.02)
            ports = worker_of_ports(pids)
            assert {ports[peer] for peer in peers} == set(pids)  # both workers hold some
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while accepts(port):  # every worker stops accepting, none has exited
                assert time.monotonic() < deadline, "a worker kept listening"
                time.sleep(0.02)
            assert proc.poll() is None
            release.set()
            for thread in threads:
                thread.join(30)
            assert results == [200] * in_flight
            assert proc.wait(30) == 0
        finally:
            release.set()
            _stop(proc)


@pytest.mark.parametrize(("extra", "env", "where"), [
    ("workers: 2\n", {}, "vigie.yaml:12"),
    ("", {"VIGIE_WORKERS": "3"}, "environment VIGIE_WORKERS"),
])
def test_several_workers_without_redis_refuse_to_start(tmp_path: Path, extra: str,
                                                       env: dict[str, str], where: str) -> None:
    path = config(tmp_path, "http://127.0.0.1:9", Keys(), free_port(), free_port(), extra)
    clean = {k: v for k, v in os.environ.items() if k != "VIGIE_REDIS"}
    proc = subprocess.run([*VIGIE, "serve", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, env={**clean, **env}, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert where in message and "(key 'workers')" in message and "'redis'" in message


def test_workers_must_be_a_positive_number(tmp_path: Path) -> None:
    from support.configs import minimal_config
    from vigie.config import load_settings
    from vigie.errors import ConfigError

    with pytest.raises(ConfigError, match="workers"):
        load_settings(minimal_config(tmp_path, "workers: 0\n"), {})
    assert load_settings(minimal_config(tmp_path, "workers: 1\n"), {}).workers == 1


def test_a_worker_that_dies_stops_the_pod(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    proc = start(tmp_path, config(tmp_path, "http://127.0.0.1:9", Keys(), port, admin))
    try:
        pids = wait_ready(admin, proc, 2, tmp_path)
        os.kill(pids[0], signal.SIGKILL)
        assert proc.wait(30) != 0  # the orchestrator restarts the pod whole
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    finally:
        _stop(proc)
