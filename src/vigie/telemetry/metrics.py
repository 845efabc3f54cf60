"""Every Prometheus metric of the contract (section 6), on one registry per app.

Labels are bounded: clients and route names come from policies, reasons and
signals from fixed vocabularies. Never a patient id, a raw path, a token or a user.
`policies_loaded` pre-creates at zero the per-client series that alerts and
dashboards rely on, so that `rate()`/`increase()` see the very first event.
"""

from __future__ import annotations

import os
import platform
import time
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector

from vigie import __version__

if TYPE_CHECKING:
    from vigie.policy.model import PolicySet

# The `signal` values of vigie_enumeration_detections_total: the guard's signals
# (vigie.guard.signals.SIGNALS), several at once, many principals of one client, and
# decoy records. tests/soc keeps this list in step with the guard.
DETECTION_SIGNALS = ("sequential_ids", "not_found_ratio", "deep_paging", "broad_search",
                     "baseline", "combined", "coordinated", "decoy")
NIR_PLACES = ("field", "text", "header")

M = TypeVar("M", Counter, Gauge, Histogram)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


ANOMALY_BANDS = (1.0, 0.5, 0.25)  # quarantined or detected; throttled; elevated; else 0


def anomaly_band(score: float) -> float:
    """The coarse band of an anomaly score, as exported: 0, 0.25, 0.5 or 1.

    Whoever can scrape /metrics must not be able to steer a client just under a
    threshold: [0.25, 0.5) reads 0.25, [0.5, 1) reads 0.5 (the throttle), 1 stays 1.
    """
    return next((band for band in ANOMALY_BANDS if score >= band), 0.0)


class BandedGauge(Gauge):
    """A gauge that stores only the band of what it is given (its children too)."""

    def set(self, value: float) -> None:
        super().set(anomaly_band(float(value)))


