"""The Helm chart: rendered and linted by the real Helm SDK, validated as Kubernetes objects."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from support.chart import (
    CRD_KINDS,
    EVERYTHING_ON,
    KUBE_VERSION,
    SCENARIOS,
    container,
    manifests,
    one,
    render,
)
from support.deploy import (
    ALERTS,
    CHART,
    DASHBOARD,
    exposed_metric_names,
    referenced_metric_names,
    unknown_selector_labels,
)
from vigie.config import load_settings

CREDENTIALS_IN_URL = re.compile(r"[a-z]+://[^/\s\"]*@")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_lints_clean(scenario: str) -> None:
    report = helm.lint(CHART, SCENARIOS[scenario], strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_manifest_is_valid_kubernetes(scenario: str) -> None:
    docs = manifests(SCENARIOS[scenario])
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            assert doc["metadata"]["name"] and doc["spec"], doc["kind"]
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceAccount"} <= kinds


def test_optional_resources_are_off_by_default_and_on_when_asked() -> None:
    default_kinds = {d["kind"] for d in manifests()}
    assert not default_kinds & {"ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler",
                                "NetworkPolicy", "Secret"}
    all_kinds = {d["kind"] for d in manifests(EVERYTHING_ON)}
    assert {"ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler",
            "NetworkPolicy"} <= all_kinds
    assert "Secret" not in all_kinds, "the chart never generates secrets"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pod_is_locked_down(scenario: str) -> None:
    docs = manifests(SCENARIOS[scenario])
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = container(docs)["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    # The only writable place is an in-memory /tmp.
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = [m for m in container(docs)["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/tmp"]
    assert volumes[writable[0]["name"]]["emptyDir"]["medium"] == "Memory"


def test_security_settings_cannot_be_weakened_through_values() -> None:
    with helm.Chart.load(CHART) as chart:
        for weakened in ({"securityContext": {"readOnlyRootFilesystem": False}},
                         {"securityContext": {"allowPrivilegeEscalation": True}},
                         {"securityContext": {"runAsNonRoot": False}},
                         {"podSecurityContext": {"runAsNonRoot": False}},
                         {"securityContext": {"privileged": True}}):
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(weakened)


def test_probes_lifecycle_and_grace_period() -> None:
    docs = manifests()
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    main = container(docs)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"http": 8080, "admin": 9090}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")):
        assert main[probe]["httpGet"] == {"path": path, "port": "admin"}, probe
    sleep = main["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and int(sleep[1]) > 0
    vigie_yaml = yaml.safe_load(one(docs, "ConfigMap", "vigie-config")["data"]["vigie.yaml"])
    assert pod["terminationGracePeriodSeconds"] > int(sleep[1]) + vigie_yaml[
        "shutdown_grace_seconds"]


def test_grace_period_shorter_than_the_drain_is_refused() -> None:
    with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds"):
        render({"terminationGracePeriodSeconds": 20, "config": {"shutdown_grace_seconds": 20}})


def test_rendered_config_is_accepted_by_vigie(tmp_path: Path) -> None:
    for values in SCENARIOS.values():
        text = one(manifests(values), "ConfigMap", "vigie-config")["data"]["vigie.yaml"]
        path = tmp_path / "vigie.yaml"
        path.write_text(text, encoding="utf-8")
        settings = load_settings(path, environ={})
        assert (settings.listen.port, settings.admin.port) == (8080, 9090)
        assert str(settings.policies) == "/etc/vigie/policies"
    on = yaml.safe_load(one(manifests(EVERYTHING_ON), "ConfigMap", "vigie-config")["data"][
        "vigie.yaml"])
    assert on["pseudonym_key_file"] == "/etc/vigie/secrets/pseudonym/pseudonym.key"
    assert on["admin"]["token_file"] == "/etc/vigie/secrets/admin/token"


def test_secrets_come_from_existing_secrets_only() -> None:
    docs = manifests(EVERYTHING_ON)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    secret_volumes = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secret_volumes == {"vigie-pseudonym", "vigie-admin"}
    env = {e["name"]: e for e in container(docs)["env"]}
    assert env["VIGIE_REDIS"]["valueFrom"]["secretKeyRef"] == {"name": "vigie-redis",
                                                               "key": "url"}
    for config_map in (d for d in docs if d["kind"] == "ConfigMap"):
        text = json.dumps(config_map["data"]).lower()
        name = config_map["metadata"]["name"]
        assert "password" not in text and "-----begin" not in text, name
        assert not CREDENTIALS_IN_URL.search(text), name
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"redis": {"url": "redis://:hunter2@redis:6379/0"}})


def test_config_changes_roll_pods_policy_changes_reload_in_place() -> None:
    def pod_annotations(values: dict[str, Any]) -> dict[str, str]:
        deployment = one(manifests(values), "Deployment")
        annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
        return annotations

    base = pod_annotations({})
    assert pod_annotations({"config": {"mode": "report-only"}})["checksum/config"] != base[
        "checksum/config"]
    with_policy = pod_annotations({"policies": EVERYTHING_ON["policies"]})
    assert "checksum/policies" not in with_policy
    assert with_policy["checksum/config"] == base["checksum/config"]
    rolled = pod_annotations({"policies": {**EVERYTHING_ON["policies"], "rollOnChange": True}})
    assert "checksum/policies" in rolled


def test_policy_files_and_existing_config_map() -> None:
    docs = manifests(EVERYTHING_ON)
    policies = one(docs, "ConfigMap", "vigie-policies")["data"]
    assert yaml.safe_load(policies["gp-frontdesk.yaml"])["client"] == "gp-frontdesk"
    docs = manifests({"policies": {"existingConfigMap": "site-policies"}})
    assert not [d for d in docs if d["metadata"]["name"] == "vigie-policies"]
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "policies", "configMap": {"name": "site-policies"}} in volumes
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == "policies")
    assert "subPath" not in mount, "a subPath mount would never see policy updates"


def test_services_and_service_monitor_select_the_pods() -> None:
    docs = manifests(EVERYTHING_ON)
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    proxy, admin = one(docs, "Service", "vigie"), one(docs, "Service", "vigie-admin")
    for service in (proxy, admin):
        assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["targetPort"] for p in proxy["spec"]["ports"]] == ["http"]
    assert [p["targetPort"] for p in admin["spec"]["ports"]] == ["admin"]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= admin["metadata"][
        "labels"].items()
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= proxy["metadata"][
        "labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "admin"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_autoscaling_replaces_fixed_replicas() -> None:
    assert one(manifests(), "Deployment")["spec"]["replicas"] == 2
    docs = manifests({"autoscaling": {"enabled": True}})
    assert "replicas" not in one(docs, "Deployment")["spec"]
    target = one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target["name"] == one(docs, "Deployment")["metadata"]["name"]


def test_prometheus_rule_is_the_alerts_file() -> None:
    rule = one(manifests({"prometheusRule": {"enabled": True}, "crdCheck": False}),
               "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    moved = one(manifests({"crdCheck": False,
                           "prometheusRule": {"enabled": True, "runbookBaseUrl":
                                              "https://wiki.hospital.example/vigie"}}),
                "PrometheusRule")
    urls = [r["annotations"]["runbook_url"] for g in moved["spec"]["groups"]
            for r in g["rules"]]
    assert urls and all(u.startswith("https://wiki.hospital.example/vigie#") for u in urls)


def test_dashboard_config_map_carries_the_dashboard() -> None:
    config_map = one(manifests(), "ConfigMap", "vigie-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["vigie.json"]) == json.loads(
        DASHBOARD.read_text(encoding="utf-8"))


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    return [t["expr"] for p in panels for t in p["targets"]]


def test_dashboard_uses_only_metrics_and_labels_vigie_exposes() -> None:
    text = "\n".join(dashboard_expressions())
    referenced = referenced_metric_names(text)
    assert referenced - exposed_metric_names() == set()
    assert unknown_selector_labels(text) == []


def test_dashboard_covers_what_the_soc_watches() -> None:
    referenced = referenced_metric_names("\n".join(dashboard_expressions()))
    assert {
        "vigie_requests_total", "vigie_masked_values_total", "vigie_nir_detections_total",
        "vigie_anomaly_score", "vigie_quarantined_clients",
        "vigie_enumeration_detections_total", "vigie_upstream_duration_seconds_bucket",
        "vigie_auth_failures_total", "vigie_records_returned_total",
        "vigie_policy_reload_failures_total", "vigie_state_backend_up", "vigie_upstream_up",
    } <= referenced
    expressions = dashboard_expressions()
    assert any("histogram_quantile(0.99" in e and "upstream" in e for e in expressions)
    assert any("histogram_quantile(0.5" in e and "upstream" in e for e in expressions)


def test_workers_set_vigie_workers_and_scale_the_cpu_request() -> None:
    one_worker = container(manifests())
    assert {"name": "VIGIE_WORKERS", "value": "1"} in one_worker["env"]
    assert one_worker["resources"]["requests"]["cpu"] == "250m"
    values = {"workers": 4, "redis": {"url": "redis://redis:6379/0"},
              "resources": {"requests": {"cpu": "0.5", "memory": "256Mi"},
                            "limits": {"cpu": "750m", "memory": "1Gi"}}}
    four = container(manifests(values))
    assert {"name": "VIGIE_WORKERS", "value": "4"} in four["env"]
    assert four["resources"]["requests"] == {"cpu": "2000m", "memory": "256Mi"}
    assert four["resources"]["limits"] == {"cpu": "3000m", "memory": "1Gi"}


def test_several_workers_without_redis_are_refused() -> None:
    with pytest.raises(helm.HelmError, match=r"workers \(2\) > 1 needs redis"):
        render({"workers": 2})
    with pytest.raises(helm.HelmError):
        render({"workers": 0})
