"""The forwarding seam: what the upstream receives, whichever client sends it.

`Forwarder` is the seam; `request_headers`/`response_headers` decide which headers
cross it. Three clients implement it, chosen by `upstream_client`: the native
HTTP/1.1 client (`upstream/client.py`, the default: measured 1.5x aiohttp and 3x
httpx, see docs/performance.md), `AiohttpForwarder` and `HttpxForwarder`
(`upstream/libraries.py`). The request body crosses whole (`bytes`, already read
and bounded by the proxy) and every client frames it itself: the caller's
Content-Length and Transfer-Encoding never reach the upstream. Low-level errors
are translated at the clients' boundary: unreachable or reset → UpstreamError
(502), no answer in time → UpstreamTimeout (504); neither names the upstream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from vigie.messages import Headers, UpstreamResponse
from vigie.minimize.decode import SUPPORTED_CODINGS

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
# Framing is Vigie's own (the body is held whole): the caller's never crosses.
_FRAMING = frozenset({"content-length", "expect"})
# Client headers that assert an identity or a hop: the proxy sets its own.
_IDENTITY_PREFIXES = ("x-vigie-", "x-forwarded-", "x-user", "x-client")
# The bearer token stays here: the upstream gets X-Vigie-Client and X-Vigie-User instead.
_IDENTITY_HEADERS = frozenset({"forwarded", "x-real-ip", "authorization", "host",
                               "traceparent", "x-request-id",
                               # honoured by some back ends to change the method or path
                               # after authorization (OWASP API5): never forwarded
                               "x-http-method-override", "x-http-method", "x-method-override",
                               "x-original-url", "x-rewrite-url"})
# Not forwarded on routes that mask: a partial or cached body cannot be inspected whole.
CONDITIONAL_HEADERS = frozenset({"range", "if-range", "if-match", "if-none-match",
                                 "if-modified-since", "if-unmodified-since"})


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Header names listed in `Connection`: hop-by-hop for this hop only."""
    named: set[str] = set()
    for name, value in headers:
        if name == "connection":
            named.update(t.strip().lower() for t in value.split(",") if t.strip())
    return named


def response_headers(headers: Headers) -> Headers:
    """Upstream response headers minus hops (and Date: the proxy's server sets its own)."""
    named = connection_tokens(headers)
    return [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in named and k != "date"]


def request_headers(incoming: Headers, *, masks: bool, extra: Headers) -> Headers:
    """What the upstream receives: client headers minus hops, identities and credentials."""
    named = connection_tokens(incoming)
    out: Headers = []
    for name, value in incoming:
        if name in HOP_BY_HOP or name in named or name in _IDENTITY_HEADERS or name in _FRAMING:
            continue
        if name.startswith(_IDENTITY_PREFIXES):
            continue
        if masks and name in CONDITIONAL_HEADERS:
            continue
        if name == "accept-encoding":
            value = _supported_codings(value)
            if not value:
                continue
        out.append((name, value))
    out.extend(extra)
    return out


def _supported_codings(value: str) -> str:
    wanted = []
    for item in value.split(","):
        coding = item.split(";", 1)[0].strip().lower()
        if coding in SUPPORTED_CODINGS and coding not in wanted:
            wanted.append(coding)
    return ", ".join(wanted)


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """The configured upstream, parsed once: every client builds URLs from this only."""

    scheme: str
    host: str
    port: int | None
    netloc: str
    base_path: str

    @classmethod
    def parse(cls, upstream: str) -> UpstreamTarget:
        parts = urlsplit(upstream)
        if parts.hostname is None:
            raise ValueError("the upstream URL has no host")
        return cls(parts.scheme, parts.hostname, parts.port, parts.netloc,
                   parts.path.rstrip("/"))


class Forwarder(Protocol):
    async def send(self, method: str, path: str, query: str, headers: Headers,
                   body: bytes | None) -> UpstreamResponse: ...

    async def close(self) -> None: ...


def echoed_request_id(sent: Headers, received: Iterable[tuple[str, str]]) -> bool:
    """Whether the response carries exactly the X-Request-ID its request was sent with.

    For upstreams that echo it (`upstream_echoes_request_id`): a stray response meant
    for another request carries another id, or none, and is refused.
    """
    expected = next((value for name, value in sent if name == "x-request-id"), None)
    echoed = [value for name, value in received if name == "x-request-id"]
    return expected is not None and echoed == [expected]


