"""The settings of Vigie's connections to the upstream and of request bodies (issue 9).

Kept apart from config.py, which calls `connection_settings(raw, reader)` and spreads
the result into `Settings`. Same rules: each bad key is a ConfigError naming the
file, line and key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from vigie import yamlsrc

if TYPE_CHECKING:
    from vigie.config import _Reader

T = TypeVar("T")

CONNECTION_KEYS = (
    "upstream_keepalive", "upstream_echoes_request_id", "upstream_max_connections",
    "upstream_max_connections_per_principal", "upstream_pool_timeout_seconds",
    "upstream_ca_file", "upstream_client_cert_file", "upstream_client_key_file",
    "max_request_body_bytes", "request_body_timeout_seconds",
)


def positive_value(r: _Reader, raw: dict[str, Any], key: yamlsrc.Path, kind: type[T],
                   default: T) -> T:
    """`raw[key[-1]]` (or `default`) as a positive `kind`."""
    value = r.typed(raw.get(str(key[-1]), default), key, kind, f"a positive {kind.__name__}")
    if value <= 0:  # type: ignore[operator]
        raise r.error(key, "must be positive")
    return value


def connection_settings(raw: dict[str, Any], r: _Reader) -> dict[str, Any]:
    """The `Settings` fields named in CONNECTION_KEYS, validated."""
    def positive(key: str, kind: type[T], default: T) -> T:
        return positive_value(r, raw, (key,), kind, default)

    def optional_path(key: str) -> Path | None:
        return None if raw.get(key) is None else r.path(raw[key], (key,))

    def flag(key: str, default: bool) -> bool:
        return r.typed(raw.get(key, default), (key,), bool, "true or false")

    cert = optional_path("upstream_client_cert_file")
    cert_key = optional_path("upstream_client_key_file")
    if (cert is None) != (cert_key is None):  # named where it is, asking for the other
        given, missing = (("upstream_client_key_file", "upstream_client_cert_file")
                          if cert is None else
                          ("upstream_client_cert_file", "upstream_client_key_file"))
        raise r.error((given,), f"needs {missing} too (mutual TLS)")
    return {
        "upstream_keepalive": flag("upstream_keepalive", True),
        "upstream_echoes_request_id": flag("upstream_echoes_request_id", False),
        "upstream_max_connections": positive("upstream_max_connections", int, 512),
        "upstream_max_connections_per_principal": positive(
            "upstream_max_connections_per_principal", int, 64),
        "upstream_pool_timeout_seconds": positive("upstream_pool_timeout_seconds", float, 5.0),
        "upstream_ca_file": optional_path("upstream_ca_file"),
        "upstream_client_cert_file": cert,
        "upstream_client_key_file": cert_key,
        "max_request_body_bytes": positive("max_request_body_bytes", int, 10_485_760),
        "request_body_timeout_seconds": positive("request_body_timeout_seconds", float, 30.0),
    }
