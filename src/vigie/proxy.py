"""The request pipeline, in order, and nothing else.

    identify → revoked? → authorize → contain → guard → forward → minimize → record

Each stage lives in its own module and writes what it decided onto the
request's `Decision`; audit, metrics and traces read it at the end.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import orjson

from vigie.context import Decision, Grant, Identity
from vigie.errors import (
    AuthError,
    BadRequest,
    Forbidden,
    Throttled,
    UpstreamError,
    UpstreamTimeout,
    VigieError,
)
from vigie.forward import Forwarder, request_headers
from vigie.guard import Guard
from vigie.incident.steps import IncidentSteps, NoIncidents
from vigie.learn.usage import NoUsage, UsageSink
from vigie.messages import Headers, OutgoingResponse, UpstreamResponse
from vigie.minimize import Minimizer, nir
from vigie.paths import normalize
from vigie.policy.authorize import authorize
from vigie.policy.model import ClientPolicy, Mode, PolicySet, Route
from vigie.pseudonym import Pseudonymizer
from vigie.request_body import (
    BodyLimits,
    ClientDisconnected,
    ExpectedBody,
    expected_body,
    read_body,
)
from vigie.rewrite.rewriter import LinkRewriter, RequestLinks
from vigie.sending import disconnected, raw_headers, send_whole
from vigie.telemetry.metrics import Metrics
from vigie.telemetry.tracing import Tracing
from vigie.types import Receive, Scope, Send

log = logging.getLogger("vigie.proxy")

ORIGIN_FORM = "vigie.origin_form"  # set by server.OriginFormProtocol

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
AUDIT_SEGMENT = 10_000  # patient references per audit line of a streamed response
NO_CLIENT = "none"  # metric label when no verified client (or not one of ours)
NO_ROUTE = "none"
UNMATCHED = "unmatched"  # report-only: a request no route allows, forwarded and recorded


class Authenticating(Protocol):
    async def authenticate(self, authorization: str | None, *,
                           request_id: str = "-") -> Identity: ...


class PolicySource(Protocol):
    @property
    def current(self) -> PolicySet: ...


class AuditSink(Protocol):
    def record(self, decision: Decision, principal: str | None) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Stages:
    """The collaborators of the pipeline; the seams are Protocols, so tests plug in."""

    authenticator: Authenticating
    policies: PolicySource
    guard: Guard
    forwarder: Forwarder
    minimizer: Minimizer
    audit: AuditSink
    metrics: Metrics
    tracing: Tracing
    pseudonymizer: Pseudonymizer
    default_mode: Mode
    links: LinkRewriter | None = None  # upstream links -> public URL (rewrite/)
    incidents: IncidentSteps = field(default_factory=NoIncidents)
    usage: UsageSink = field(default_factory=NoUsage)  # report-only shapes (learn/usage.py)
    body_limits: BodyLimits = BodyLimits()


class Proxy:
    """The ASGI application of the proxy listener."""

    def __init__(self, stages: Stages) -> None:
        self.s = stages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        headers: Headers = [(k.decode("latin-1"), v.decode("latin-1"))
                            for k, v in scope["headers"]]
        decision = Decision(request_id=_request_id(headers), method=scope["method"])
        tracing = self.s.tracing
        with tracing.request(decision.method, scope["headers"], scope) as span:
            try:
                await self._handle(scope, receive, send, headers, decision)
            except Exception as exc:  # a bug: say which, never what (values may be personal)
                decision.status, decision.decision = 500, "error"
                log.error("internal error request_id=%s: %s", decision.request_id,
                          type(exc).__name__)
                raise
            finally:
                tracing.finish(span, decision)
                self._count(decision)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, headers: Headers,
                      decision: Decision) -> None:
        s = self.s
        identity: Identity | None = None
        grant: Grant | None = None
        principal: str | None = None
        links = s.links.for_request(scope, headers) if s.links is not None else None
        try:
            with s.tracing.stage("authorize"):
                identity = await s.authenticator.authenticate(_credentials(headers),
                                                             request_id=decision.request_id)
                decision.subject = identity.subject
                principal = s.pseudonymizer.principal(identity.client, identity.subject)
                s.incidents.check_revoked(identity, principal, decision)  # 401 revoked
                grant = s.incidents.contain(self._authorize(scope, identity, decision),
                                            decision)  # 403 contained, or the least form
                announced = expected_body(scope["method"], grant.route, headers,
                                          s.body_limits)
            s.tracing.routed(decision.method, grant.route)
            with s.tracing.stage("guard"):
                await s.guard.admit(identity, grant, decision)
            with s.tracing.upstream(decision.method, grant.route) as call:
                upstream = await self._forward(scope, receive, headers, identity, grant,
                                               principal, decision, links, announced)
                s.tracing.upstream_answered(call, upstream.status)
            with s.tracing.stage("minimize"):
                try:
                    outgoing = await s.minimizer.minimize(upstream, grant, identity, decision)
                except BaseException:
                    await upstream.aclose()
                    raise
                if isinstance(outgoing.body, bytes):
                    await upstream.aclose()
                if links is not None:  # a next page or a redirect comes back through us
                    await links.rewrite(outgoing)
        except VigieError as exc:
            await self._refuse(send, exc, decision, identity, grant, principal)
            return
        except ClientDisconnected:
            decision.status, decision.decision, decision.reason = 499, "error", "disconnected"
            await s.guard.release(decision)  # its reservation, if admitted
            return
        decision.status = outgoing.status
        s.usage.observe(identity, grant, decision, outgoing)
        if isinstance(outgoing.body, bytes):
            try:
                await self._record(decision, identity, grant, principal)
            except VigieError as exc:  # fail-closed audit: 503, the body never leaves
                await self._refuse(send, exc, decision, None, grant, principal)
                return
            await send_whole(send, outgoing, outgoing.body, decision.request_id)
        else:
            await self._stream(send, receive, outgoing, outgoing.body, decision, identity, grant,
                               principal)

    def _authorize(self, scope: Scope, identity: Identity, decision: Decision) -> Grant:
        policies = self.s.policies.current
        policy = policies.get(identity.client)
        decision.client = identity.client if policy is not None else NO_CLIENT
        mode = (policy.mode if policy is not None and policy.mode else self.s.default_mode)
        decision.mode = mode
        if not scope.get(ORIGIN_FORM, True):
            raise BadRequest("the request target must be a path (origin form)")
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        try:
            grant = authorize(policies, identity, scope["method"], raw_path, query,
                              self.s.default_mode)
        except (Forbidden, BadRequest) as exc:
            if mode is not Mode.REPORT_ONLY:
                raise
            # Report-only: a well-formed request is forwarded and the refusal recorded.
            path = normalize(raw_path)  # a malformed path is refused even here
            decision.would_block = f"denied:{getattr(exc, 'reason', 'bad_request')}"
            grant = _unmatched_grant(identity, policy, path, query.decode("latin-1"))
        decision.route = grant.route.name
        decision.mode = grant.mode
        return grant

    async def _forward(self, scope: Scope, receive: Receive, headers: Headers,
                       identity: Identity, grant: Grant, principal: str,
                       decision: Decision, links: RequestLinks | None,
                       expected: ExpectedBody | None) -> UpstreamResponse:
        s = self.s
        extra: Headers = [("x-vigie-client", identity.client), ("x-vigie-user", principal),
                          ("x-request-id", decision.request_id)]
        if links is not None:
            extra.extend(links.upstream_headers)
        traceparent = s.tracing.upstream_traceparent(_header(headers, "traceparent"))
        if traceparent:
            extra.append(("traceparent", traceparent))
        outgoing_headers = request_headers(headers, masks=grant.route.masks, extra=extra)
        body = None  # read whole before a connection is taken: a slow client holds none
        if expected is not None:
            body = await read_body(receive, expected, s.body_limits.timeout)
        started = time.perf_counter()
        try:
            upstream = await s.forwarder.send(_upstream_method(scope["method"], grant),
                                              grant.path, grant.query, outgoing_headers, body)
        except (UpstreamError, UpstreamTimeout):
            s.metrics.upstream_up.set(0)
            raise
        decision.upstream_seconds = time.perf_counter() - started
        decision.upstream_status = upstream.status
        s.metrics.upstream_up.set(1)
        s.metrics.child(s.metrics.upstream_duration, grant.route.name).observe(
            decision.upstream_seconds)
        return upstream

    async def _refuse(self, send: Send, exc: VigieError, decision: Decision,
                      identity: Identity | None, grant: Grant | None,
                      principal: str | None) -> None:
        decision.status = exc.status
        if isinstance(exc, Throttled):
            decision.decision = exc.decision
        elif isinstance(exc, AuthError | Forbidden | BadRequest) or exc.status == 404:
            decision.decision = "denied"
        else:
            decision.decision = "error"
        reason = getattr(exc, "reason", None)
        if not (isinstance(exc, Throttled) and decision.reason):  # the guard named its budget
            decision.reason = reason if isinstance(reason, str) else type(exc).__name__
        if isinstance(exc, AuthError):
            decision.auth_failure = exc.reason
        elif isinstance(exc, Forbidden) and exc.reason == "unknown_client":
            decision.auth_failure = "unknown_client"
        if identity is not None:
            try:
                await self._record(decision, identity, grant, principal)
            except VigieError as audit_exc:  # fail-closed audit: 503 instead
                exc = audit_exc
                decision.status, decision.decision = exc.status, "error"
        problem: dict[str, object] = {"type": exc.problem_type, "title": exc.title,
                                      "status": exc.status, "detail": exc.detail,
                                      "request_id": decision.request_id}
        verdict = exc.headers.get("Vigie-Decision", "")
        if isinstance(exc, Throttled) and ";signal=" in verdict:
            # which budget or signal refused: never a threshold, a score or a patient
            problem["signal"] = verdict.partition(";signal=")[2]
        body = orjson.dumps(problem)
        response = OutgoingResponse(status=exc.status, headers=list(exc.headers.items()),
                                    body=body, media_type="application/problem+json")
        await send_whole(send, response, body, decision.request_id)

    async def _record(self, decision: Decision, identity: Identity | None, grant: Grant | None,
                      principal: str | None) -> None:
        """Guard's late facts, then the audit line: before the response leaves."""
        if identity is not None and grant is not None:
            await self.s.guard.observe(identity, grant, decision)
        self.s.audit.record(decision, principal)

    async def _stream(self, send: Send, receive: Receive, outgoing: OutgoingResponse,
                      body: AsyncIterator[bytes], decision: Decision, identity: Identity,
                      grant: Grant, principal: str) -> None:
        """Send a minimized stream; the last chunk is held until the audit line is written."""
        await send({"type": "http.response.start", "status": outgoing.status,
                    "headers": raw_headers(outgoing, decision.request_id, None)})
        pending = b""
        completed = False
        # uvicorn drops sends to a client that left without telling: watch for it, so a
        # long export stops (and is audited as cut short) when its reader is gone.
        gone = asyncio.get_running_loop().create_task(disconnected(receive))
        try:
            async for chunk in body:
                if gone.done():
                    raise ClientDisconnected()
                if len(decision.patients) >= AUDIT_SEGMENT:
                    await self._record_segment(decision, identity, grant, principal)
                if pending:
                    await send({"type": "http.response.body", "body": pending,
                                "more_body": True})
                pending = chunk
            completed = True
            await self._record(decision, identity, grant, principal)
        except VigieError as exc:
            # Headers are gone: abort the stream so the client never takes it as whole.
            decision.status, decision.decision = exc.status, "error"
            decision.reason = type(exc).__name__
            log.warning("stream aborted request_id=%s: %s", decision.request_id, exc.title)
            return
        except ClientDisconnected:
            decision.decision, decision.reason = "error", "disconnected"
            return
        finally:
            gone.cancel()
            aclose = getattr(body, "aclose", None)
            if aclose is not None:  # the client may be gone before the stream was read
                await aclose()
            if not completed:
                await self._record_aborted(decision, identity, grant, principal)
        await send({"type": "http.response.body", "body": pending, "more_body": False})

    async def _record_segment(self, decision: Decision, identity: Identity, grant: Grant,
                              principal: str) -> None:
        """A long stream is audited in segments, each before its records leave.

        Memory stays bounded however large the export, and a stream cut short still
        left a line for every patient it disclosed (the breach list must be complete).
        """
        segment = replace(decision, patients=decision.patients,
                          records=decision.records - decision.records_flushed,
                          records_flushed=0, reason="partial")
        await self.s.guard.observe_disclosed(identity, grant, segment)
        self.s.audit.record(segment, principal)
        decision.records_flushed = decision.records
        decision.patients = []

    async def _record_aborted(self, decision: Decision, identity: Identity, grant: Grant,
                              principal: str) -> None:
        """What an interrupted stream already disclosed still gets its audit line."""
        if decision.decision == "allowed":
            decision.decision, decision.reason = "error", decision.reason or "stream_aborted"
        try:
            await self._record(decision, identity, grant, principal)
        except VigieError:
            log.error("audit line of an aborted stream could not be written request_id=%s",
                      decision.request_id)

    def _count(self, decision: Decision) -> None:
        m = self.s.metrics
        route = decision.route or NO_ROUTE
        m.child(m.requests, decision.client or NO_CLIENT, route, str(decision.status),
                          decision.decision).inc()
        m.child(m.request_duration, route).observe(decision.elapsed())
        if decision.auth_failure:
            m.child(m.auth_failures, decision.auth_failure).inc()


