"""Prometheus alert rules: promtool-valid, unit-tested, on real metric names, with runbooks."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.deploy import (
    ALERT_TESTS,
    ALERTS,
    CHART,
    DEPLOYMENT_DOC,
    exposed_metric_names,
    referenced_metric_names,
    require_tool,
    unknown_selector_labels,
)

REQUIRED_ALERTS = {
    "VigieEnumerationDetected", "VigieQuarantineRaised", "VigieDecoyTouched",
    "VigieAuthFailureSpike", "VigieNirInUnnamedField", "VigieUpstreamDown", "VigieRedisDown",
    "VigiePolicyReloadFailed", "VigieHighErrorRate",
}
SEVERITIES = {"critical", "warning", "info"}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def promtool() -> str:
    return require_tool("promtool", "apt-get install -y prometheus")


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", ALERTS.name, cwd=ALERTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_catch_a_rule_blind_to_new_series(tmp_path: Path) -> None:
    """The first event of a client creates its series: plain increase() would miss it."""
    text = ALERTS.read_text(encoding="utf-8")
    blind = re.sub(r"\n\s*or\n.*?\) > 0", "", text, flags=re.DOTALL)  # increase() only
    assert "unless vigie" not in blind
    assert blind != text
    (tmp_path / ALERTS.name).write_text(blind, encoding="utf-8")
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    result = run_promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "brand-new series" in result.stdout + result.stderr


def test_required_alerts_exist_with_severity_and_annotations() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert REQUIRED_ALERTS <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), name
        assert annotations["runbook_url"].endswith(f"docs/deployment.md#{name.lower()}"), name


def test_every_runbook_anchor_is_a_section_of_the_deployment_doc() -> None:
    headings = {
        re.sub(r"[^a-z0-9 _-]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in DEPLOYMENT_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in headings, f"docs/deployment.md has no section for #{anchor}"


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts never shown to fire"
    assert names - silent == set(), "alerts never shown to stay silent"


def test_rules_use_only_metrics_and_labels_vigie_exposes() -> None:
    expressions = "\n".join(rule["expr"] for rule in alert_rules())
    referenced = referenced_metric_names(expressions)
    assert referenced, "no vigie metric found in the rules"
    assert referenced - exposed_metric_names() == set()
    assert unknown_selector_labels(expressions) == []


@pytest.mark.parametrize("text", [
    "rate(vigie_request_total[5m])",               # counter without its _total suffix typo
    "vigie_quarantined_clients_total",              # a gauge has no _total
    'vigie_requests_total{patient="42"}',           # a label Vigie never sets
    'sum by (client) (vigie_auth_failures_total{client="x"})',
])
def test_metric_name_check_reports_mistakes(text: str) -> None:
    unknown = referenced_metric_names(text) - exposed_metric_names()
    assert unknown or unknown_selector_labels(text)


def test_chart_ships_the_same_rules() -> None:
    assert (CHART / "files" / "alerts.yml").read_bytes() == ALERTS.read_bytes(), (
        "copy deploy/prometheus/alerts.yml to helm/vigie/files/alerts.yml")
