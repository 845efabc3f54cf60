"""OpenTelemetry traces: one server span per request, one child span per pipeline stage.

The server span follows the stable HTTP semantic conventions: named
`GET /patients/{id}` (method and the policy's path template) once a route matched,
else `GET`, with `http.route`, `url.scheme`, `server.*`, `http.response.status_code`
and `error.type`; the upstream call is a CLIENT span (`server.address`, a scrubbed
`url.full`); the resource carries `service.version` (http_semconv.py).

Off by default, and then free: `request()` and `stage()` hand back one shared
no-op context manager and no SDK object is ever created. On when the standard
variables ask for it (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_TRACES_EXPORTER=otlp`; never with
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`), exporting OTLP/HTTP
protobuf. The client's W3C `traceparent` is continued, and the upstream gets
one naming the current span; when off, a valid client `traceparent` passes to
the upstream unchanged. Spans carry bounded attributes only (client, policy
route name, decision, counts, status): never a NIR, a name, a token, a
principal or a path with an id. Exceptions are recorded by type only, since
their messages may quote data.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from vigie import __version__
from vigie.context import Decision
from vigie.policy.model import Route
from vigie.telemetry.http_semconv import (
    UpstreamTarget,
    route_attributes,
    server_attributes,
)

log = logging.getLogger("vigie.tracing")

Headers = Mapping[str, str] | list[tuple[bytes, bytes]]

_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-[0-9a-f]{2}"
    r"(?P<rest>-.*)?\Z")
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(slots=True)
class RequestSpan:
    """The request's server span (None when tracing is off)."""

    span: trace.Span | None = None


_NO_SPAN = RequestSpan()
_NO_REQUEST: AbstractContextManager[RequestSpan] = nullcontext(_NO_SPAN)
_NO_STAGE: AbstractContextManager[None] = nullcontext()


