"""/metrics end to end: every contract metric, exact labels, bounded values, zero series."""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import vigie.guard.admission
import vigie.guard.detection
import vigie.guard.settlement
import vigie.guard.signals
from support.harness import ISSUER, Harness, Keys
from support.soc import (
    DECOY,
    GUARD_ENV,
    ROUTES,
    SOC_POLICIES,
    SOC_POLICY,
    drive_traffic,
    label_values,
    parse,
    value,
)
from vigie.guard.signals import SIGNALS
from vigie.telemetry.metrics import DETECTION_SIGNALS
from vigie.upstream.options import DISCARD_REASONS

# Contract section 6: metric (as scraped) -> its label names, exactly.
CONTRACT = {
    "vigie_requests_total": {"client", "route", "status", "decision"},
    "vigie_request_duration_seconds_bucket": {"route", "le"},
    "vigie_upstream_duration_seconds_bucket": {"route", "le"},
    "vigie_masked_values_total": {"client", "route", "action"},
    "vigie_nir_detections_total": {"client", "route", "where"},
    "vigie_records_returned_total": {"client", "route"},
    "vigie_auth_failures_total": {"reason"},
    "vigie_anomaly_score": {"client"},
    "vigie_enumeration_detections_total": {"client", "signal"},
    "vigie_quarantined_clients": set(),
    "vigie_policy_reload_failures_total": set(),
    "vigie_state_backend_up": {"backend"},
    "vigie_upstream_up": set(),
}
TYPES = {"vigie_requests": "counter", "vigie_request_duration_seconds": "histogram",
         "vigie_upstream_duration_seconds": "histogram", "vigie_masked_values": "counter",
         "vigie_nir_detections": "counter", "vigie_records_returned": "counter",
         "vigie_auth_failures": "counter", "vigie_anomaly_score": "gauge",
         "vigie_enumeration_detections": "counter", "vigie_quarantined_clients": "gauge",
         "vigie_policy_reload_failures": "counter", "vigie_state_backend_up": "gauge",
         "vigie_upstream_up": "gauge"}
CLIENTS = {"soc-app", "tight-app", "none"}


def wait_until(check, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


def test_every_contract_metric_after_representative_traffic(soc: Harness) -> None:
    drive_traffic(soc)
    text = soc.metrics_text()
    series = parse(text)
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    for name, kind in TYPES.items():
        assert families.get(name) == kind, name
    for name, labels in CONTRACT.items():
        found = [s for s in series if s.name == name]
        assert found, f"{name} missing from /metrics"
        for s in found:
            assert set(s.labels) == labels, (name, s.labels)

    decisions = {s.labels["decision"] for s in series if s.name == "vigie_requests_total"}
    assert decisions == {"allowed", "denied", "throttled", "quarantined", "error"}
    tight_allowed = value(text, "vigie_requests_total", client="tight-app", decision="allowed")
    assert tight_allowed >= 1
    assert value(text, "vigie_requests_total", client="tight-app", decision="throttled",
                 status="429") == 3 - tight_allowed
    assert value(text, "vigie_requests_total", client="soc-app", decision="quarantined") == 2
    assert value(text, "vigie_requests_total", client="soc-app", decision="error",
                 status="502") == 1
    assert value(text, "vigie_requests_total", client="none", route="none", status="401") == 5
    for action in ("drop", "mask", "generalize", "nir"):
        assert value(text, "vigie_masked_values_total", client="soc-app", action=action) > 0
    for where, route in (("field", "read-patient"), ("text", "letter"),
                         ("header", "read-patient")):
        assert value(text, "vigie_nir_detections_total", client="soc-app", route=route,
                     where=where) > 0, where
    # 36 reads, 3 search items, one record per allowed read of the tight client.
    assert value(text, "vigie_records_returned_total", client="soc-app",
                 route="read-patient") == 36
    assert value(text, "vigie_records_returned_total", route="search-patients") == 3
    assert value(text, "vigie_records_returned_total", client="tight-app") == tight_allowed
    for reason in ("missing", "expired", "signature", "audience", "issuer", "unknown_client"):
        assert value(text, "vigie_auth_failures_total", reason=reason) == 1, reason
    assert value(text, "vigie_anomaly_score", client="soc-app") == 1.0  # the decoy reader
    assert value(text, "vigie_enumeration_detections_total", client="soc-app",
                 signal="decoy") == 1
    assert value(text, "vigie_quarantined_clients") == 1
    assert value(text, "vigie_state_backend_up", backend="memory") == 1
    assert value(text, "vigie_upstream_up") == 1
    assert value(text, "vigie_upstream_duration_seconds_count", route="read-patient") >= 36
    # Process and Python collectors.
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "python_info", "python_gc_objects_collected_total"):
        assert any(s.name == name for s in series), name


