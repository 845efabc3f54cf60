"""Shared paths, tool discovery and metric-name helpers for the deployment-artefact tests."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from vigie.telemetry.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "vigie"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = CHART / "dashboards" / "vigie.json"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"

_METRIC_NAME = re.compile(r"\bvigie_[a-z0-9_]+\b")


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


def exposed_metric_names() -> set[str]:
    """Every series name Vigie's registry can expose, as Prometheus scrapes it."""
    names: set[str] = set()
    for family in Metrics(process_collectors=False).registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        else:
            names.add(family.name)
    return names


def referenced_metric_names(text: str) -> set[str]:
    """The vigie_* metric names a PromQL expression or a dashboard mentions."""
    return set(_METRIC_NAME.findall(text))


TARGET_LABELS = frozenset({"namespace", "pod", "job", "instance", "service", "container",
                           "endpoint", "le"})
_SELECTOR = re.compile(r"\b(vigie_[a-z0-9_]+)\s*\{([^}]*)\}")
_LABEL_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def metric_labels() -> dict[str, frozenset[str]]:
    """Exposed series name -> the label names Vigie sets on it."""
    labels: dict[str, frozenset[str]] = {}
    metrics = Metrics(process_collectors=False)
    for collector in vars(metrics).values():
        names = getattr(collector, "_labelnames", None)
        base = getattr(collector, "_name", None)
        if names is None or base is None:
            continue
        for exposed in exposed_metric_names():
            if exposed == base or exposed.startswith(f"{base}_"):
                labels.setdefault(exposed, frozenset(names))
    return labels


def unknown_selector_labels(text: str) -> list[str]:
    """`metric{label...}` selectors whose label is neither Vigie's nor a scrape target label."""
    known = metric_labels()
    problems = []
    for metric, matchers in _SELECTOR.findall(text):
        for label in _LABEL_MATCHER.findall(matchers):
            if label not in known.get(metric, frozenset()) | TARGET_LABELS:
                problems.append(f"{metric}{{{label}}}")
    return problems
