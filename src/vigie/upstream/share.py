"""Each principal's share of the upstream pool: one caller cannot hold every connection.

A Forwarder around the configured client. An exchange is held from `send` until
its response is closed; a principal (the verified client and the pseudonymous
user the proxy sets as X-Vigie-Client / X-Vigie-User, never the caller's own
headers, which `request_headers` strips) that already holds
`upstream_max_connections_per_principal` exchanges is refused at once with 429,
before it can wait for, or take, a pooled connection.
"""

from __future__ import annotations

from collections.abc import Callable

from vigie.errors import Throttled
from vigie.forward import Forwarder
from vigie.messages import Headers, UpstreamResponse


class ShareExceeded(Throttled):
    reason = "upstream_share"


class PrincipalShare:
    def __init__(self, inner: Forwarder, per_principal: int,
                 on_refused: Callable[[], None] = lambda: None) -> None:
        self.inner = inner
        self.per_principal = per_principal
        self.on_refused = on_refused
        self.held: dict[tuple[str, str], int] = {}

    @staticmethod
    def principal(headers: Headers) -> tuple[str, str]:
        client = user = ""
        for name, value in headers:
            if name == "x-vigie-client":
                client = value
            elif name == "x-vigie-user":
                user = value
        return client, user

    async def send(self, method: str, path: str, query: str, headers: Headers,
                   body: bytes | None) -> UpstreamResponse:
        key = self.principal(headers)
        held = self.held.get(key, 0)
        if held >= self.per_principal:
            self.on_refused()
            raise ShareExceeded("too many requests in flight to the upstream",
                                retry_after=1)
        self.held[key] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                left = self.held[key] - 1
                if left:
                    self.held[key] = left
                else:
                    del self.held[key]

        try:
            response = await self.inner.send(method, path, query, headers, body)
        except BaseException:
            release()
            raise
        inner_close = response.aclose

        async def aclose() -> None:
            try:
                await inner_close()
            finally:
                release()

        response.aclose = aclose
        return response

    async def close(self) -> None:
        await self.inner.close()
