"""Fixtures for the audit tests: a metrics registry and audit logs closed after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vigie.audit import AuditLog
from vigie.config import AuditSettings
from vigie.telemetry.metrics import Metrics


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(process_collectors=False)


@pytest.fixture
def open_log(metrics: Metrics) -> Iterator[Callable[..., AuditLog]]:
    logs: list[AuditLog] = []

    def factory(path: Path | str, **settings: Any) -> AuditLog:
        log = AuditLog(AuditSettings(path=str(path), **settings), metrics)
        logs.append(log)
        return log

    yield factory
    for log in logs:
        log.close()
