"""How Vigie talks to the upstream, whichever client does it: one value built from Settings.

Every client (native, aiohttp, httpx) takes an `UpstreamOptions`: timeouts, pool
bounds, keep-alive, request-id correlation, the TLS context for https:// upstreams,
and the callbacks that count discarded connections and pool timeouts.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vigie.config import Settings
from vigie.errors import ConfigError

# Why a connection was closed instead of going back to the pool (a fixed vocabulary:
# the `reason` label of vigie_upstream_connections_discarded_total).
DISCARD_REASONS = ("idle_bytes", "extra_bytes", "malformed", "incomplete", "timeout",
                   "request_id_mismatch", "interim_upgrade")


def _ignore(reason: str) -> None:
    return None


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    timeout: float = 10.0
    connect_timeout: float = 3.0
    max_connections: int = 512
    pool_timeout: float = 5.0
    keepalive: bool = True
    echoes_request_id: bool = False
    ssl_context: ssl.SSLContext | None = None
    on_discard: Callable[[str], None] = _ignore
    on_pool_timeout: Callable[[], None] = _nothing

    @classmethod
    def from_settings(cls, settings: Settings, *, on_discard: Callable[[str], None] = _ignore,
                      on_pool_timeout: Callable[[], None] = _nothing) -> UpstreamOptions:
        context = None
        if settings.upstream.startswith("https://"):
            context = tls_context(settings)
        return cls(timeout=settings.upstream_timeout_seconds,
                   connect_timeout=settings.upstream_connect_timeout_seconds,
                   max_connections=settings.upstream_max_connections,
                   pool_timeout=settings.upstream_pool_timeout_seconds,
                   keepalive=settings.upstream_keepalive,
                   echoes_request_id=settings.upstream_echoes_request_id,
                   ssl_context=context, on_discard=on_discard, on_pool_timeout=on_pool_timeout)


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verification on, hostname checked, TLS 1.2 at least; the hospital CA and mTLS if set.

    A file that cannot be used stops start-up (ConfigError naming the key).
    """
    where = str(settings.source or "<environment>")
    key = "upstream_ca_file"
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=_existing(settings.upstream_ca_file))
        key = "upstream_client_cert_file"
        if settings.upstream_client_cert_file is not None:
            context.load_cert_chain(_existing(settings.upstream_client_cert_file) or "",
                                    _existing(settings.upstream_client_key_file))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"cannot use {key}: {type(exc).__name__}", file=where,
                          key=key) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    return context


def _existing(path: Path | None) -> str | None:
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(str(path))
    return str(path)