def _unmatched_grant(identity: Identity, policy: ClientPolicy | None, path: str,
                     query: str) -> Grant:
    route = Route(name=UNMATCHED, methods=frozenset(), path=path, segments=(), params=())
    return Grant(policy=policy or ClientPolicy(client=identity.client, routes=()), route=route,
                 path=path, query=query, params={}, mode=Mode.REPORT_ONLY)


def _upstream_method(method: str, grant: Grant) -> str:
    """HEAD on a route with response rules is asked of the upstream as GET, so the GET
    answer decides (bindings, withheld records): HEAD is no existence oracle."""
    return "GET" if method == "HEAD" and grant.route.masks else method


def _request_id(headers: Headers) -> str:
    given = _header(headers, "x-request-id")
    # A NIR as correlation id would reach the audit log and the logs: replaced, never echoed.
    if given and _REQUEST_ID.fullmatch(given) and not nir.contains(given):
        return given
    # A random hex id can spell a valid NIR too (the soak met one in ~100,000 requests),
    # and it is echoed to the client, written to the audit log and the logs: drawn again.
    while nir.contains(fresh := secrets.token_hex(16)):
        pass
    return fresh


def _credentials(headers: Headers) -> str | None:
    """The Authorization value; several are joined (RFC 9110 §5.3) so that they fail whole:
    which of two credentials counts would be ambiguous, so neither does."""
    values = [value for key, value in headers if key == "authorization"]
    return ", ".join(values) if values else None


def _header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None
