"""The proxy's use of the tracing interface, for tests that look at the spans it makes."""

from __future__ import annotations

from typing import Any

from support.audit import make_decision
from vigie.policy.model import Route
from vigie.telemetry.tracing import Tracing

ROUTE = Route(name="read-patient", methods=frozenset({"GET"}), path="/patients/{id}",
              segments=("patients", None), params=("id",))


def run_request(tracing: Tracing, headers: Any, scope: dict[str, Any] | None = None,
                *, client_traceparent: str | None = None, upstream_status: int = 200,
                **decision: Any) -> str | None:
    """A request span, the stages, the upstream call, finish; the upstream's traceparent."""
    upstream_header = None
    with tracing.request("GET", headers, scope) as span:
        with tracing.stage("authorize"):
            pass
        tracing.routed("GET", ROUTE)
        with tracing.stage("guard"):
            pass
        with tracing.upstream("GET", ROUTE) as call:
            upstream_header = tracing.upstream_traceparent(client_traceparent)
            tracing.upstream_answered(call, upstream_status)
        with tracing.stage("minimize"):
            pass
        tracing.finish(span, make_decision(**decision))
    return upstream_header
