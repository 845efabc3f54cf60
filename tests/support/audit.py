"""Test factories for the audit log: decisions, a line reader, bulk writes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from vigie.audit import AuditLog
from vigie.context import Decision
from vigie.policy.model import Mode

BASE_TIME = 1_795_860_000.0  # 2026-11-28T10:00:00Z


def make_decision(**overrides: Any) -> Decision:
    values: dict[str, Any] = {
        "request_id": "req-1", "method": "GET", "client": "gp-frontdesk",
        "subject": "dr.house@example.test", "route": "read-patient", "status": 200,
        "decision": "allowed", "patients": ["42"], "fields": {"id", "last_name"},
        "masked": Counter({"mask": 1, "drop": 2}), "records": 1, "anomaly_score": 0.25,
    }
    values.update(overrides)
    wall_time = values.pop("wall_time", BASE_TIME)
    decision = Decision(**values)
    decision.wall_time = wall_time
    return decision


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def write_many(log: AuditLog, count: int, start: float = BASE_TIME) -> None:
    for index in range(count):
        log.record(make_decision(request_id=f"req-{index}", wall_time=start + index,
                                 patients=[str(index)], mode=Mode.ENFORCE), "psn-user")
