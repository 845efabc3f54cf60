"""The seam the proxy uses: one `LinkRewriter` per process, one `RequestLinks` per request."""

from __future__ import annotations

from dataclasses import dataclass

from vigie.messages import Headers, OutgoingResponse
from vigie.rewrite.public import PublicAddress
from vigie.rewrite.response import rewrite_response
from vigie.rewrite.settings import LinkSettings
from vigie.rewrite.urls import Links, UpstreamUrls
from vigie.types import Scope

_MAX_BUILT = 256


@dataclass(frozen=True, slots=True)
class RequestLinks:
    public: str  # this request's public base URL
    upstream_headers: Headers  # X-Forwarded-* for the upstream, when configured
    links: Links
    max_bytes: int

    async def rewrite(self, response: OutgoingResponse) -> None:
        await rewrite_response(response, self.links, self.max_bytes)


class LinkRewriter:
    def __init__(self, upstream: str, settings: LinkSettings, max_bytes: int) -> None:
        self._urls = UpstreamUrls(upstream, settings.upstream_aliases)
        self._public = PublicAddress(settings.public_url, settings.trusted_proxies,
                                     send_forwarded=settings.upstream_forwarded_headers)
        self._max = max_bytes
        self._fixed: RequestLinks | None = None
        if settings.public_url:  # the same for every request: built once
            self._fixed = self._build(self._public.base({}, []))
        # Derived per request, but nearly every request names the same few bases: each is
        # built once (bounded: the Host header is the client's to choose).
        self._built: dict[str, RequestLinks] = {}

    def for_request(self, scope: Scope, headers: Headers) -> RequestLinks:
        if self._fixed is not None:
            return self._fixed
        public = self._public.base(scope, headers)
        links = self._built.get(public)
        if links is None:
            if len(self._built) >= _MAX_BUILT:
                self._built.clear()
            links = self._built[public] = self._build(public)
        return links

    def _build(self, public: str) -> RequestLinks:
        return RequestLinks(public, self._public.upstream_headers(public),
                            Links(self._urls, public), self._max)
