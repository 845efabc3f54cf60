"""The process: config errors stop start-up (exit 2), SIGTERM drains, the demo runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import jwt
import pytest
from starlette.requests import Request
from starlette.responses import Response

from support.harness import AUDIENCE, ISSUER, Keys, ScriptedUpstream
from support.servers import free_port, serve_in_thread
from support.workers import accepts, serve_config

VIGIE = [sys.executable, "-m", "vigie"]
POLICY = """\
client: app
routes:
  - name: slow
    methods: [GET]
    path: /slow
"""


def _config(tmp: Path, upstream: str, keys: Keys, port: int, admin: int, extra: str = "") -> Path:
    return serve_config(tmp, upstream, keys, port, admin, POLICY, extra)


def _wait_ready(admin: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # a loaded machine starts a process slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
        try:
            if httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("vigie never became ready")


def test_sigterm_finishes_in_flight_requests_then_exits_0(tmp_path: Path) -> None:
    keys = Keys()
    upstream = ScriptedUpstream()
    release = threading.Event()  # the upstream answers once the test has seen the drain

    async def held(request: Request) -> Response:
        while not release.is_set():
            await asyncio.sleep(0.01)
        return Response(b"finally", media_type="text/plain")
    upstream.handler = held
    port, admin = free_port(), free_port()
    with serve_in_thread(upstream.app()) as upstream_url:
        config = _config(tmp_path, upstream_url, keys, port, admin)
        proc = subprocess.Popen([*VIGIE, "serve", "--config", str(config)],
                                stderr=subprocess.PIPE, cwd=tmp_path)
        try:
            _wait_ready(admin, proc)
            now = int(time.time())
            token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "azp": "app", "sub": "u",
                                "iat": now, "exp": now + 60}, keys.private, "RS256",
                               headers={"kid": keys.kid})
            result: dict[str, httpx.Response] = {}

            def slow_request() -> None:
                result["r"] = httpx.get(f"http://127.0.0.1:{port}/slow", timeout=10,
                                        headers={"Authorization": f"Bearer {token}"})

            thread = threading.Thread(target=slow_request)
            thread.start()
            deadline = time.monotonic() + 20
            while not upstream.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            assert upstream.requests, "the request never reached the upstream"
            proc.send_signal(signal.SIGTERM)
            # draining: not ready any more (the admin listener stays up until the end)
            deadline = time.monotonic() + 10
            while httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code != 503:
                assert time.monotonic() < deadline, "SIGTERM never made vigie unready"
                time.sleep(0.02)
            # then the listener closes (uvicorn notices the exit flag on its next tick, so a
            # connection may still be accepted just after readiness drops): wait for it
            deadline = time.monotonic() + 10
            while accepts(port):
                assert time.monotonic() < deadline, "the listener never closed"
                time.sleep(0.02)
            release.set()
            thread.join(10)
            assert result["r"].status_code == 200
            assert result["r"].text == "finally"
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize(("text", "env", "key"), [
    ("listen: {port: 8080}\n", {}, "upstream"),
    ("upstream: ftp://legacy\n", {}, "upstream"),
    ("upstream: http://legacy\nlisten: {port: eighty}\n", {}, "listen.port"),
    ("upstream: http://legacy\nlisten: {port: 8080, hots: x}\n", {}, "listen.hots"),
    ("upstream: http://legacy\nmode: permissive\n", {}, "mode"),
    ("upstream: http://legacy\nlimits: {requests: lots}\n", {}, "limits.requests"),
    ("upstream: http://legacy\nissuers:\n  - issuer: x\n    audiences: [a]\n"
     "    jwks_file: j.json\n    algorithms: [HS256]\n", {}, "issuers.0.algorithms.0"),
    ("upstream: http://legacy\n", {"VIGIE_LISTEN__PORT": "-1"}, "listen.port"),
    ("upstream: http://legacy\nunknown_kid: 1\n", {}, "unknown_kid"),
    ("upstream: http://legacy\npolicies: ./nowhere\n", {}, "nowhere"),
])
def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path, text: str,
                                                  env: dict[str, str], key: str) -> None:
    config = tmp_path / "vigie.yaml"
    config.write_text(text)
    proc = subprocess.run([*VIGIE, "serve", "--config", str(config)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env}, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert key in message
    assert ("vigie.yaml" in message) or ("environment" in message)


def test_config_error_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "vigie.yaml"
    config.write_text("upstream: http://legacy\n\nlisten:\n  port: 8080\n  host: [1]\n")
    proc = subprocess.run([*VIGIE, "serve", "--config", str(config)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{config}:5:" in proc.stderr and "listen.host" in proc.stderr


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    from vigie.config import load_settings

    config = tmp_path / "vigie.yaml"
    config.write_text("upstream: http://legacy:8000\nlisten: {port: 8080}\nredis: null\n")
    settings = load_settings(config, {"VIGIE_UPSTREAM": "http://other:9000",
                                      "VIGIE_LISTEN__PORT": "8181",
                                      "VIGIE_REDIS": "redis://redis:6379/0"})
    assert settings.upstream == "http://other:9000"
    assert settings.listen.port == 8181
    assert settings.redis == "redis://redis:6379/0"


def test_demo_starts_prints_curl_commands_that_work_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen([*VIGIE, "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "Press Ctrl-C" in output, output
        curls = [line.strip() for line in lines if line.strip().startswith("curl -s -H")]
        assert len(curls) == 3
        for curl in curls:  # paste them, as a newcomer would
            run = subprocess.run(["bash", "-c", curl + " -w '\\n%{http_code}'"],
                                 capture_output=True, text=True, timeout=30)
            assert run.stdout.strip().endswith("200"), run.stdout
        assert "sees (HTTP 200)" in output
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
