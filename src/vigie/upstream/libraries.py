"""aiohttp and httpx behind the Forwarder seam, held to the native client's integrity rules.

Neither library lets Vigie see the bytes around a response: a stray response
(one too many, a body after HEAD/204/304, a Content-Length shorter than what
follows) stays in their pooled connection and becomes the next caller's answer.
So these clients never reuse a connection: every exchange has its own
(`force_close`, `Connection: close`), which no leftover byte can outlive. They
cost a connection per request; the native client is the fast path and the
default (docs/architecture.md).

Everything a library can raise, at any point, becomes UpstreamError (502) or
UpstreamTimeout (504) with a fixed message: no library text (it may quote the
body) reaches a log or a client. A 1xx as the final answer (an unsolicited
101 Switching Protocols) is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport

from vigie.errors import UpstreamError, UpstreamTimeout
from vigie.forward import UpstreamTarget, echoed_request_id, response_headers
from vigie.messages import Headers, UpstreamResponse
from vigie.upstream.aiohttp_strict import StrictConnector
from vigie.upstream.options import UpstreamOptions

UNAVAILABLE = "the upstream service is unavailable"
TOO_SLOW = "the upstream service did not answer in time"
_CLOSE = ("connection", "close")
R = TypeVar("R")


class _Session:
    """One aiohttp session per client, created inside the serving loop, and the slots.

    At most `max_connections` exchanges at once (the connector is unbounded: a
    connection per exchange); waiting for a slot is bounded by `pool_timeout`
    (504, counted), as in the native pool.
    """

    def __init__(self, options: UpstreamOptions) -> None:
        self.options = options
        self.session: aiohttp.ClientSession | None = None
        self.slots = asyncio.Semaphore(options.max_connections)

    def get(self) -> aiohttp.ClientSession:
        if self.session is None:
            o = self.options
            # ssl=True: verified with the system store when no context was configured
            # h11's framing rules, not aiohttp's lenient defaults (`aiohttp_strict`).
            connector = StrictConnector(limit=0, force_close=True,
                                        ssl=o.ssl_context or True, ttl_dns_cache=60)
            self.session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=o.connect_timeout,
                                              sock_read=o.timeout),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"))
        return self.session

    async def exchange(self, start: Callable[[], Awaitable[R]]) -> tuple[R, Callable[[], None]]:
        """`start()` in a slot (waited for, bounded); the callable gives the slot back once.

        Any library failure becomes a 502/504 without its text.
        """
        try:
            async with asyncio.timeout(self.options.pool_timeout):
                await self.slots.acquire()
        except TimeoutError:
            self.options.on_pool_timeout()
            raise UpstreamTimeout(TOO_SLOW) from None
        given_back = False

        def release() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self.slots.release()
        try:
            return await start(), release
        except BaseException as exc:
            release()
            if isinstance(exc, Exception):
                raise translate(exc) from None
            raise

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


class AiohttpForwarder:
    """aiohttp's client directly: the same seam, one connection per exchange."""

    def __init__(self, upstream: str, options: UpstreamOptions | None = None) -> None:
        self._target = UpstreamTarget.parse(upstream)
        self.options = options or UpstreamOptions()
        self._session = _Session(self.options)

    def url(self, path: str, query: str) -> yarl.URL:
        """Always the configured scheme, host and port; the path only ever appended."""
        t = self._target
        return yarl.URL.build(scheme=t.scheme, host=t.host, port=t.port,
                              path=t.base_path + path, query_string=query, encoded=True)

    async def send(self, method: str, path: str, query: str, headers: Headers,
                   body: bytes | None) -> UpstreamResponse:
        response, release = await self._session.exchange(lambda: self._session.get().request(
            method, self.url(path, query), headers=[*headers, _CLOSE], data=body,
            allow_redirects=False, compress=None))
        raw_headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                       for k, v in response.raw_headers]

        async def close() -> None:
            response.close()  # never back into a pool, read or not
            release()

        await _check(response.status, headers, raw_headers, self.options, close)
        return UpstreamResponse(status=response.status, headers=response_headers(raw_headers),
                                body=_translated(response.content.iter_any()), aclose=close)

    async def close(self) -> None:
        await self._session.close()


class HttpxForwarder:
    """httpx over aiohttp's transport, one connection per exchange."""

    def __init__(self, upstream: str, options: UpstreamOptions | None = None) -> None:
        self._target = UpstreamTarget.parse(upstream)
        self.options = o = options or UpstreamOptions()
        self._session = _Session(o)
        self._client = httpx.AsyncClient(
            transport=AiohttpTransport(client=self._session.get, trust_env=False),
            timeout=httpx.Timeout(o.timeout, connect=o.connect_timeout),
            follow_redirects=False, trust_env=False)

    def url(self, path: str, query: str) -> httpx.URL:
        """Always the configured scheme, host and port; the path only ever appended."""
        t = self._target
        raw = (t.base_path + path).encode("ascii")
        if query:
            raw += b"?" + query.encode("ascii")
        return httpx.URL(scheme=t.scheme, host=t.host, port=t.port, raw_path=raw)

    async def send(self, method: str, path: str, query: str, headers: Headers,
                   body: bytes | None) -> UpstreamResponse:
        def start() -> Awaitable[httpx.Response]:  # building may fail too: inside the guard
            return self._client.send(self._client.build_request(
                method, self.url(path, query),
                headers=[("host", self._target.netloc), *headers, _CLOSE], content=body),
                stream=True)

        response, release = await self._session.exchange(start)
        raw_headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                       for k, v in response.headers.raw]

        async def close() -> None:
            try:
                await response.aclose()
            except Exception:  # noqa: BLE001, S110 - closing a failed exchange: nothing to say
                pass
            finally:
                release()

        await _check(response.status_code, headers, raw_headers, self.options, close)
        return UpstreamResponse(status=response.status_code,
                                headers=response_headers(raw_headers),
                                body=_translated(response.aiter_raw()), aclose=close)

    async def close(self) -> None:
        try:
            await self._client.aclose()
        finally:
            await self._session.close()


async def _translated(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except Exception as exc:  # noqa: BLE001 - a library failure mid-body: 502/504, untold
        raise translate(exc) from None


async def _check(status: int, sent: Headers, received: Headers, options: UpstreamOptions,
                 close: Callable[[], Awaitable[None]]) -> None:
    """Refuse a 1xx as a final answer and, when the upstream echoes it, a foreign request id."""
    reason = None
    if status < 200:
        reason = "interim_upgrade"
    elif options.echoes_request_id and not echoed_request_id(sent, received):
        reason = "request_id_mismatch"
    if reason is not None:
        options.on_discard(reason)
        await close()
        raise UpstreamError(UNAVAILABLE)


def translate(exc: BaseException) -> UpstreamError | UpstreamTimeout:
    """A library's exception as a 502 or 504; its text is never kept (`from None`)."""
    if isinstance(exc, UpstreamError | UpstreamTimeout):
        return exc
    seen: BaseException | None = exc
    while seen is not None:  # httpx-aiohttp wraps aiohttp errors: look through the chain
        if isinstance(seen, aiohttp.ConnectionTimeoutError):
            return UpstreamError(UNAVAILABLE)  # unreachable
        if isinstance(seen, aiohttp.ServerTimeoutError | TimeoutError | httpx.ReadTimeout
                      | httpx.WriteTimeout | httpx.PoolTimeout):
            return UpstreamTimeout(TOO_SLOW)
        seen = seen.__cause__ or seen.__context__
    return UpstreamError(UNAVAILABLE)
