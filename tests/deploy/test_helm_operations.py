"""The chart at hospital scale: listener TLS and cert-manager, Ingress and HTTPRoute, the
scrape token, CRD checks, free-form spreading, HPA behavior, relabelings, probe timeouts."""

from __future__ import annotations

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
    container,
    manifests,
    one,
    render,
)
from support.deploy import CHART
from support.pki import CA
from vigie.config import load_settings

GATEWAY_KINDS = CRD_KINDS | {("gateway.networking.k8s.io/v1", "HTTPRoute"),
                             ("cert-manager.io/v1", "Certificate")}
HOSPITAL: dict[str, Any] = {
    **EVERYTHING_ON,
    "scrapeToken": {"existingSecret": "vigie-scrape", "key": "token"},
    "tls": {"enabled": True, "clientAuth": "required",
            "certManager": {"enabled": True,
                            "issuerRef": {"name": "hospital-ca", "kind": "ClusterIssuer"}}},
    "ingress": {"enabled": True, "className": "nginx",
                "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"},
                "hosts": [{"host": "vigie.hospital.example",
                           "paths": [{"path": "/", "pathType": "Prefix"}]}],
                "tls": [{"secretName": "vigie-ingress-tls",
                         "hosts": ["vigie.hospital.example"]}]},
    "httpRoute": {"enabled": True, "hostnames": ["vigie.hospital.example"],
                  "parentRefs": [{"name": "hospital-gateway", "namespace": "gateway-system",
                                  "sectionName": "https"}],
                  "timeouts": {"request": "30s"}},
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
         "whenUnsatisfiable": "DoNotSchedule"}],
    "autoscaling": {"enabled": True, "behavior": {"scaleDown": {
        "stabilizationWindowSeconds": 300}}, "metrics": [
        {"type": "Resource", "resource": {"name": "memory", "target": {
            "type": "Utilization", "averageUtilization": 80}}}]},
    "serviceMonitor": {"enabled": True, "relabelings": [
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
        "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "python_gc_.*",
                               "action": "drop"}]},
    "probes": {"startup": {"timeoutSeconds": 5}},
}


def test_the_hospital_values_lint_and_validate() -> None:
    report = helm.lint(CHART, HOSPITAL, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    docs = manifests(HOSPITAL)
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in GATEWAY_KINDS:
            assert doc["metadata"]["name"] and doc["spec"], doc["kind"]
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    assert {"Ingress", "HTTPRoute", "Certificate"} <= {d["kind"] for d in docs}


def test_listener_tls_from_a_cert_manager_secret_is_accepted_by_vigie(tmp_path: Path) -> None:
    docs = manifests(HOSPITAL)
    certificate = one(docs, "Certificate")
    assert certificate["spec"]["secretName"] == "vigie-tls"
    assert certificate["spec"]["issuerRef"] == {"name": "hospital-ca", "kind": "ClusterIssuer"}
    assert "vigie.vigie.svc" in certificate["spec"]["dnsNames"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "vigie-tls", "defaultMode": 0o440}} in pod[
        "volumes"]
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == "tls")
    assert mount["mountPath"] == "/etc/vigie/tls" and "subPath" not in mount  # renewals seen
    text = one(docs, "ConfigMap", "vigie-config")["data"]["vigie.yaml"]
    ca = CA()
    ca.issue("vigie", server=True).write(tmp_path, "tls")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "vigie.yaml").write_text(text.replace("/etc/vigie/tls", str(tmp_path)))
    settings = load_settings(tmp_path / "vigie.yaml", environ={})
    assert settings.listen.tls is not None
    assert settings.listen.tls.client_auth == "required"
    assert settings.listen.tls.client_ca_file == tmp_path / "ca.crt"


