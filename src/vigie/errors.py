"""The errors that stop a request, each with its HTTP status and problem type.

Every stage of the pipeline raises one of these; `proxy.py` turns it into an
RFC 9457 problem response. Nothing else is caught on the request path.

    VigieError                     (500, generic)
    ├── AuthError                  401  missing/invalid credentials (reason)
    ├── Forbidden                  403  valid token, not allowed
    ├── BadRequest                 400  malformed path or query, a body the route refuses
    │   ├── RequestTimeout         408  the request body did not arrive in time
    │   ├── PayloadTooLarge        413  the request body exceeds the route's max_bytes
    │   └── UnsupportedMediaType   415  a request body type the route does not declare
    ├── NotFound                   404  record withheld by object-level checks
    ├── Throttled                  429  limits, anomalies, quarantine
    ├── UpstreamError              502  upstream unreachable or reset
    ├── UpstreamTimeout            504  upstream did not answer in time
    ├── InspectionError            502  a body that must be inspected cannot be
    └── AuditUnavailable           503  the audit log cannot be written (fail-closed)

Messages are for clients: they never carry upstream details, tokens or data.
"""

from __future__ import annotations

from collections.abc import Mapping


class VigieError(Exception):
    status: int = 500
    problem_type: str = "about:blank"
    title: str = "Internal error"

    def __init__(self, detail: str = "", *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers: dict[str, str] = dict(headers or {})


class AuthError(VigieError):
    """Missing or invalid credentials. `reason` is a metric label value."""

    status = 401
    problem_type = "https://vigie.dev/problems/unauthorized"
    title = "Unauthorized"

    def __init__(self, reason: str, detail: str = "invalid token") -> None:
        error = "invalid_request" if reason == "missing" else "invalid_token"
        header = 'Bearer realm="vigie"'
        if reason != "missing":
            header += f', error="{error}"'
        super().__init__(detail, headers={"WWW-Authenticate": header})
        self.reason = reason


class Forbidden(VigieError):
    """A verified identity asked for something its policy does not grant.

    `reason` is a short machine word (unknown_client, no_route, scope, ...).
    """

    status = 403
    problem_type = "https://vigie.dev/problems/forbidden"
    title = "Forbidden"

    def __init__(self, reason: str, detail: str = "not allowed by policy") -> None:
        super().__init__(detail)
        self.reason = reason


class BadRequest(VigieError):
    status = 400
    problem_type = "https://vigie.dev/problems/bad-request"
    title = "Bad request"


class RequestTimeout(BadRequest):
    status = 408
    problem_type = "https://vigie.dev/problems/request-timeout"
    title = "Request timeout"


class PayloadTooLarge(BadRequest):
    status = 413
    problem_type = "https://vigie.dev/problems/payload-too-large"
    title = "Content too large"


class UnsupportedMediaType(BadRequest):
    status = 415
    problem_type = "https://vigie.dev/problems/unsupported-media-type"
    title = "Unsupported media type"


class NotFound(VigieError):
    status = 404
    problem_type = "https://vigie.dev/problems/not-found"
    title = "Not found"


class Throttled(VigieError):
    """429. `decision` is throttled or quarantined; headers carry Retry-After."""

    status = 429
    problem_type = "https://vigie.dev/problems/abnormal-usage-detected"
    title = "Too many requests"

    def __init__(
        self,
        detail: str,
        *,
        decision: str = "throttled",
        retry_after: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        merged = {"Retry-After": str(max(1, retry_after))}
        merged.update(headers or {})
        super().__init__(detail, headers=merged)
        self.decision = decision
        self.retry_after = retry_after


class UpstreamError(VigieError):
    status = 502
    problem_type = "https://vigie.dev/problems/bad-gateway"
    title = "Bad gateway"


class UpstreamTimeout(VigieError):
    status = 504
    problem_type = "https://vigie.dev/problems/gateway-timeout"
    title = "Gateway timeout"


class InspectionError(VigieError):
    """The response must be inspected but cannot be: never pass it through."""

    status = 502
    problem_type = "https://vigie.dev/problems/uninspectable-response"
    title = "Bad gateway"


class AuditUnavailable(VigieError):
    status = 503
    problem_type = "https://vigie.dev/problems/audit-unavailable"
    title = "Service unavailable"


class ConfigError(Exception):
    """A bad configuration or policy: names the file, line and key. Exit code 2."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.file = file
        self.line = line
        self.key = key
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        super().__init__(f"{where}{message}")