class Metrics:
    """The registry and its metrics. Pass it to every stage that counts.

    With several workers (vigie.workers) values live in PROMETHEUS_MULTIPROC_DIR:
    counters and histograms add up; each gauge says how (`livemin` for "is up",
    `livemax` for "how bad"), over live workers only. `exposition()` merges them.
    """

    def __init__(self, registry: CollectorRegistry | None = None,
                 process_collectors: bool = True) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        if process_collectors:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.requests = Counter(
            "vigie_requests", "Requests by client, policy route, status and decision",
            ["client", "route", "status", "decision"], registry=r)
        self.request_duration = Histogram(
            "vigie_request_duration_seconds", "Time from request to response, by route",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_duration = Histogram(
            "vigie_upstream_duration_seconds", "Upstream response time (headers), by route",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.masked_values = Counter(
            "vigie_masked_values", "Values dropped, masked, pseudonymized or generalized",
            ["client", "route", "action"], registry=r)
        self.nir_detections = Counter(
            "vigie_nir_detections", "NIRs found by value and masked",
            ["client", "route", "where"], registry=r)
        self.records_returned = Counter(
            "vigie_records_returned", "Patient records returned to clients",
            ["client", "route"], registry=r)
        self.auth_failures = Counter(
            "vigie_auth_failures", "Refused credentials by reason", ["reason"], registry=r)
        self.anomaly_score = BandedGauge(
            "vigie_anomaly_score",
            "Highest anomaly score among a client's principals, in bands: 0, 0.25, 0.5, 1",
            ["client"], registry=r,
            multiprocess_mode="livemax")
        self.enumeration_detections = Counter(
            "vigie_enumeration_detections", "Enumeration signals raised",
            ["client", "signal"], registry=r)
        self.quarantined_clients = Gauge(
            "vigie_quarantined_clients", "Principals currently quarantined", registry=r,
            multiprocess_mode="livemax")
        self.policy_reload_failures = Counter(
            "vigie_policy_reload_failures", "Policy reloads refused by validation", registry=r)
        self.state_backend_up = Gauge(
            "vigie_state_backend_up", "Whether the guard state backend answers",
            ["backend"], registry=r,
            multiprocess_mode="livemin")
        self.upstream_up = Gauge(
            "vigie_upstream_up", "Whether the last upstream exchange succeeded", registry=r,
            multiprocess_mode="livemin")
        # Extensions beyond the contract (section 6 allows more, never fewer).
        self.jwks_refresh_failures = Counter(
            "vigie_jwks_refresh_failures", "JWKS fetches that failed (last good keys kept)",
            ["issuer"], registry=r)
        self.jwks_trusted = Gauge(
            "vigie_jwks_trusted", "1 while the issuer has a key set tokens are verified with "
            "(loaded, not older than jwks_max_stale_seconds), else 0", ["issuer"], registry=r,
            multiprocess_mode="livemin")
        self.jwks_last_success = Gauge(
            "vigie_jwks_last_success_timestamp_seconds",
            "When the issuer's key set in use was fetched", ["issuer"], registry=r,
            multiprocess_mode="livemin")
        self.audit_write_failures = Counter(
            "vigie_audit_write_failures", "Audit lines that could not be written", registry=r)
        self.security_events = Counter(
            "vigie_security_events", "Security events emitted for the SIEM",
            ["client", "signal", "action"], registry=r)
        self.records_withheld = Counter(
            "vigie_records_withheld", "Records withheld by object-level checks (bind)",
            ["client", "route"], registry=r)
        self.revocations_active = Gauge(
            "vigie_revocations_active", "Revocations in force, by kind (client, user, jti)",
            ["kind"], registry=r,
            multiprocess_mode="livemax")
        self.containment_active = Gauge(
            "vigie_containment_active", "1 while a containment switch is in force",
            ["client", "mode"], registry=r,
            multiprocess_mode="livemax")
        self.incident_store_up = Gauge(
            "vigie_incident_store_up", "Whether the revocation store answers",
            ["backend"], registry=r,
            multiprocess_mode="livemin")
        self.incident_unconfirmed = Gauge(
            "vigie_incident_unconfirmed", "Revocations and switches enforced here only: "
            "the store has not confirmed them yet", registry=r,
            multiprocess_mode="livemax")
        self.policy_loaded = Gauge(
            "vigie_policy_last_reload_success_timestamp_seconds",
            "When policies were last loaded successfully", registry=r,
            multiprocess_mode="livemin")
        self.build_info = Gauge(
            "vigie_build_info", "Always 1: the running version, image revision and Python",
            ["version", "revision", "python"], registry=r,
            multiprocess_mode="livemax")
        self.build_info.labels(version=__version__,
                               revision=os.environ.get("VIGIE_BUILD_REVISION", "unknown")[:64],
                               python=platform.python_version()).set(1)
        self.upstream_discarded = Counter(
            "vigie_upstream_connections_discarded",
            "Upstream connections closed instead of reused, by reason", ["reason"], registry=r)
        self.upstream_pool_timeouts = Counter(
            "vigie_upstream_pool_timeouts",
            "Requests that waited too long for an upstream connection (504)", registry=r)
        self.upstream_share_refusals = Counter(
            "vigie_upstream_share_refusals",
            "Requests refused because their principal held its share of the pool (429)",
            registry=r)
        self.upstream_up.set(1)
        self._children: dict[tuple[int, tuple[str, ...]], object] = {}

    def exposition(self) -> bytes:
        """The text format of every metric: this process's, or all workers' merged."""
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def child(self, metric: M, *labels: str) -> M:
        """`metric.labels(*labels)`, cached: `labels()` takes a lock and costs ~5 us.

        Label values are bounded (policy clients and routes, fixed vocabularies),
        so the cache is bounded too.
        """
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found  # type: ignore[return-value]

    def policies_loaded(self, policies: PolicySet) -> None:
        """Policies were (re)loaded: stamp it and pre-create their per-client series at zero.

        A labelled series exists only once touched; without this, the first detection
        of a client creates its counter at 1 and `increase()` cannot see that step.
        Existing series keep their values (`labels()` returns the live child).
        """
        for client, policy in policies.clients.items():
            self.anomaly_score.labels(client=client)
            for signal in DETECTION_SIGNALS:
                self.enumeration_detections.labels(client=client, signal=signal)
            for route in policy.routes:
                self.records_returned.labels(client=client, route=route.name)
                for where in NIR_PLACES:
                    self.nir_detections.labels(client=client, route=route.name, where=where)
        self.policy_loaded.set(time.time())