def test_the_scrape_token_guards_metrics_and_the_service_monitor_sends_it() -> None:
    docs = manifests(HOSPITAL)
    admin = yaml.safe_load(one(docs, "ConfigMap", "vigie-config")["data"]["vigie.yaml"])["admin"]
    assert admin["metrics_auth"] == "scrape"
    assert admin["scrape_token_file"] == "/etc/vigie/secrets/scrape/token"
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["authorization"] == {"type": "Bearer",
                                         "credentials": {"name": "vigie-scrape", "key": "token"}}
    assert endpoint["relabelings"][0]["targetLabel"] == "node"
    assert endpoint["metricRelabelings"][0]["action"] == "drop"
    mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert mounts["scrape-token"] == "/etc/vigie/secrets/scrape"


def test_ingress_and_http_route_reach_the_proxy_port_only() -> None:
    docs = manifests(HOSPITAL)
    ingress = one(docs, "Ingress")["spec"]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "vigie", "port": {"name": "http"}}
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"][0]["secretName"] == "vigie-ingress-tls"
    route = one(docs, "HTTPRoute")["spec"]
    assert route["parentRefs"][0]["name"] == "hospital-gateway"
    assert route["rules"][0]["backendRefs"] == [{"name": "vigie", "port": 8080}]
    assert route["rules"][0]["timeouts"] == {"request": "30s"}
    with pytest.raises(helm.HelmError, match="parentRefs"):
        render({**HOSPITAL, "httpRoute": {"enabled": True}})


@pytest.mark.parametrize(("values", "api"), [
    ({"serviceMonitor": {"enabled": True}}, "monitoring.coreos.com/v1/ServiceMonitor"),
    ({"prometheusRule": {"enabled": True}}, "monitoring.coreos.com/v1/PrometheusRule"),
    ({"httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}]}},
     "gateway.networking.k8s.io/v1/HTTPRoute"),
    ({"tls": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}}},
     "cert-manager.io/v1/Certificate"),
])
def test_a_resource_whose_crd_the_cluster_lacks_fails_the_render(values: dict[str, Any],
                                                                  api: str) -> None:
    with pytest.raises(helm.HelmError, match=api.replace(".", r"\.")):
        render(values)
    assert render({**values, "crdCheck": False})


def test_free_form_spreading_hpa_behavior_and_the_startup_timeout() -> None:
    docs = manifests(HOSPITAL)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (constraint,) = pod["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == "vigie"
    hpa = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["memory"]
    assert container(docs)["startupProbe"]["timeoutSeconds"] == 5
    default = one(manifests(), "Deployment")["spec"]["template"]["spec"]
    assert default["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert default["containers"][0]["startupProbe"]["timeoutSeconds"] == 2


OPENSHIFT: dict[str, Any] = {  # restricted-v2 SCC: the namespace's UID range, not ours
    "podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
    "securityContext": {"runAsUser": None, "runAsGroup": None},
}


def test_openshift_values_let_the_platform_pick_the_uid_and_keep_the_pod_locked() -> None:
    report = helm.lint(CHART, OPENSHIFT, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    docs = manifests(OPENSHIFT)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    for context in (pod["securityContext"], container(docs)["securityContext"]):
        assert "runAsUser" not in context and "runAsGroup" not in context
        assert context["runAsNonRoot"] is True
    assert "fsGroup" not in pod["securityContext"]
    security = container(docs)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == [
        "ALL"]


def test_a_sentinel_url_reaches_vigie_and_credentials_stay_out_of_values(tmp_path: Path) -> None:
    sentinels = "redis+sentinel://valkey-node-0.valkey-headless:26379,valkey:26379/mymaster/0"
    text = one(manifests({"redis": {"url": sentinels}}), "ConfigMap", "vigie-config")["data"][
        "vigie.yaml"]
    (tmp_path / "vigie.yaml").write_text(text)
    assert load_settings(tmp_path / "vigie.yaml", environ={}).redis == sentinels
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"redis": {"url": "redis+sentinel://:pw@valkey:26379/mymaster"}})
