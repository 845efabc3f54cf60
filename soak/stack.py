"""The soak's processes: start, stop, kill and restart each one; sample their resources."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HOST = "127.0.0.1"
AUDIENCE = "patient-api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `condition()` until true; raises naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"soak: {what} not reached within {timeout:.0f} s")


def http_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(url, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False
    return ready


def redis_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
    return ready


@dataclass
class Service:
    """One restartable process; `up` is what a load balancer would believe."""

    name: str
    command: list[str]
    ready: Callable[[], bool]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    up: bool = False
    starts: int = 0

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **self.env}, start_new_session=True)
        self.starts += 1
        wait_until(lambda: self._alive() and self.ready(), timeout, f"{self.name} ready")
        self.up = True

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"soak: {self.name} exited with {self.process.returncode}; "
                               f"see {self.log}")
        return True

    def send(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Sends `signum` and waits for the exit; returns the exit code."""
        self.up = False
        if self.process is None:
            return None
        self.send(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def resources(self) -> tuple[int, int]:
        """(RSS in KiB, open file descriptors) of the running process."""
        pid = self.pid
        if pid is None:
            return (0, 0)
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return (rss, len(os.listdir(f"/proc/{pid}/fd")))


def write_key(path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return key


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def vigie_config(state: Path, name: str, *, upstream: str, issuer: str, redis: str,
                 port: int, admin: int) -> Path:
    config = state / f"{name}.yaml"
    config.write_text(
        f"upstream: {upstream}\n"
        f"listen: {{host: {HOST}, port: {port}}}\n"
        f"admin: {{host: {HOST}, port: {admin}, token_file: {state / 'admin.token'}}}\n"
        f"policies: {state / 'policies'}\n"
        f"pseudonym_key_file: {state / 'pseudonym.key'}\n"
        f"redis: {redis}\n"
        f"audit: {{path: {state / f'audit-{name}.jsonl'}, rotate_bytes: 2000000}}\n"
        f"guard: {{events_path: {state / f'events-{name}.jsonl'}, "
        "decoy_ids: ['990001', '990002']}\n"
        "shutdown_grace_seconds: 10\n"
        "upstream_timeout_seconds: 5\n"
        "issuers:\n"
        f"  - issuer: {issuer}\n"
        f"    audiences: [{AUDIENCE}]\n"
        f"    jwks_url: {issuer}/jwks\n"
        "    algorithms: [RS256]\n"
        "    jwks_refresh_seconds: 5\n")
    return config
