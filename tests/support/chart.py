"""Render the chart with the real Helm SDK; the values every chart test shares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

from support.deploy import CHART

Manifest = dict[str, Any]
KUBE_VERSION = kubernetes_validate.latest_version()
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"),
             ("monitoring.coreos.com/v1", "PrometheusRule")}
EVERYTHING_ON: dict[str, Any] = {
    "crdCheck": False,  # rendered offline: no cluster to say it serves the Prometheus CRDs
    "redis": {"existingSecret": "vigie-redis", "key": "url"},
    "pseudonymKey": {"existingSecret": "vigie-pseudonym", "key": "pseudonym.key"},
    "adminToken": {"existingSecret": "vigie-admin", "key": "token"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True},
    "autoscaling": {"enabled": True},
    "networkPolicy": {"enabled": True, "restrictEgress": True, "proxyFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ehr"}}}]},
    "policies": {"files": {"gp-frontdesk.yaml": {
        "client": "gp-frontdesk",
        "routes": [{"name": "read-patient", "methods": ["GET"], "path": "/patients/{id}",
                    "scopes": ["patient.read"],
                    "response": {"records": "$", "fields": {"id": "keep", "nir": "drop"}}}],
    }}},
    "config": {"upstream": "https://legacy.hospital.example:8443/api", "issuers": [{
        "issuer": "https://idp.hospital.example/realms/care", "audiences": ["patient-api"],
        "jwks_url": "https://idp.hospital.example/realms/care/protocol/openid-connect/certs",
        "algorithms": ["RS256"]}]},
}
SCENARIOS = {"defaults": {}, "everything-on": EVERYTHING_ON,
             "redis-url": {"redis": {"url": "redis://redis-master:6379/0"}}}


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name="vigie", namespace="vigie")


def documents(rendered: dict[str, str]) -> Iterator[Manifest]:
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            yield from (doc for doc in yaml.safe_load_all(text) if doc)


def manifests(values: dict[str, Any] | None = None) -> list[Manifest]:
    return list(documents(render(values)))


def one(docs: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [d for d in docs if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def container(docs: list[Manifest]) -> Manifest:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    result: Manifest = pod["containers"][0]
    return result
