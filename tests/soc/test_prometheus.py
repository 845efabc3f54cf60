"""Prometheus end to end: a real server scrapes vigie's /metrics with the repo's alert
rules; an extraction through the proxy fires the SOC alerts; every dashboard query runs.

The rules are used unchanged: the three alerts exercised here (VigieEnumerationDetected,
VigieDecoyTouched, VigieQuarantineRaised) have no `for:` clause, so no test-only copy
is needed. Bounded: the whole module takes about 15 s, and Prometheus is stopped (then
killed if it lingers) whatever happens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from support.deploy import ALERTS, DASHBOARD
from support.harness import Harness, Keys
from support.prometheus import PrometheusServer
from support.soc import DECOY, GUARD_ENV, SOC_POLICIES, drive_traffic, patient_upstream

GRAFANA_VARIABLES = {"$namespace": ".*", "$client": ".*", "$__rate_interval": "1m",
                     "$__range": "5m", "${datasource}": ""}


@dataclass
class Stack:
    vigie: Harness
    prometheus: PrometheusServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("soc-prometheus")
    with Harness(tmp, SOC_POLICIES, env=GUARD_ENV, keys=keys) as vigie:
        target = vigie.admin_url.removeprefix("http://")
        with PrometheusServer(tmp, [target], [ALERTS],
                              labels={"namespace": "soc", "pod": "vigie-0"}) as prometheus:
            assert prometheus.wait_for_scrapes(2), prometheus.log()
            yield Stack(vigie, prometheus)


def test_the_pre_created_series_are_scraped_at_zero(stack: Stack) -> None:
    found = stack.prometheus.query(
        'vigie_enumeration_detections_total{client="soc-app", signal="sequential_ids"}')
    assert [float(r["value"][1]) for r in found] == [0.0]
    assert stack.prometheus.firing("VigieEnumerationDetected") == []


def test_an_enumeration_through_the_proxy_fires_the_soc_alerts(stack: Stack) -> None:
    h, prom = stack.vigie, stack.prometheus
    h.upstream.handler = patient_upstream
    walker = h.token("soc-app", sub="dr-walker", scope="patient.read")
    statuses = [h.get(f"/patients/{patient_id}", walker).status_code
                for patient_id in range(5000, 5025)]  # sequential ids: an extraction walk
    assert statuses[:19] == [200] * 19 and statuses[-1] == 429  # detected, then quarantined
    alerts = prom.wait_for_alert("VigieEnumerationDetected", client="soc-app",
                                 signal="sequential_ids")
    assert alerts, prom.api("alerts")
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["labels"]["namespace"] == "soc"
    assert prom.wait_for_alert("VigieQuarantineRaised", namespace="soc")
    assert prom.firing("VigieDecoyTouched") == []  # no decoy yet

    decoy_reader = h.token("soc-app", sub="dr-curious", scope="patient.read")
    assert h.get(f"/patients/{DECOY}", decoy_reader).status_code == 429
    assert prom.wait_for_alert("VigieDecoyTouched", client="soc-app")
    # Throttled, quarantined and refused traffic, for the dashboard test below.
    drive_traffic(h, users=3, reads=12)
    assert prom.wait_for(lambda: prom.query(
        'sum(vigie_quarantined_clients{namespace="soc"}) >= 3'), 10)


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return [p for p in panels if p.get("type") != "row"]


def grafana_to_promql(expr: str) -> str:
    for variable, replacement in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, replacement)
    assert "$" not in expr, expr
    return expr


def test_the_dashboard_shows_an_extraction(stack: Stack) -> None:
    panels = dashboard_panels()
    exprs = {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in panels}
    text = json.dumps(exprs)
    required = {  # what a SOC needs to see an extraction, as PromQL fragments
        "traffic by client": r"sum by \(client\) \(rate\(vigie_requests_total",
        "decisions": r"sum by \(decision\) \(rate\(vigie_requests_total",
        "masked values": r"vigie_masked_values_total",
        "NIR detections": r"vigie_nir_detections_total",
        "anomaly scores": r"by \(client\) \(vigie_anomaly_score",
        "quarantines": r"vigie_quarantined_clients",
        "upstream latency": r"histogram_quantile\(0\.99, sum by \(le[^)]*\) "
                            r"\(rate\(vigie_upstream_duration_seconds_bucket",
        "auth failures by reason": r"sum by \(reason\) \(rate\(vigie_auth_failures_total",
        "enumeration detections": r"vigie_enumeration_detections_total",
    }
    missing = [name for name, pattern in required.items() if not re.search(pattern, text)]
    assert missing == []
    prom = stack.prometheus
    assert prom.wait_for(lambda: prom.query('vigie_quarantined_clients{namespace="soc"} > 0'),
                         10)
    # After the extraction, the SOC panels hold data (policy reloads and audit failures may
    # legitimately be empty: nothing failed).
    showing = ("Requests by client", "Decisions", "Masked values by action",
               "NIR detections by place", "Anomaly score by client",
               "Enumeration detections by signal", "Quarantined principals",
               "Auth failures by reason", "Upstream latency p50 / p99")
    assert all(title in exprs for title in showing)

    def empty_panels() -> list[str]:
        empty = []
        for title, targets in exprs.items():
            assert targets, f"panel {title!r} has no query"
            for expr in targets:
                result = prom.query(grafana_to_promql(expr))  # raises on a parse/eval error
                if not result:
                    empty.append(title)
        return empty

    # rate() needs two scrapes of a series: the last test's traffic may be one scrape old.
    prom.wait_for(lambda: not set(showing) & set(empty_panels()), 10)
    empty = empty_panels()
    for title in showing:
        assert title not in empty, title


def test_the_dashboard_variables_select_series(stack: Stack) -> None:
    variables = json.loads(DASHBOARD.read_text(encoding="utf-8"))["templating"]["list"]
    for variable in variables:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) \
            else variable["query"]
        match = re.fullmatch(r"label_values\((.+), *([a-z_]+)\)", query)
        assert match, query
        selector, label = grafana_to_promql(match.group(1)), match.group(2)
        values = stack.prometheus.api("label/" + label + "/values", **{"match[]": selector})
        assert values, (query, values)


def test_every_alert_expression_evaluates(stack: Stack) -> None:
    import yaml

    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        stack.prometheus.query(rule["expr"])  # raises on error
    rules = stack.prometheus.api("rules")["groups"]
    unhealthy = [r["name"] for g in rules for r in g["rules"] if r.get("health") != "ok"]
    assert unhealthy == []
