"""Helpers of the incident suites: a guarded stack with the admin token, and its incident API.

`IncidentStack` is one Vigie replica (a Harness with the guard_e2e patient upstream and
policy); several share a client and, with `redis_url`, one Redis. `api()` calls the
incident admin API; `run_cli()` runs `vigie revoke|contain ...` in-process and returns
exit code, stdout and stderr.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from support.guard import REDIS_URL
from support.guard_e2e import ADMIN_TOKEN, guard_config, policy_text, start
from support.harness import Harness, Keys
from vigie.cli import main


@dataclass
class IncidentStack:
    h: Harness
    client: str
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, sub: str = "dr-house", **claims: Any) -> str:
        key = f"{sub}{sorted(claims.items())}"
        if key not in self.tokens:
            self.tokens[key] = self.h.token(self.client, sub, scope="patient.read "
                                            "patient.search", **claims)
        return self.tokens[key]

    def get(self, path: str, sub: str = "dr-house", **claims: Any) -> httpx.Response:
        return self.h.get(path, token=self.token(sub, **claims))

    def api(self, method: str, path: str, body: Any = None,
            token: str | None = ADMIN_TOKEN) -> httpx.Response:
        headers = {"X-Vigie-Operator": "soc-alice"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, f"{self.h.admin_url}{path}", json=body, headers=headers,
                             timeout=10)

    @property
    def token_file(self) -> Path:
        return self.h.tmp / "admin.token"


WRITE_ROUTE = """\
  - name: update-patient
    methods: [POST]
    path: /patients/{id}
    scopes: [patient.read]
"""


def incident_policy(client: str) -> str:
    """The guard_e2e policy (read, search) and a write route, for read-only containment."""
    return policy_text(client).replace("limits:\n", WRITE_ROUTE + "limits:\n", 1)


def incident_stack(folder: Path, client: str, keys: Keys, *, redis_url: str | None = None,
                   config: str = "") -> IncidentStack:
    folder.mkdir(parents=True, exist_ok=True)
    extra, env = guard_config(folder, redis_url)
    h = start(Harness(folder, {"client.yaml": incident_policy(client)}, config=extra + config,
                      env=env, keys=keys))
    return IncidentStack(h, client)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def forget_incidents(url: str = REDIS_URL, prefix: str = "vigie:") -> None:
    connection = redis.Redis.from_url(url, socket_timeout=2)
    try:
        connection.delete(f"{prefix}{{incident}}:revocations", f"{prefix}{{incident}}:containments")
    finally:
        connection.close()


def until(condition: Any, timeout: float) -> float | None:
    """Seconds until `condition()` held, or None when it did not within `timeout`."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.01)
