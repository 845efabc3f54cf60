"""The request body: refused where the route takes none, bounded, and held whole.

Checked from the headers before anything else happens (`expected_body`): a body on
a method the route does not declare as taking one is a 400 (GET, HEAD, OPTIONS and
DELETE take none unless the route's `request.body` says `allowed`), so a body that
is itself an HTTP request (CL.0 smuggling) can never reach an upstream that would
read it as a second request. Then `read_body` receives it whole, within the
route's `max_bytes` (413) and `request_body_timeout_seconds` (408), before an
upstream connection is taken: a slow client never holds a pooled connection.
Clients then frame it themselves (Content-Length); the caller's framing is dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from vigie.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from vigie.messages import Headers
from vigie.policy.model import Route
from vigie.types import Receive

TAKES_BODY = frozenset({"POST", "PUT", "PATCH"})
UNKNOWN_LENGTH = -1  # chunked
# A refused body may still be on its way: the connection closes rather than read it
CLOSE = {"Connection": "close"}
TOO_LARGE = "the request body is too large for this route"


class ClientDisconnected(Exception):
    """The client went away before its request (or our answer) was whole."""


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The global defaults: `max_request_body_bytes`, `request_body_timeout_seconds`."""

    max_bytes: int = 10_485_760
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class ExpectedBody:
    length: int  # UNKNOWN_LENGTH when chunked
    max_bytes: int


def body_allowed(route: Route, method: str) -> bool:
    rule = route.request
    if rule is not None and rule.body is not None:
        return rule.body
    return method in TAKES_BODY


def expected_body(method: str, route: Route, headers: Headers,
                  limits: BodyLimits) -> ExpectedBody | None:
    """The body the headers announce, if any; refused (400/413/415) when not acceptable."""
    lengths = [value for name, value in headers if name == "content-length"]
    chunked = any(name == "transfer-encoding" for name, _ in headers)
    if len(lengths) > 1 or (lengths and chunked):
        raise BadRequest("ambiguous request framing", headers=CLOSE)
    length = UNKNOWN_LENGTH if chunked else 0
    if lengths:
        text = lengths[0].strip()
        if not text.isdigit() or not text.isascii():
            raise BadRequest("invalid Content-Length", headers=CLOSE)
        length = int(text)
    if length == 0:
        return None
    if not body_allowed(route, method):
        raise BadRequest(f"this route takes no request body with {method}", headers=CLOSE)
    rule = route.request
    max_bytes = rule.max_bytes if rule is not None and rule.max_bytes is not None \
        else limits.max_bytes
    if length > max_bytes:
        raise PayloadTooLarge(TOO_LARGE, headers=CLOSE)
    if rule is not None and rule.content_types:
        declared = next((value for name, value in headers if name == "content-type"), "")
        media_type = declared.split(";", 1)[0].strip().lower()
        if media_type not in rule.content_types:
            raise UnsupportedMediaType("this route does not take that request body type",
                                       headers=CLOSE)
    return ExpectedBody(length, max_bytes)


async def read_body(receive: Receive, expected: ExpectedBody, timeout: float) -> bytes:
    """The whole body, or 413 past `max_bytes`, 408 past `timeout`, ClientDisconnected."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected()
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > expected.max_bytes:
                        raise PayloadTooLarge(TOO_LARGE, headers=CLOSE)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError as exc:
        raise RequestTimeout("the request body did not arrive in time",
                             headers=CLOSE) from exc
    return b"".join(chunks)