# Contract section 6, the 0.2 additions: family (as parsed) -> (type, label names), and the
# `reason` vocabulary of the discarded-connections counter, spelled out here (not imported
# from the code) so that a renamed or dropped name fails.
CONTRACT_0_2 = {
    "vigie_build_info": ("gauge", {"version", "revision", "python"}),
    "vigie_upstream_connections_discarded": ("counter", {"reason"}),
    "vigie_upstream_pool_timeouts": ("counter", set()),
    "vigie_upstream_share_refusals": ("counter", set()),
    "vigie_incident_unconfirmed": ("gauge", set()),
}
DISCARD_VOCABULARY = {"idle_bytes", "extra_bytes", "malformed", "incomplete", "timeout",
                      "request_id_mismatch", "interim_upgrade"}


def test_the_0_2_metrics_keep_their_contract_names_types_and_labels(soc: Harness) -> None:
    text = soc.metrics_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels) in CONTRACT_0_2.items():
        family = families.get(name)
        assert family is not None and family.type == kind, name
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        assert samples, f"{name} has no series before the first event"
        for sample in samples:
            assert set(sample.labels) == labels, (name, sample.labels)
    assert value(text, "vigie_build_info", python=platform.python_version()) == 1
    reasons = label_values(text, "vigie_upstream_connections_discarded_total")
    assert reasons == {"reason": DISCARD_VOCABULARY}


def test_label_values_stay_bounded_whatever_the_traffic(soc: Harness) -> None:
    """Many patients, users, paths and garbage tokens: the series set does not grow."""
    traffic = drive_traffic(soc, users=30, reads=60, seed=11)
    for n in range(25):  # paths no route knows, junk credentials, odd request ids
        soc.get(f"/nowhere/{n}/{traffic.subjects.pop()}", f"garbage.{n}.token")
        soc.get(f"/patients/{n}", soc.token("soc-app", sub=f"user-{n}", scope="x"))
    text = soc.metrics_text()
    values = label_values(text)
    assert values["client"] <= CLIENTS
    assert values["route"] <= ROUTES | {"none"}
    assert values["decision"] <= {"allowed", "denied", "throttled", "quarantined", "error"}
    assert values["where"] <= {"field", "text", "header"}
    assert values["signal"] <= set(DETECTION_SIGNALS)
    assert values["action"] <= {"drop", "mask", "generalize", "pseudonymize", "nir", "keep",
                                "quarantine", "throttle", "lift"}
    assert values["backend"] == {"memory"}
    assert values["reason"] <= {"missing", "expired", "signature", "audience", "issuer",
                                "unknown_client", "malformed", "algorithm", "unknown_kid",
                                "claim_missing", "claim_type", "not_yet_valid", "token_type",
                                "too_large",
                                *DISCARD_REASONS}  # vigie_upstream_connections_discarded
    assert all(status.isdigit() and len(status) == 3 for status in values["status"])
    assert values["issuer"] == {ISSUER}  # the configured issuers only (a URL, never a path)
    every = {v for key, vals in values.items() if key not in ("status", "le", "issuer")
             for v in vals}
    for secret in (*traffic.ids, *traffic.subjects, *traffic.tokens):
        assert secret not in every
    assert not [v for v in every if "/" in v]  # never a raw path
    vigie_series = [s for s in parse(text) if s.name.startswith("vigie_")]
    assert len(vigie_series) < 400, len(vigie_series)


