"""HTTP attributes of the stable OpenTelemetry semantic conventions, scrubbed of personal data.

Server span: `url.scheme`, `server.address`/`server.port` (the Host header when it
is a plain host name, else the listener's address), `network.protocol.version`,
and once a policy route matched, `http.route` (the template, `/patients/{id}`) and
`url.path` with every parameter segment replaced by `REDACTED`.
Client span (the upstream call): `server.address`, `server.port`, `url.full`
built from the configured upstream and the scrubbed path, `url.template`.

Never a patient id, a query value or a query key: the path of a request that
matched no route (report-only) is not recorded at all, and queries are left out
of `url.full` (a key may be a name, `?DUPONT=1`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vigie.policy.model import Route

REDACTED = "REDACTED"
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
                   r"|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?")


def server_attributes(scope: Mapping[str, Any]) -> dict[str, str | int]:
    scheme = str(scope.get("scheme", "http"))
    attributes: dict[str, str | int] = {
        "url.scheme": scheme,
        "network.protocol.version": str(scope.get("http_version", "1.1")),
    }
    host = _host_header(scope.get("headers", ()))
    match = _HOST.fullmatch(host) if host else None
    if match is not None:
        attributes["server.address"] = match["host"].strip("[]")
        port = int(match["port"]) if match["port"] else DEFAULT_PORTS.get(scheme, 80)
        if 0 < port < 65536:
            attributes["server.port"] = port
    else:
        local = scope.get("server")
        if local and local[0]:
            attributes["server.address"] = str(local[0])
            if local[1]:
                attributes["server.port"] = int(local[1])
    return attributes


def route_attributes(route: Route) -> dict[str, str] | None:
    """`http.route` and the scrubbed `url.path` of a matched route; None for no route."""
    if not route.segments:  # report-only, no route matched: its path is not a template
        return None
    return {"http.route": route.path, "url.path": scrubbed_path(route)}


def scrubbed_path(route: Route) -> str:
    return "/" + "/".join(REDACTED if segment is None else segment
                          for segment in route.segments)


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """The configured upstream, for the client span of every upstream call."""

    scheme: str
    address: str
    port: int
    base_path: str

    @classmethod
    def from_url(cls, url: str) -> UpstreamTarget:
        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        return cls(scheme=scheme, address=parts.hostname or "",
                   port=parts.port or DEFAULT_PORTS.get(scheme, 80),
                   base_path=parts.path.rstrip("/"))

    def attributes(self, method: str, route: Route) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {
            "http.request.method": method, "server.address": self.address,
            "server.port": self.port,
        }
        if route.segments:
            host = f"[{self.address}]" if ":" in self.address else self.address
            if self.port != DEFAULT_PORTS.get(self.scheme):
                host = f"{host}:{self.port}"
            attributes["url.full"] = (f"{self.scheme}://{host}"
                                      f"{self.base_path}{scrubbed_path(route)}")
            attributes["url.template"] = self.base_path + route.path
        return attributes


def _host_header(headers: Any) -> str | None:
    for name, value in headers:
        if name.lower() == b"host":
            return bytes(value).decode("latin-1").strip()
    return None
