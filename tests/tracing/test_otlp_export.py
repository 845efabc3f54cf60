"""Real OTLP/HTTP export: spans configured by OTEL_* variables reach a loopback receiver."""

from __future__ import annotations

from support.otlp import OtlpReceiver
from support.tracing import run_request
from vigie.telemetry.tracing import Tracing

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STAGES = ("authorize", "guard", "GET", "minimize")  # "GET": the upstream call (CLIENT)


def serve_one(tracing: Tracing) -> None:
    run_request(tracing, [(b"traceparent", TRACEPARENT.encode())], patients=["42"])


def test_spans_arrive_over_otlp_http() -> None:
    with OtlpReceiver() as receiver:
        tracing = Tracing.from_environment({
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "vigie-under-test",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        })
        assert tracing.enabled
        serve_one(tracing)
        spans = receiver.wait_for(5)
        tracing.shutdown()
    assert len(spans) == 5
    names = {span.name: span for span in spans}
    root = names["GET /patients/{id}"]
    assert root.attributes["http.route"] == "/patients/{id}"
    assert root.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert root.parent_span_id == "00f067aa0ba902b7"
    assert root.resource["service.name"] == "vigie-under-test"
    assert root.resource["deployment.environment"] == "test"
    assert root.attributes["vigie.client"] == "gp-frontdesk"
    assert root.attributes["http.response.status_code"] == 200
    for stage in STAGES:
        assert names[stage].parent_span_id == root.span_id
        assert names[stage].trace_id == root.trace_id
    assert "42" not in repr([span.attributes for span in spans])


def test_base_endpoint_headers_and_gzip() -> None:
    with OtlpReceiver() as receiver:
        base = receiver.endpoint.removesuffix("/v1/traces")
        tracing = Tracing.from_environment({
            "OTEL_EXPORTER_OTLP_ENDPOINT": base,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=s3cret%20value",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        })
        serve_one(tracing)
        tracing.shutdown()  # flushes the batch processor
        spans = receiver.wait_for(5)
    assert len(spans) == 5
    assert receiver.requests[0]["x-collector-key"] == "s3cret value"
    assert receiver.requests[0]["Content-Encoding"] == "gzip"
