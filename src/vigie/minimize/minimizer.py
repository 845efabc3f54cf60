"""The minimization stage: one upstream response in, the response the client may see out.

Order of decisions for one response:
1. no body (HEAD on a route without response rules, 1xx, 204, 304, or an empty body of
   any type and status): only the headers are scanned (HEAD on a route with rules is
   minimized as the GET it was forwarded as: bindings decide its status);
2. binary types on a route without response rules: streamed; untouched when the
   first bytes are binary, else decoded and scanned as bytes for NIRs (masked in
   place: a text export labelled octet-stream is caught); any type that cannot be inspected on
   a route with response rules: 502;
3. NDJSON, and JSON arrays whose records are `$[*]`: streamed record by record;
4. everything else: read (capped), decoded, minimized, re-serialized (a JSON
   document with field rules goes through the one-scan pass first, `onescan.py`,
   and through the per-value path only when that pass is unsure).

Field rules apply to 2xx responses only; the NIR rule applies to every body and
to every header value. In report-only mode every decision is counted exactly
as in enforce, and the client gets what the upstream sent (a streamed body is
sent decoded, its records unchanged). A body that cannot be inspected is
refused in report-only mode too: that rule holds whatever the policy says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from vigie.context import Decision, Grant, Identity
from vigie.errors import InspectionError, NotFound
from vigie.messages import Headers, OutgoingResponse, UpstreamResponse
from vigie.minimize import nir
from vigie.minimize.bodies import (
    WITHHELD,
    Job,
    decode_text,
    dump_json,
    encode_text,
    looks_like_json,
    parse_json,
    refuse_other_readings,
    scan_text,
)
from vigie.minimize.bytescan import looks_binary, scan_bytes
from vigie.minimize.decode import (
    Kind,
    classify,
    codings,
    decode_all,
    decode_stream,
    parse_content_type,
)
from vigie.minimize.envelope import envelope_for
from vigie.minimize.fields import RecordContext, plan_for
from vigie.minimize.onescan import minimize_once
from vigie.minimize.stream import ArraySplitter, LineSplitter, Splitter, minimize_records
from vigie.minimize.tree import count_nir
from vigie.policy.model import Each, Mode
from vigie.pseudonym import Pseudonymizer
from vigie.rewrite.totals import withhold_totals
from vigie.telemetry.metrics import Metrics

# Headers that describe the upstream's bytes: wrong once the body is re-serialized.
_BODY_HEADERS = frozenset({
    "content-length", "content-encoding", "content-type", "etag", "content-md5", "digest",
    "content-digest", "repr-digest", "content-range", "accept-ranges",
})
_JSON_KINDS = (Kind.JSON, Kind.TEXT, Kind.UNKNOWN)
_UNBOUNDED = 1 << 62  # binary bodies stream through: no size cap, memory stays bounded


class Minimizer:
    def __init__(self, metrics: Metrics, pseudonymizer: Pseudonymizer | None,
                 max_response_bytes: int) -> None:
        self._metrics = metrics
        self._pseudonymizer = pseudonymizer
        self._max = max_response_bytes

    async def minimize(self, upstream: UpstreamResponse, grant: Grant, identity: Identity,
                       decision: Decision) -> OutgoingResponse:
        try:
            response = await self._minimize(upstream, grant, identity, decision)
        except BaseException:
            await upstream.aclose()
            self._flush(grant, identity, decision)
            raise
        if not isinstance(response.body, bytes | bytearray):
            response.body = self._finally(response.body, upstream, grant, identity, decision)
        else:
            self._flush(grant, identity, decision)
        return response

    async def _minimize(self, upstream: UpstreamResponse, grant: Grant, identity: Identity,
                        decision: Decision) -> OutgoingResponse:
        report_only = grant.mode is Mode.REPORT_ONLY
        status = upstream.status
        rules = grant.route.response
        content_type = upstream.header("content-type")
        media, charset = parse_content_type(content_type)
        kind = classify(media)
        headers = _scan_headers(upstream.headers, decision, report_only)

        # HEAD on a route with rules was forwarded as GET (proxy.py): minimized as a GET,
        # so its status and headers are the GET's; the server sends no body for HEAD.
        if (decision.method == "HEAD" and rules is None) or status < 200 \
                or status in (204, 304):
            await upstream.aclose()
            return OutgoingResponse(status, _without_body_headers(headers, content_type))
        if rules is None and kind is Kind.BINARY:
            return await self._binary(upstream, headers, content_type, decision, identity,
                                      report_only)
        if rules is not None and kind in (Kind.BINARY, Kind.UNKNOWN):
            if await _is_empty(upstream):  # a redirect without a body: nothing to inspect
                return OutgoingResponse(status, _without_body_headers(headers, content_type))
            raise InspectionError("response type cannot be inspected")
        length = upstream.header("content-length")
        if length is not None and length.strip().isdigit() and int(length) > self._max:
            raise InspectionError("upstream response too large to inspect")

        plan = plan_for(rules) if rules is not None and 200 <= status < 300 else None
        steps = rules.records.steps if rules is not None else ()
        job = Job(decision, identity, plan, steps,
                  RecordContext(decision, identity.client, self._pseudonymizer),
                  envelope_for(rules) if plan is not None and rules is not None else None)
        names = codings(upstream.headers)
        utf8 = charset in (None, "utf-8", "utf8")
        streamed_array = kind is Kind.JSON and plan is not None and steps == (Each(),)
        if utf8 and (kind is Kind.NDJSON or streamed_array):
            splitter: Splitter = (ArraySplitter(self._max) if streamed_array
                                  else LineSplitter(self._max))
            start = 1 if steps[:1] == (Each(),) else 0
            body = minimize_records(decode_stream(upstream.body, names, self._max), splitter,
                                    job, start=start, array=streamed_array,
                                    report_only=report_only)
            out_headers = _without_body_headers(headers, content_type)
            return OutgoingResponse(status, out_headers, await primed(body))

        raw = await upstream.read(self._max)
        await upstream.aclose()
        if not raw:  # an empty body of any type and status passes (201, 302...)
            return OutgoingResponse(status, _without_body_headers(headers, content_type))
        data = decode_all(raw, names, self._max)
        if kind in _JSON_KINDS and (kind is Kind.JSON or looks_like_json(data)):
            result = await self._json(data, charset, kind, job, decision, report_only)
            if result is not None:
                if report_only:
                    return OutgoingResponse(status, headers, raw)
                json_type = content_type if kind is Kind.JSON and utf8 else "application/json"
                return OutgoingResponse(status, _without_body_headers(headers, json_type),
                                        result)
        if kind is Kind.NDJSON:  # NDJSON in another charset: re-read as text lines
            data = decode_text(data, charset)[0].encode("utf-8")
            body = minimize_records(_once(data), LineSplitter(self._max), job,
                                    start=1 if steps[:1] == (Each(),) else 0, array=False,
                                    report_only=report_only)
            joined = b"".join([piece async for piece in body])
            if report_only:
                return OutgoingResponse(status, headers, raw)
            return OutgoingResponse(status, _without_body_headers(
                headers, f"{media}; charset=utf-8"), joined)
        text, text_charset = decode_text(data, charset)
        masked = encode_text(scan_text(text, decision), text_charset)
        if charset is None:
            refuse_other_readings(masked, text_charset)
        if report_only:
            return OutgoingResponse(status, headers, raw)
        return OutgoingResponse(status, _without_body_headers(headers, content_type), masked)

    async def _binary(self, upstream: UpstreamResponse, headers: Headers,
                      content_type: str | None, decision: Decision, identity: Identity,
                      report_only: bool) -> OutgoingResponse:
        """Streamed, never buffered (scans, archives). Real binary data passes untouched;
        a body whose first bytes are text (a CSV export labelled octet-stream) or that
        is content-encoded is decoded and scanned for NIRs, masked in place."""
        status = upstream.status
        names = codings(upstream.headers)
        first = b""
        async for piece in upstream.body:  # enough bytes to recognise a signature
            first += piece
            if len(first) >= 16:
                break
        body = _chained(first, upstream.body)
        if not names and looks_binary(first):
            return OutgoingResponse(status, headers, body)
        job = Job(decision, identity, None, (), RecordContext(decision, identity.client,
                                                              self._pseudonymizer))
        decoded = decode_stream(body, names, _UNBOUNDED) if names else body
        scanned = scan_bytes(decoded, job, report_only=report_only)
        if names:  # sent decoded, as every streamed body
            headers = _without_body_headers(headers, content_type)
        return OutgoingResponse(status, headers, await primed(scanned))

    async def _json(self, data: bytes, charset: str | None, kind: Kind, job: Job,
                    decision: Decision, report_only: bool) -> bytes | None:
        """The minimized JSON document; None when a body labelled as text is not JSON."""
        try:
            document = parse_json(data, charset)
        except InspectionError:
            if kind is Kind.JSON:
                raise
            return None
        if job.plan is not None:
            withhold_totals(document, job.plan.rule)
            once = minimize_once(document, job)
            if once is not None:
                return once
        result = job.visit(document)
        if result is WITHHELD:
            if report_only:
                decision.would_block = "withheld"
                return b""
            raise NotFound("no such record")
        return dump_json(result)

    async def _finally(self, body: AsyncIterator[bytes], upstream: UpstreamResponse,
                       grant: Grant, identity: Identity,
                       decision: Decision) -> AsyncIterator[bytes]:
        try:
            async for piece in body:
                yield piece
        finally:
            await upstream.aclose()
            self._flush(grant, identity, decision)

    def _flush(self, grant: Grant, identity: Identity, decision: Decision) -> None:
        """Counts of the Decision into the metrics, once per response."""
        client, route = identity.client, grant.route.name
        m = self._metrics
        for action, count in decision.masked.items():
            if count:
                m.child(m.masked_values, client, route, action).inc(count)
        for where, count in decision.nir_detections.items():
            if count:
                m.child(m.nir_detections, client, route, where).inc(count)
        if decision.records:
            m.child(m.records_returned, client, route).inc(decision.records)
        if decision.withheld:
            m.child(m.records_withheld, client, route).inc(decision.withheld)


async def _is_empty(upstream: UpstreamResponse) -> bool:
    """True when the body has no byte (it is read only as far as its first byte)."""
    length = upstream.header("content-length")
    if length is not None and length.strip() == "0":
        return True
    if upstream.header("content-encoding"):
        return False
    async for piece in upstream.body:
        if piece:
            return False
    return True


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _chained(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for piece in rest:
        yield piece


async def primed(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Produce the first piece now, so that an early error is still a clean 502."""
    try:
        first = await anext(body)
    except StopAsyncIteration:
        return _once(b"")

    async def chained() -> AsyncIterator[bytes]:
        yield first
        async for piece in body:
            yield piece
    return chained()


def _scan_headers(headers: Headers, decision: Decision, report_only: bool) -> Headers:
    out: Headers = []
    for name, value in headers:
        masked, found = _mask_header(value)
        masked_name, found_in_name = _mask_header(name)
        if found or found_in_name:
            count_nir(decision, "header", found + found_in_name)
        out.append((name, value) if report_only else (masked_name, masked))
    return out


def _mask_header(value: str) -> tuple[str, int]:
    """A header value (latin-1 decoded) masked as latin-1 and, when its bytes are UTF-8
    (a no-break space, full-width digits...), as UTF-8 too."""
    if not value.isascii():
        try:
            text = value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            text = None
        if text is not None:
            masked, found = nir.mask_text(text)
            if found:
                value = masked.encode("utf-8").decode("latin-1")
                again, more = nir.mask_text(value)
                return again, found + more
    return nir.mask_text(value)


def _without_body_headers(headers: Headers, content_type: str | None) -> Headers:
    out = [(name, value) for name, value in headers if name not in _BODY_HEADERS]
    if content_type:
        out.append(("content-type", content_type))
    return out