def guard_signals() -> set[str]:
    """Every signal name the guard can count: its signals and the literals it detects with."""
    source = "".join(Path(guard_module.__file__).read_text() for guard_module in (
        vigie.guard.admission, vigie.guard.settlement, vigie.guard.detection,
        vigie.guard.signals))
    literals = re.findall(r'Detection\("([a-z_]+)"|signal="([a-z_]+)"|"(decoy)"', source)
    return set(SIGNALS) | {name for group in literals for name in group if name}


def test_the_signal_vocabulary_follows_the_guard() -> None:
    assert guard_signals() == set(DETECTION_SIGNALS)


def test_per_client_series_exist_at_zero_before_the_first_event(soc: Harness) -> None:
    text = soc.metrics_text()
    for client in ("soc-app", "tight-app"):
        for signal in DETECTION_SIGNALS:
            assert [s.value for s in parse(text)
                    if s.name == "vigie_enumeration_detections_total"
                    and s.labels == {"client": client, "signal": signal}] == [0.0], signal
        assert value(text, "vigie_anomaly_score", client=client) == 0.0
        assert f'vigie_anomaly_score{{client="{client}"}} 0.0' in text
    for route in ROUTES:
        for where in ("field", "text", "header"):
            assert f'vigie_nir_detections_total{{client="soc-app",route="{route}",' \
                   f'where="{where}"}} 0.0' in text
    # The first decoy touch moves the pre-created series from 0 to 1: increase() sees it.
    token = soc.token("soc-app", sub="dr-first", scope="patient.read")
    assert soc.get(f"/patients/{DECOY}", token).status_code == 429
    after = soc.metrics_text()
    assert value(after, "vigie_enumeration_detections_total", client="soc-app",
                 signal="decoy") == 1
    assert value(after, "vigie_enumeration_detections_total", client="tight-app") == 0


def test_a_bad_policy_file_fails_the_reload_and_the_old_policies_stay(
        tmp_path: Path, keys: Keys) -> None:
    env = {**GUARD_ENV}
    with Harness(tmp_path, SOC_POLICIES, env=env, keys=keys) as h:
        h.upstream.reply(json={"id": "5", "nir": "185057800608491"})
        token = h.token("soc-app", scope="patient.read")
        assert value(h.metrics_text(), "vigie_policy_reload_failures_total") == 0
        (h.policy_dir / "broken.yaml").write_text("client: broken\nroutes:\n  - name: x\n"
                                                  "    bogus_key: 1\n")
        assert wait_until(lambda: value(h.metrics_text(),
                                        "vigie_policy_reload_failures_total") == 1)
        response = h.get("/patients/5", token)
        assert response.status_code == 200
        assert response.json()["nir"] == "*************91"
        # A valid change is picked up: the new client's series appear at zero.
        (h.policy_dir / "broken.yaml").unlink()
        (h.policy_dir / "late-app.yaml").write_text(SOC_POLICY.replace("soc-app", "late-app"))
        assert wait_until(lambda: 'vigie_anomaly_score{client="late-app"} 0.0'
                          in h.metrics_text())
        text = h.metrics_text()
        assert value(text, "vigie_policy_reload_failures_total") == 1
        assert value(text, "vigie_enumeration_detections_total", client="late-app",
                     signal="sequential_ids") == 0


def test_upstream_up_follows_the_upstream(tmp_path: Path, keys: Keys) -> None:
    env = {**GUARD_ENV, "VIGIE_UPSTREAM_TIMEOUT_SECONDS": "1"}
    with Harness(tmp_path, SOC_POLICIES, env=env, keys=keys) as h:
        token = h.token("soc-app", scope="patient.read")
        h.upstream.reply(json={"id": "5"}, delay=1.5)
        assert h.get("/letters/5", token).status_code == 504
        text = h.metrics_text()
        assert value(text, "vigie_upstream_up") == 0
        assert value(text, "vigie_requests_total", route="letter", status="504",
                     decision="error") == 1
        h.upstream.reply(json={"id": "5"})
        assert h.get("/letters/5", token).status_code == 200
        assert value(h.metrics_text(), "vigie_upstream_up") == 1
