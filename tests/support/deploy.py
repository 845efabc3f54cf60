"""Shared paths and tool discovery for the deployment-artefact tests (tests/deploy)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "vigie"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = CHART / "dashboards" / "vigie.json"


def require_tool(name: str, hint: str) -> str:
    """Path of an external tool; missing tools fail in CI and skip (with the reason) locally."""
    venv_bin = Path(sys.executable).parent / name
    found = str(venv_bin) if venv_bin.exists() else shutil.which(name)
    if found:
        return found
    message = f"{name} not found ({hint})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must have it, refusing to skip")
    pytest.skip(message)
