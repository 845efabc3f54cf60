"""A real Prometheus server for tests: temp config, the repo's alert rules, 1 s intervals.

    with PrometheusServer(tmp, targets=["127.0.0.1:9090"], rules=[ALERTS]) as prom:
        prom.wait_for_alert("VigieDecoyTouched", client="gp-frontdesk")

`/usr/bin/prometheus` is the Debian package `prometheus` (scripts/test-services.sh installs
it for `make test`). Missing: the test fails under CI, and is skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

DEBIAN_BINARY = Path("/usr/bin/prometheus")


def prometheus_binary() -> str:
    if DEBIAN_BINARY.exists():
        return str(DEBIAN_BINARY)
    found = shutil.which("prometheus")
    if found:
        return found
    message = f"{DEBIAN_BINARY} not found (apt-get install -y prometheus)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must have it, refusing to skip")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """Prometheus scraping `targets` every second and evaluating `rules` every second."""

    def __init__(self, tmp: Path, targets: Sequence[str], rules: Sequence[Path],
                 labels: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.targets = list(targets)
        self.rules = list(rules)
        self.labels = dict(labels or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> PrometheusServer:
        binary = prometheus_binary()
        rule_files = []
        for index, rule in enumerate(self.rules):
            copy = self.tmp / f"rules-{index}.yml"
            shutil.copy(rule, copy)
            rule_files.append(str(copy))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": rule_files,
            "scrape_configs": [{"job_name": "vigie", "metrics_path": "/metrics",
                                "static_configs": [{"targets": self.targets,
                                                    "labels": self.labels}]}],
        }
        config_file = self.tmp / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = (self.tmp / "prometheus.log").open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and our own arguments
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={self.tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
             "--storage.tsdb.retention.time=1h", "--web.enable-lifecycle"],
            stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(20)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None
        self._log.close()

    def log(self) -> str:
        return (self.tmp / "prometheus.log").read_text(errors="replace")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready in {timeout}s: {self.log()}")

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" \
            else [{"metric": {}, "value": data["result"]}]
        return result

    def firing(self, alert: str, **labels: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"]
                if a["labels"].get("alertname") == alert and a["state"] == "firing"
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def wait_for(self, check: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.25)

    def wait_for_alert(self, alert: str, timeout: float = 60.0,
                       **labels: str) -> list[dict[str, Any]]:
        return list(self.wait_for(lambda: self.firing(alert, **labels), timeout))

    def wait_for_scrapes(self, count: int = 2, timeout: float = 15.0) -> bool:
        """True once every target was scraped successfully `count` times."""
        return bool(self.wait_for(
            lambda: all(float(r["value"][1]) >= count for r in self.query(
                "count_over_time(up[1m])")) and len(self.query("up == 1")) == len(self.targets),
            timeout))
