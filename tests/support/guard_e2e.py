"""Helpers for guard tests through the proxy: policies, a patient upstream, metrics, Redis.

Every test gets its own client name (`gp-<random>`), so its Redis keys
(`vigie:{gp-<random>...}`) and quarantine index fields are its own: nothing is
flushed, and `forget_client` deletes exactly those keys afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from support.guard import REDIS_URL
from support.harness import Harness
from vigie.pseudonym import Pseudonymizer

ADMIN_TOKEN = "guard-e2e-admin-token-0123456789abcdef"
DECOYS = ("990001", "990002")
MISSING_FROM = 500_000  # ids at or above are unknown to the upstream (404), decoys excepted
SCOPES = "patient.read patient.search"
GENEROUS = {"requests": "100000/minute", "records": "1000000/hour",
            "distinct_patients": "1000000/day"}


def new_client() -> str:
    return f"gp-{uuid.uuid4().hex[:10]}"


def policy_text(client: str, *, mode: str | None = None, enumeration: bool = True,
                client_limits: dict[str, str] | None = None, **limits: str) -> str:
    merged = {**GENEROUS, **limits}
    lines = [f"client: {client}"]
    if mode:
        lines.append(f"mode: {mode}")
    lines += [
        "routes:",
        "  - name: read-patient",
        "    methods: [GET]",
        "    path: /patients/{id}",
        "    scopes: [patient.read]",
        "    response:",
        '      records: "$"',
        "      fields: {id: keep, last_name: keep}",
        "  - name: search-patients",
        "    methods: [GET]",
        "    path: /patients",
        "    scopes: [patient.search]",
        "    query: {allowed: [last_name, page, page_size], max: {page_size: 50}}",
        "    response:",
        '      records: "$.items[*]"',
        "      fields: {id: keep}",
        "limits:",
        *(f"  {key}: {value}" for key, value in merged.items()),
        f"  enumeration: {str(enumeration).lower()}",
    ]
    if client_limits:
        lines += ["client_limits:", *(f"  {k}: {v}" for k, v in client_limits.items())]
    return "\n".join(lines) + "\n"


def guard_config(tmp: Path, redis_url: str | None, *, admin: bool = True,
                 decoys: tuple[str, ...] = DECOYS) -> tuple[str, dict[str, str]]:
    """Extra YAML (admin token) and environment (Redis, decoys) for a Harness."""
    config = ""
    if admin:
        token_file = tmp / "admin.token"
        token_file.write_text(ADMIN_TOKEN)
        config = f"admin: {{host: 127.0.0.1, token_file: {token_file}}}\n"
    # The harness writes its own `guard:` mapping; the environment adds to it.
    env = {"VIGIE_GUARD__DECOY_IDS": "[" + ", ".join(f"'{d}'" for d in decoys) + "]"}
    if redis_url:
        env["VIGIE_REDIS"] = redis_url
    return config, env


def answer_patients(request: Request) -> Response:
    """/patients/{id}: one record (404 from MISSING_FROM on); /patients: a page of 10,
    the decoy 990002 among them when `last_name=Delorme`."""
    path = request.url.path
    if path.startswith("/patients/"):
        pid = path.rsplit("/", 1)[1]
        if pid.isdigit() and int(pid) >= MISSING_FROM and pid not in DECOYS:
            return JSONResponse({"error": "patient not found"}, 404)
        return JSONResponse({"id": pid, "last_name": "Synthetique", "nir": "none"})
    params = request.query_params
    page = int(params.get("page", "1") or "1")
    items: list[dict[str, Any]] = [{"id": str(page * 100 + i)} for i in range(10)]
    if params.get("last_name") == "Delorme":
        items.append({"id": DECOYS[1]})
    return JSONResponse({"items": items, "page": page})


def start(h: Harness) -> Harness:
    h.__enter__()
    h.upstream.handler = answer_patients
    return h


def subject_of(h: Harness, client: str, sub: str) -> str:
    return Pseudonymizer.from_file(h.tmp / "pseudonym.key").principal(client, sub)


def metric(h: Harness, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(h.metrics_text()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return float(sample.value)
    return None


def events(h: Harness) -> list[dict[str, Any]]:
    path = h.tmp / "events.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def admin(h: Harness, method: str, path: str, token: str | None = ADMIN_TOKEN
          ) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{h.admin_url}{path}", headers=headers, timeout=5)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def forget_client(client: str, url: str = REDIS_URL, prefix: str = "vigie:") -> None:
    """Delete this client's keys and quarantine index fields, and nothing else."""
    connection = redis.Redis.from_url(url, socket_timeout=2)
    try:
        keys = list(connection.scan_iter(match=f"{prefix}{{{client}*", count=1000))
        if keys:
            connection.delete(*keys)
        index = f"{prefix}quarantines"
        fields = [f for f in connection.hkeys(index)
                  if f.decode().startswith(f"{client}\x1f")]
        if fields:
            connection.hdel(index, *fields)
    finally:
        connection.close()
