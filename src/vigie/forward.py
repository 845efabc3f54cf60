"""The forwarding seam: what the upstream receives, and the library clients behind it.

`Forwarder` is the seam; `request_headers`/`response_headers` decide which headers
cross it. Three clients implement it, chosen by `upstream_client`: the native
HTTP/1.1 client (`upstream_client.py`, the default: measured 1.5x aiohttp and 3x
httpx, see docs/performance.md), `AiohttpForwarder` and `HttpxForwarder` (httpx over
aiohttp's transport). Low-level errors are translated at this boundary:
unreachable or reset → UpstreamError (502), no answer in time → UpstreamTimeout
(504); neither message names the upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport

from vigie.errors import UpstreamError, UpstreamTimeout
from vigie.messages import Headers, UpstreamResponse
from vigie.minimize.decode import SUPPORTED_CODINGS

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
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
        if name in HOP_BY_HOP or name in named or name in _IDENTITY_HEADERS:
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
                   body: AsyncIterator[bytes] | None) -> UpstreamResponse: ...

    async def close(self) -> None: ...


class HttpxForwarder:
    """httpx over aiohttp's transport, one pool for the process."""

    def __init__(self, upstream: str, *, timeout: float, connect_timeout: float,
                 max_connections: int = 512) -> None:
        self._target = UpstreamTarget.parse(upstream)
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections, keepalive_expiry=30)
        self._client = httpx.AsyncClient(
            transport=AiohttpTransport(limits=limits, trust_env=False),
            timeout=self._timeout, follow_redirects=False, trust_env=False,
        )

    def url(self, path: str, query: str) -> httpx.URL:
        """Always the configured scheme, host and port; the path only ever appended."""
        t = self._target
        raw = (t.base_path + path).encode("ascii")
        if query:
            raw += b"?" + query.encode("ascii")
        return httpx.URL(scheme=t.scheme, host=t.host, port=t.port, raw_path=raw)

    async def send(self, method: str, path: str, query: str, headers: Headers,
                   body: AsyncIterator[bytes] | None) -> UpstreamResponse:
        request = self._client.build_request(
            method, self.url(path, query),
            headers=[("host", self._target.netloc), *headers],
            content=body,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _translate(exc) from exc
        raw_headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                       for k, v in response.headers.raw]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            except httpx.HTTPError as exc:
                raise _translate(exc) from exc

        return UpstreamResponse(status=response.status_code,
                                headers=response_headers(raw_headers),
                                body=chunks(), aclose=response.aclose)

    async def close(self) -> None:
        await self._client.aclose()


class AiohttpForwarder:
    """aiohttp's client directly: the same seam, without httpx's per-request layer."""

    def __init__(self, upstream: str, *, timeout: float, connect_timeout: float,
                 max_connections: int = 512) -> None:
        self._target = UpstreamTarget.parse(upstream)
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                              sock_read=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def url(self, path: str, query: str) -> yarl.URL:
        """Always the configured scheme, host and port; the path only ever appended."""
        t = self._target
        return yarl.URL.build(scheme=t.scheme, host=t.host, port=t.port,
                              path=t.base_path + path, query_string=query, encoded=True)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created inside the serving loop
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30,
                                             ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                timeout=self._timeout, skip_auto_headers=("User-Agent", "Accept-Encoding",
                                                          "Accept"))
        return self._session

    async def send(self, method: str, path: str, query: str, headers: Headers,
                   body: AsyncIterator[bytes] | None) -> UpstreamResponse:
        try:
            response = await self._client().request(
                method, self.url(path, query), headers=headers, data=body,
                allow_redirects=False, compress=None)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _translate_aiohttp(exc) from exc
        raw_headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                       for k, v in response.raw_headers]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise _translate_aiohttp(exc) from exc

        async def close() -> None:
            response.release()

        return UpstreamResponse(status=response.status, headers=response_headers(raw_headers),
                                body=chunks(), aclose=close)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _translate_aiohttp(exc: BaseException) -> UpstreamError | UpstreamTimeout:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamError("the upstream service is unavailable")  # unreachable
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return UpstreamTimeout("the upstream service did not answer in time")
    return UpstreamError("the upstream service is unavailable")


def _translate(exc: Exception) -> UpstreamError | UpstreamTimeout:
    # httpx-aiohttp maps every aiohttp ClientConnectionError (reset, refused) to
    # ConnectTimeout, so look at the original aiohttp error first.
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return UpstreamError("the upstream service is unavailable")  # unreachable
    if isinstance(cause, aiohttp.ServerTimeoutError | TimeoutError):
        return UpstreamTimeout("the upstream service did not answer in time")
    if isinstance(cause, aiohttp.ClientError | OSError):
        return UpstreamError("the upstream service is unavailable")
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return UpstreamTimeout("the upstream service did not answer in time")
    return UpstreamError("the upstream service is unavailable")