class Tracing:
    """Spans for the proxy pipeline; `enabled` False makes every call a constant."""

    def __init__(self, provider: TracerProvider | None,
                 upstream: UpstreamTarget | None = None) -> None:
        self._provider = provider
        self.enabled = provider is not None
        self._tracer = provider.get_tracer("vigie", __version__) if provider is not None else None
        self._upstream = upstream

    @classmethod
    def disabled(cls) -> Tracing:
        return cls(None)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str],
                         exporter: SpanExporter | None = None,
                         upstream: str | None = None) -> Tracing:
        """Tracing as the OTEL_* variables of `environ` configure it.

        An `exporter` given here (tests, embedding) turns tracing on with a
        synchronous processor; otherwise OTLP/HTTP behind a batch processor.
        """
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls.disabled()
        if exporter is None:
            exporter = _otlp_exporter(environ)
            if exporter is None:
                return cls.disabled()
            processor: SimpleSpanProcessor | BatchSpanProcessor = _batch_processor(
                exporter, environ)
        else:
            processor = SimpleSpanProcessor(exporter)
        attributes: dict[str, str] = {SERVICE_NAME: "vigie", SERVICE_VERSION: __version__}
        attributes.update(_pairs(environ.get("OTEL_RESOURCE_ATTRIBUTES", "")))
        if environ.get("OTEL_SERVICE_NAME"):
            attributes[SERVICE_NAME] = environ["OTEL_SERVICE_NAME"]
        provider = TracerProvider(sampler=_sampler(environ), resource=Resource.create(attributes),
                                  shutdown_on_exit=False)
        provider.add_span_processor(processor)
        return cls(provider, UpstreamTarget.from_url(upstream) if upstream else None)

    def request(self, method: str, headers: Headers,
                scope: Mapping[str, Any] | None = None) -> AbstractContextManager[RequestSpan]:
        """The server span of one request, current (contextvars) inside the `with` block."""
        if self._tracer is None:
            return _NO_REQUEST
        return self._request_span(method, headers, scope)

    def routed(self, method: str, route: Route) -> None:
        """The request matched `route`: name the current (server) span after its template."""
        if self._tracer is None:
            return
        attributes = route_attributes(route)
        current = trace.get_current_span()
        if attributes is not None and current.is_recording():
            current.update_name(f"{method} {route.path}")
            current.set_attributes(attributes)

    def upstream(self, method: str, route: Route) -> AbstractContextManager[RequestSpan]:
        """The CLIENT span of the upstream call (current inside the `with` block)."""
        if self._tracer is None:
            return _NO_REQUEST
        return self._client_span(method, route)

    def upstream_answered(self, call: RequestSpan, status: int) -> None:
        current = call.span
        if current is None or not current.is_recording():
            return
        current.set_attribute("http.response.status_code", status)
        if status >= 400:  # client spans: 4xx and 5xx are errors (semantic conventions)
            current.set_attribute("error.type", str(status))
            current.set_status(Status(StatusCode.ERROR))

    def stage(self, name: str) -> AbstractContextManager[None]:
        """A child span of the current request span for one pipeline stage."""
        if self._tracer is None:
            return _NO_STAGE
        return self._stage_span(name)

    def finish(self, span: RequestSpan, decision: Decision) -> None:
        """Attach what was decided (the name and `http.route` came from `routed`)."""
        current = span.span
        if current is None or not current.is_recording():
            return
        attributes: dict[str, str | int | float] = {
            "http.response.status_code": decision.status,
            "vigie.decision": decision.decision,
            "vigie.mode": str(decision.mode),
            "vigie.records": decision.records,
            "vigie.withheld": decision.withheld,
            "vigie.masked": decision.masked_total,
            "vigie.anomaly_score": decision.anomaly_score,
        }
        for key, value in (("vigie.client", decision.client), ("vigie.route", decision.route),
                           ("vigie.reason", decision.reason),
                           ("vigie.would_block", decision.would_block),
                           ("vigie.auth_failure", decision.auth_failure)):
            if value is not None:
                attributes[key] = value
        if decision.status >= 500:
            # the exception type when one is named, else the status code (semantic conventions)
            attributes["error.type"] = (decision.reason if decision.decision == "error"
                                        and decision.reason else str(decision.status))
        current.set_attributes(attributes)
        if decision.status >= 500:
            current.set_status(Status(StatusCode.ERROR))

    def upstream_traceparent(self, incoming: str | None) -> str | None:
        """The `traceparent` for the upstream request.

        On: the current span (the upstream stage when called inside it). Off, or
        outside any span: the client's value if it is valid W3C, else a fresh
        unsampled one, so the upstream can always correlate its logs.
        """
        if self._tracer is not None:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                return (f"00-{context.trace_id:032x}-{context.span_id:016x}-"
                        f"{int(context.trace_flags):02x}")
        if incoming is not None and valid_traceparent(incoming):
            return incoming
        return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00"

    def force_flush(self, timeout_millis: int = 5000) -> bool:
        return self._provider.force_flush(timeout_millis) if self._provider else True

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()

    @contextmanager
    def _request_span(self, method: str, headers: Headers,
                      scope: Mapping[str, Any] | None) -> Iterator[RequestSpan]:
        parent = _PROPAGATOR.extract(_trace_headers(headers))
        attributes: dict[str, str | int] = {"http.request.method": method}
        if scope is not None:
            attributes.update(server_attributes(scope))
        with self._started(method, SpanKind.SERVER, context=parent,
                           attributes=attributes) as span:
            yield RequestSpan(span)

    @contextmanager
    def _client_span(self, method: str, route: Route) -> Iterator[RequestSpan]:
        attributes: Mapping[str, str | int] = (
            {"http.request.method": method} if self._upstream is None
            else self._upstream.attributes(method, route))
        with self._started(method, SpanKind.CLIENT, attributes=attributes) as span:
            yield RequestSpan(span)

    @contextmanager
    def _stage_span(self, name: str) -> Iterator[None]:
        with self._started(name, SpanKind.INTERNAL):
            yield

    @contextmanager
    def _started(self, name: str, kind: SpanKind, *, context: Context | None = None,
                 attributes: Mapping[str, str | int] | None = None) -> Iterator[trace.Span]:
        """A current span whose failure is recorded by exception type only."""
        assert self._tracer is not None  # noqa: S101 - only called when enabled
        with self._tracer.start_as_current_span(
            name, context=context, kind=kind, record_exception=False,
            set_status_on_exception=False, attributes=attributes,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                _mark_failed(span, exc)
                raise


def valid_traceparent(value: str) -> bool:
    """Whether `value` is a W3C trace-context `traceparent` a proxy may forward."""
    match = _TRACEPARENT.match(value.strip())
    if match is None or match["version"] == "ff":
        return False
    if match["version"] == "00" and match["rest"] is not None:
        return False
    return match["trace"] != "0" * 32 and match["span"] != "0" * 16


def _mark_failed(span: trace.Span, exc: BaseException) -> None:
    # The type only: a message may quote a body, a token or a NIR.
    span.set_attribute("error.type", type(exc).__name__)
    status = getattr(exc, "status", 500)
    if not isinstance(status, int) or status >= 500:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def _trace_headers(headers: Headers) -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(headers, list):
        for raw_name, raw_value in headers:
            lowered = raw_name.lower()
            if lowered in (b"traceparent", b"tracestate"):
                found[lowered.decode()] = raw_value.decode("latin-1")
    else:
        for key in ("traceparent", "tracestate"):
            value = headers.get(key)
            if value is None:
                value = next((v for k, v in headers.items() if k.lower() == key), None)
            if value is not None:
                found[key] = value
    return found


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if chosen == "none" or (not endpoint and not base and chosen != "otlp"):
        return None
    if chosen not in ("", "otlp"):
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported; exporting OTLP/HTTP", chosen)
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if protocol != "http/protobuf":
        log.warning("OTLP protocol %s is not supported; using http/protobuf", protocol)
    if not endpoint:
        endpoint = (base or "http://localhost:4318").rstrip("/") + "/v1/traces"
    # Imported here: the exporter pulls in requests, a cost only tracing users should pay.
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    headers = _pairs(environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
    headers.update(_pairs(environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")))
    timeout = (environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
               or environ.get("OTEL_EXPORTER_OTLP_TIMEOUT"))
    compression = (environ.get("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
                   or environ.get("OTEL_EXPORTER_OTLP_COMPRESSION") or "none").strip().lower()
    return OTLPSpanExporter(
        endpoint=endpoint, headers=headers,
        timeout=_number(timeout, 10000.0) / 1000.0 if timeout else None,
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    )


def _batch_processor(exporter: SpanExporter, environ: Mapping[str, str]) -> BatchSpanProcessor:
    def option(variable: str) -> float | None:
        value = _number(environ.get(variable), -1.0)
        return value if value > 0 else None

    queue, batch = option("OTEL_BSP_MAX_QUEUE_SIZE"), option("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
    return BatchSpanProcessor(
        exporter,
        max_queue_size=None if queue is None else int(queue),
        schedule_delay_millis=option("OTEL_BSP_SCHEDULE_DELAY"),
        max_export_batch_size=None if batch is None else int(batch),
        export_timeout_millis=option("OTEL_BSP_EXPORT_TIMEOUT"),
    )


def _sampler(environ: Mapping[str, str]) -> Sampler:
    name = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    ratio = min(1.0, max(0.0, _number(environ.get("OTEL_TRACES_SAMPLER_ARG"), 1.0)))
    roots: dict[str, Sampler] = {
        "always_on": ALWAYS_ON, "always_off": ALWAYS_OFF, "traceidratio": TraceIdRatioBased(ratio),
    }
    if name in roots:
        return roots[name]
    if name.startswith("parentbased_") and name[len("parentbased_"):] in roots:
        return ParentBased(roots[name[len("parentbased_"):]])
    log.warning("OTEL_TRACES_SAMPLER=%s is not supported; using parentbased_always_on", name)
    return ParentBased(ALWAYS_ON)


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        log.warning("ignoring a non-numeric OTEL_* value: %r", text)
        return default


def _pairs(text: str) -> dict[str, str]:
    """`key=value,key2=value2` (W3C baggage-like, percent-encoded) as a dict."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs
