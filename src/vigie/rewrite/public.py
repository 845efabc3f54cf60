"""Where clients reach Vigie, for one request: the base that upstream links become.

In order of precedence:
1. the `public_url` setting, when set (recommended in production);
2. `X-Forwarded-Proto` and `X-Forwarded-Host`, only when the TCP peer is one of
   `trusted_proxies` (anyone else could point a client's links anywhere);
3. the request's own scheme and `Host` header (validated; else the listener's address).

With `upstream_forwarded_headers: true` the upstream receives `X-Forwarded-Proto`,
`X-Forwarded-Host` (and `X-Forwarded-Prefix` when the public URL has a path) for the
same base, so that it can build proxy-facing links itself; client-sent `X-Forwarded-*`
are never forwarded (forward.py strips them).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from vigie.messages import Headers
from vigie.types import Scope

_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?")
_SCHEMES = ("http", "https")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """`10.0.0.0/8`, `127.0.0.1`, `::1`...; ValueError names the bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network") from None
    return tuple(networks)


class PublicAddress:
    def __init__(self, public_url: str | None, trusted_proxies: Sequence[str] = (), *,
                 send_forwarded: bool = False) -> None:
        self._public = public_url.rstrip("/") if public_url else None
        self._trusted = parse_networks(trusted_proxies)
        self._send = send_forwarded

    def base(self, scope: Scope, headers: Headers) -> str:
        """The public base URL of this request, without a trailing slash."""
        if self._public is not None:
            return self._public
        scheme, host = str(scope.get("scheme", "http")), None
        if self._trusted and self._peer_trusted(scope):
            proto = _first(headers, "x-forwarded-proto")
            if proto is not None and proto.lower() in _SCHEMES:
                scheme = proto.lower()
            forwarded_host = _first(headers, "x-forwarded-host")
            if forwarded_host is not None and _HOST.fullmatch(forwarded_host):
                host = forwarded_host
        if host is None:
            given = _first(headers, "host")
            host = given if given is not None and _HOST.fullmatch(given) else _listener(scope)
        return f"{scheme}://{host}" if host else ""

    def upstream_headers(self, base: str) -> Headers:
        """X-Forwarded-* for the upstream, when the site wants it to build the links."""
        if not self._send or not base:
            return []
        parts = urlsplit(base)
        out: Headers = [("x-forwarded-proto", parts.scheme), ("x-forwarded-host", parts.netloc)]
        if parts.path:
            out.append(("x-forwarded-prefix", parts.path))
        return out

    def _peer_trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False
        try:
            peer = ipaddress.ip_address(client[0])
        except ValueError:  # a unix socket peer
            return False
        return any(peer in network for network in self._trusted)


def _first(headers: Headers, name: str) -> str | None:
    """The first (client-facing) value of a header, stripped."""
    for key, value in headers:
        if key == name:
            return value.split(",", 1)[0].strip()
    return None


def _listener(scope: Scope) -> str | None:
    server = scope.get("server")
    if not server or server[1] is None:
        return None
    host = str(server[0])
    return f"[{host}]:{server[1]}" if ":" in host else f"{host}:{server[1]}"
