"""Spans, nesting, attributes, W3C trace context, and the free disabled path."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import vigie
from support.audit import make_decision
from support.tracing import run_request as shared_run_request
from vigie.errors import NotFound
from vigie.policy.model import Route
from vigie.telemetry.tracing import Tracing, valid_traceparent

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"
NIR = "185057800608491"
STAGES = ("authorize", "guard", "minimize")  # INTERNAL; the upstream call is a CLIENT span
ROOT = "GET /patients/{id}"
SCOPE = {"type": "http", "scheme": "https", "http_version": "1.1", "method": "GET",
         "path": f"/patients/{NIR}", "headers": [(b"host", b"vigie.chu.example:8443")],
         "server": ("10.0.0.5", 8443)}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Tracing:
    return Tracing.from_environment({}, exporter=exporter)


def run_request(tracing: Tracing, headers: object, **decision: object) -> str | None:
    """The proxy's use of the interface, with the client's traceparent offered upstream."""
    upstream_status = int(str(decision.pop("upstream_status", 200)))
    return shared_run_request(tracing, headers, SCOPE, client_traceparent=TRACEPARENT,
                              upstream_status=upstream_status, **decision)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


@pytest.mark.parametrize("headers", [
    [(b"host", b"x"), (b"traceparent", TRACEPARENT.encode())],
    {"Traceparent": TRACEPARENT, "Host": "x"},
], ids=["asgi-raw", "mapping"])
def test_request_and_stage_spans_continue_the_client_trace(
        tracing: Tracing, exporter: InMemorySpanExporter, headers: object) -> None:
    upstream_header = run_request(tracing, headers)
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {ROOT, "GET", *STAGES}
    root = spans[ROOT]
    assert root.kind is SpanKind.SERVER
    assert root.context is not None and root.parent is not None
    assert f"{root.context.trace_id:032x}" == CLIENT_TRACE
    assert f"{root.parent.span_id:016x}" == CLIENT_PARENT and root.parent.is_remote
    for stage in STAGES:
        child = spans[stage]
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.kind is SpanKind.INTERNAL
    assert spans["GET"].kind is SpanKind.CLIENT
    assert spans["GET"].parent is not None
    assert spans["GET"].parent.span_id == root.context.span_id
    upstream = spans["GET"].context
    assert upstream is not None
    assert upstream_header == f"00-{CLIENT_TRACE}-{upstream.span_id:016x}-01"


def test_finish_sets_bounded_attributes_only(tracing: Tracing,
                                             exporter: InMemorySpanExporter) -> None:
    run_request(tracing, [], subject=f"Jean Dupont {NIR}", patients=["42", NIR],
                masked=Counter(mask=2, drop=1), records=2, withheld=1, reason="bind")
    root = by_name(exporter.get_finished_spans())[ROOT]
    assert dict(root.attributes or {}) == {
        "http.request.method": "GET", "http.response.status_code": 200,
        "http.route": "/patients/{id}", "url.path": "/patients/REDACTED", "url.scheme": "https",
        "server.address": "vigie.chu.example", "server.port": 8443,
        "network.protocol.version": "1.1",
        "vigie.client": "gp-frontdesk", "vigie.route": "read-patient",
        "vigie.decision": "allowed", "vigie.mode": "enforce", "vigie.records": 2,
        "vigie.withheld": 1, "vigie.masked": 3, "vigie.anomaly_score": 0.25,
        "vigie.reason": "bind",
    }
    rendered = repr([(s.name, s.attributes, s.events) for s in exporter.get_finished_spans()])
    for forbidden in (NIR, "Dupont", "42", "dr.house", "/patients/4", "/patients/1"):
        assert forbidden not in rendered


def test_exceptions_are_recorded_by_type_never_by_message(
        tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="bad"), tracing.request("GET", []):
        with tracing.stage("minimize"):
            raise ValueError(f"bad body near {NIR}")
    with pytest.raises(NotFound), tracing.request("GET", []):
        with tracing.stage("minimize"):
            raise NotFound()
    failed, _, not_found, _ = exporter.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {}) == {"error.type": "ValueError"}
    assert not failed.events and NIR not in repr(failed.status.description)
    assert not_found.status.status_code is StatusCode.UNSET  # 4xx is not a server error


def test_server_errors_mark_the_request_span(tracing: Tracing,
                                             exporter: InMemorySpanExporter) -> None:
    run_request(tracing, [], status=502, decision="error", reason="UpstreamError",
                upstream_status=503)
    spans = by_name(exporter.get_finished_spans())
    assert spans[ROOT].status.status_code is StatusCode.ERROR
    assert spans[ROOT].attributes is not None
    assert spans[ROOT].attributes["error.type"] == "UpstreamError"
    assert spans["GET"].attributes is not None
    assert spans["GET"].attributes["error.type"] == "503"
    assert spans["GET"].status.status_code is StatusCode.ERROR


def test_without_a_client_trace_a_new_one_starts(tracing: Tracing,
                                                 exporter: InMemorySpanExporter) -> None:
    run_request(tracing, [(b"traceparent", b"garbage")])
    root = by_name(exporter.get_finished_spans())[ROOT]
    assert root.parent is None and root.context is not None
    assert f"{root.context.trace_id:032x}" != CLIENT_TRACE


async def test_concurrent_requests_keep_their_own_stages(
        tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    async def one(index: int) -> None:
        with tracing.request("GET", []) as span:
            with tracing.stage("upstream"):
                await asyncio.sleep(0.01 * (3 - index))
            tracing.finish(span, make_decision(route=f"route-{index}"))

    await asyncio.gather(*(one(i) for i in range(3)))
    spans = exporter.get_finished_spans()
    roots = {s.context.span_id: s for s in spans if s.kind is SpanKind.SERVER and s.context}
    stages = [s for s in spans if s.name == "upstream"]
    assert len(roots) == 3 and len(stages) == 3
    for stage in stages:
        assert stage.parent is not None and stage.parent.span_id in roots
        assert stage.context is not None
        assert roots[stage.parent.span_id].context.trace_id == stage.context.trace_id  # type: ignore[union-attr]
    assert len({stage.parent.span_id for stage in stages if stage.parent}) == 3


@pytest.mark.parametrize("environ", [
    {},
    {"OTEL_SERVICE_NAME": "vigie"},
    {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces",
     "OTEL_SDK_DISABLED": "true"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_TRACES_EXPORTER": "none"},
], ids=["nothing", "service-name-only", "sdk-disabled", "exporter-none"])
def test_off_by_default_and_when_disabled(environ: dict[str, str]) -> None:
    tracing = Tracing.from_environment(environ)
    assert not tracing.enabled
    first, second = tracing.request("GET", []), tracing.request("POST", [])
    assert first is second  # one shared no-op: nothing allocated per request
    assert tracing.stage("guard") is tracing.stage("upstream")
    with first as span, tracing.stage("guard"):
        tracing.finish(span, make_decision())
    assert span.span is None
    tracing.shutdown()


def test_sdk_disabled_wins_over_an_injected_exporter(exporter: InMemorySpanExporter) -> None:
    tracing = Tracing.from_environment({"OTEL_SDK_DISABLED": "TRUE"}, exporter=exporter)
    run_request(tracing, [(b"traceparent", TRACEPARENT.encode())])
    assert not tracing.enabled and exporter.get_finished_spans() == ()


def test_enabled_by_endpoint_variables() -> None:
    for environ in ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
                    {"OTEL_TRACES_EXPORTER": "otlp"}):
        tracing = Tracing.from_environment(environ)
        assert tracing.enabled
        tracing.shutdown()


def test_disabled_passes_a_valid_client_traceparent_unchanged() -> None:
    tracing = Tracing.from_environment({})
    assert tracing.upstream_traceparent(TRACEPARENT) == TRACEPARENT
    for bad in (None, "garbage", f"00-{'0' * 32}-{CLIENT_PARENT}-01",
                f"ff-{CLIENT_TRACE}-{CLIENT_PARENT}-01", f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01-x",
                TRACEPARENT.upper()):
        fresh = tracing.upstream_traceparent(bad)
        assert fresh is not None and valid_traceparent(fresh)
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", fresh)
        assert CLIENT_TRACE not in fresh
    future_version = f"01-{CLIENT_TRACE}-{CLIENT_PARENT}-01-extra"
    assert tracing.upstream_traceparent(future_version) == future_version


def test_sampler_always_off_records_nothing_but_still_propagates(
        exporter: InMemorySpanExporter) -> None:
    tracing = Tracing.from_environment({"OTEL_TRACES_SAMPLER": "always_off"}, exporter=exporter)
    upstream_header = run_request(tracing, [(b"traceparent", TRACEPARENT.encode())])
    assert exporter.get_finished_spans() == ()
    assert upstream_header is not None and upstream_header.startswith(f"00-{CLIENT_TRACE}-")


def test_parent_based_sampler_honours_an_unsampled_client(
        exporter: InMemorySpanExporter) -> None:
    tracing = Tracing.from_environment({}, exporter=exporter)
    run_request(tracing, [(b"traceparent", TRACEPARENT[:-2].encode() + b"00")])
    assert exporter.get_finished_spans() == ()
    run_request(tracing, [])
    assert len(exporter.get_finished_spans()) == 5


def test_the_upstream_call_is_a_client_span_with_a_scrubbed_url(
        exporter: InMemorySpanExporter) -> None:
    tracing = Tracing.from_environment({}, exporter=exporter,
                                       upstream="http://legacy.chu.local:8000/api/v2")
    run_request(tracing, [])
    client = by_name(exporter.get_finished_spans())["GET"]
    assert dict(client.attributes or {}) == {
        "http.request.method": "GET", "server.address": "legacy.chu.local", "server.port": 8000,
        "url.full": "http://legacy.chu.local:8000/api/v2/patients/REDACTED",
        "url.template": "/api/v2/patients/{id}", "http.response.status_code": 200,
    }
    assert client.resource.attributes["service.version"] == vigie.__version__


def test_a_request_no_route_matched_records_no_path(tracing: Tracing,
                                                    exporter: InMemorySpanExporter) -> None:
    unmatched = Route(name="unmatched", methods=frozenset(), path=f"/patients/{NIR}",
                      segments=(), params=())  # report-only forwards what no route allows
    with tracing.request("GET", [], SCOPE) as span:
        tracing.routed("GET", unmatched)
        with tracing.upstream("GET", unmatched) as call:
            tracing.upstream_answered(call, 200)
        tracing.finish(span, make_decision(route="unmatched"))
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"GET"} and len(exporter.get_finished_spans()) == 2
    rendered = repr([dict(s.attributes or {}) for s in exporter.get_finished_spans()])
    assert NIR not in rendered and "url.full" not in rendered and "http.route" not in rendered


@pytest.mark.parametrize(("host", "address", "port"), [
    (b"vigie.chu.example", "vigie.chu.example", 443),
    (b"[::1]:8443", "::1", 8443),
    (b"Jean Dupont <x>", "10.0.0.5", 8443),  # not a host name: the listener's address instead
])
def test_server_address_comes_from_a_plain_host_header(
        tracing: Tracing, exporter: InMemorySpanExporter, host: bytes, address: str,
        port: int) -> None:
    with tracing.request("GET", [], {**SCOPE, "headers": [(b"host", host)]}):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert (span.attributes["server.address"], span.attributes["server.port"]) == (address, port)
