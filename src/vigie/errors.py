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
    """Missing or invalid credentials. `reason` is a metric label value.

    `description` says which check failed (RFC 6750 `error_description`): it is
    written by Vigie, never copied from the token, and sent in `WWW-Authenticate`.
    """

    status = 401
    problem_type = "https://vigie.dev/problems/unauthorized"
    title = "Unauthorized"

    def __init__(self, reason: str, description: str = "") -> None:
        self.reason = reason
        self.description = description or AUTH_DESCRIPTIONS.get(reason, "invalid token")
        header = 'Bearer realm="vigie"'
        if reason != "missing":  # RFC 6750 §3.1: no error code when no credentials were sent
            header = challenge("invalid_token", self.description)
        super().__init__(self.description, headers={"WWW-Authenticate": header})


class Forbidden(VigieError):
    """A verified identity asked for something its policy does not grant.

    `reason` is a short machine word (unknown_client, no_route, scope, ...).
    """

    status = 403
    problem_type = "https://vigie.dev/problems/forbidden"
    title = "Forbidden"

    def __init__(self, reason: str, detail: str = "not allowed by policy") -> None:
        self.description = FORBIDDEN_DESCRIPTIONS.get(reason, "not allowed by policy")
        super().__init__(detail, headers={
            "WWW-Authenticate": challenge("insufficient_scope", self.description)})
        self.reason = reason


# What each refusal reason tells the client and the log (no token value, no config value).
AUTH_DESCRIPTIONS = {
    "missing": "bearer token required",
    "malformed": "the token is not a well-formed compact JWS",
    "too_large": "the token is larger than 8 KiB",
    "token_type": "the token's typ header is not an access-token type",
    "algorithm": "the token's signing algorithm is not allowed for its issuer or key",
    "issuer": "the token's iss is not a trusted issuer",
    "unknown_kid": "no key of the issuer's key set has the token's kid",
    "no_keys": "no key set of the token's issuer could be loaded yet",
    "keys_stale": "the issuer's key set could not be refreshed for longer than "
                  "jwks_max_stale_seconds",
    "signature": "the token's signature is not valid",
    "audience": "the token's aud holds none of the audiences this service accepts",
    "expired": "the token has expired",
    "not_yet_valid": "the token's nbf or iat is in the future",
    "claim_missing": "a required claim is missing",
    "claim_type": "a claim has the wrong type or length",
}
FORBIDDEN_DESCRIPTIONS = {
    "unknown_client": "no policy for this client of this issuer",
    "no_route": "the client's policy has no route for this method and path",
    "scope": "the token lacks a scope the route requires",
}


def challenge(error: str, description: str) -> str:
    """An RFC 6750 `WWW-Authenticate` value; `description` must be Vigie's own text."""
    return f'Bearer realm="vigie", error="{error}", error_description="{description}"'


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
