"""Traces end to end: the proxy exports OTLP/HTTP to a real receiver, trace context flows."""

from __future__ import annotations

import re
from pathlib import Path

import vigie
from support.harness import Harness, Keys
from support.otlp import OtlpReceiver, ReceivedSpan
from support.soc import GUARD_ENV, SOC_POLICIES, patient_upstream

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"
STAGES = {"authorize", "guard", "GET", "minimize"}  # "GET": the upstream call, a CLIENT span
ROOT = "GET /patients/{id}"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def otel_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {**GUARD_ENV, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "vigie-soc"}


def trace_of(spans: list[ReceivedSpan], trace_id: str) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans if s.trace_id == trace_id}


def test_request_and_stage_spans_reach_the_collector_and_the_upstream_joins_the_trace(
        tmp_path: Path, keys: Keys) -> None:
    with OtlpReceiver() as otlp, \
            Harness(tmp_path, SOC_POLICIES, env=otel_env(otlp), keys=keys) as h:
        h.upstream.handler = patient_upstream
        token = h.token("soc-app", scope="patient.read")
        given = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"
        response = h.get("/patients/42", token, headers={"traceparent": given})
        assert response.status_code == 200
        sent = TRACEPARENT.fullmatch(h.upstream.requests[-1].headers["traceparent"])
        assert sent is not None
        spans = trace_of(otlp.wait_for(5), CLIENT_TRACE)  # the client's trace is continued
        assert set(spans) == {ROOT, *STAGES}
        root = spans[ROOT]
        assert root.parent_span_id == CLIENT_PARENT
        assert root.resource["service.name"] == "vigie-soc"
        for stage in STAGES:
            assert spans[stage].parent_span_id == root.span_id, stage
        # The upstream got the same trace, its parent being the upstream call's CLIENT span.
        assert sent.group(1) == CLIENT_TRACE and sent.group(2) == spans["GET"].span_id
        assert sent.group(3) == "01"
        attributes = root.attributes
        assert attributes["vigie.client"] == "soc-app"
        assert attributes["vigie.route"] == "read-patient"
        assert attributes["vigie.decision"] == "allowed"
        assert attributes["vigie.records"] == 1
        assert attributes["vigie.masked"] >= 4  # drop, mask, mask all, generalize, NIR
        assert attributes["http.response.status_code"] == 200
        # Stable HTTP semantic conventions: the template, never the id.
        assert attributes["http.route"] == "/patients/{id}"
        assert attributes["url.path"] == "/patients/REDACTED"
        assert attributes["url.scheme"] == "http"
        assert attributes["server.address"] == "127.0.0.1"
        assert root.resource["service.version"] == vigie.__version__
        call = spans["GET"]
        assert call.kind == 3  # SPAN_KIND_CLIENT
        upstream_port = int(h.settings.upstream.rsplit(":", 1)[1])
        assert call.attributes["server.address"] == "127.0.0.1"
        assert call.attributes["server.port"] == upstream_port
        assert call.attributes["url.full"] == (f"http://127.0.0.1:{upstream_port}"
                                               "/patients/REDACTED")
        assert call.attributes["http.response.status_code"] == 200
        values = [str(v) for s in spans.values() for v in (s.name, *s.attributes.values())]
        assert not [v for v in values if v == "42" or "/42" in v]  # the patient id, anywhere


def test_a_new_trace_without_a_client_traceparent_and_refusals_are_traced(
        tmp_path: Path, keys: Keys) -> None:
    with OtlpReceiver() as otlp, \
            Harness(tmp_path, SOC_POLICIES, env=otel_env(otlp), keys=keys) as h:
        h.upstream.handler = patient_upstream
        assert h.get("/letters/3", h.token("soc-app", scope="patient.read")).status_code == 200
        sent = TRACEPARENT.fullmatch(h.upstream.requests[-1].headers["traceparent"])
        assert sent is not None and sent.group(1) != CLIENT_TRACE
        assert h.get("/patients/3", h.token("soc-app", scope="nothing")).status_code == 403
        assert h.get("/patients/3").status_code == 401
        spans = otlp.wait_for(5 + 2 + 1)
        letter = trace_of(spans, sent.group(1))
        assert set(letter) == {"GET /letters/{id}", *STAGES}
        assert letter["GET /letters/{id}"].parent_span_id == ""
        assert sent.group(2) == letter["GET"].span_id
        refused = [s for s in spans if s.name == "GET" and s.parent_span_id == ""]
        by_status = {s.attributes["http.response.status_code"]: s for s in refused}
        assert by_status[403].attributes["vigie.decision"] == "denied"
        assert by_status[403].attributes["vigie.reason"] == "scope"
        assert by_status[401].attributes["vigie.auth_failure"] == "missing"
        assert len(h.upstream.requests) == 1  # refusals reached nothing


def test_tracing_is_off_without_otel_variables(tmp_path: Path, keys: Keys) -> None:
    with OtlpReceiver() as otlp:
        # OTEL_SDK_DISABLED wins over an endpoint; with no variable at all there is no SDK.
        for env in ({}, {"OTEL_SDK_DISABLED": "true",
                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.endpoint}):
            with Harness(tmp_path, SOC_POLICIES, env={**GUARD_ENV, **env}, keys=keys) as h:
                assert h.vigie is not None and not h.vigie.stages.tracing.enabled
                h.upstream.handler = patient_upstream
                token = h.token("soc-app", scope="patient.read")
                given = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"
                assert h.get("/patients/5", token, headers={"traceparent": given}).is_success
                # Off: the client's valid traceparent passes unchanged; without one, a
                # fresh unsampled one lets the upstream correlate its logs anyway.
                assert h.upstream.requests[-1].headers["traceparent"] == given
                assert h.get("/patients/6", token).is_success
                fresh = TRACEPARENT.fullmatch(h.upstream.requests[-1].headers["traceparent"])
                assert fresh is not None and fresh.group(3) == "00"
        assert otlp.wait_for(1, timeout=1.0) == []
