"""Audit files written by the real `AuditLog`, for the suggest tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from support.audit import BASE_TIME, make_decision
from vigie.audit import AuditLog
from vigie.config import AuditSettings
from vigie.telemetry.metrics import Metrics


def write_audit(path: Path, requests: Iterable[dict[str, Any]]) -> Path:
    """One audit line per request; each dict overrides `make_decision` (plus `principal`)."""
    log = AuditLog(AuditSettings(path=str(path)), Metrics(process_collectors=False))
    try:
        for index, overrides in enumerate(requests):
            values = {"request_id": f"req-{index}", "wall_time": BASE_TIME + index, **overrides}
            principal = values.pop("principal", "psn-user")
            log.record(make_decision(**values), principal)
    finally:
        log.close()
    return path
