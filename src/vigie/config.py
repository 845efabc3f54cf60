"""Typed, frozen settings from `vigie.yaml` and `VIGIE_*` environment overrides.

`load_settings(path, environ)` validates everything before the proxy listens.
Errors are `ConfigError`s naming the file, line and key (or the environment
variable). Relative paths in the file are resolved against the file's folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from vigie import redis_connect, yamlsrc
from vigie.admin_auth import MetricsAuth, parse_metrics_auth
from vigie.config_connection import CONNECTION_KEYS, connection_settings, positive_value
from vigie.errors import ConfigError
from vigie.issuer_settings import ASYMMETRIC_ALGORITHMS as ASYMMETRIC_ALGORITHMS
from vigie.issuer_settings import IssuerSettings as IssuerSettings
from vigie.issuer_settings import parse_issuer
from vigie.limits_config import LIMIT_KEYS as LIMIT_KEYS
from vigie.limits_config import parse_limits
from vigie.policy.model import Mode
from vigie.rates import Limits, Rate
from vigie.rewrite.settings import KEYS as LINK_KEYS
from vigie.rewrite.settings import LinkSettings, parse_link_settings
from vigie.telemetry.logs import LOG_FORMATS, LOG_LEVELS
from vigie.tls import TLSSettings, parse_tls

DEFAULT_LIMITS = Limits(
    requests=Rate.parse("600/minute"),
    records=Rate.parse("5000/hour"),
    distinct_patients=Rate.parse("1000/day"),
    enumeration=True,
    concurrency=8,
)


@dataclass(frozen=True, slots=True)
class Listen:
    host: str = "0.0.0.0"  # noqa: S104 - a proxy listens on all interfaces by default
    port: int = 8080
    tls: TLSSettings | None = None
    max_header_bytes: int = 32_768  # request line and headers; more: 431
    header_timeout_seconds: float = 10.0  # from the first byte to the end of headers: 408


@dataclass(frozen=True, slots=True)
class Admin:
    host: str = "0.0.0.0"  # noqa: S104
    port: int = 9090
    token_file: Path | None = None
    tls: TLSSettings | None = None
    metrics: MetricsAuth = MetricsAuth()


@dataclass(frozen=True, slots=True)
class AuditSettings:
    path: str = "-"
    on_failure: str = "closed"  # closed: 503 when the audit line cannot be written; open: alert
    rotate_bytes: int = 0  # 0: never rotate
    usage_path: str | None = None  # report-only usage log (learn/usage.py); None: off
    usage_min_principals: int = 3  # distinct principals before a word is written (words.py)


@dataclass(frozen=True, slots=True)
class GuardSettings:
    quarantine_minutes: int = 15
    decoy_ids: tuple[str, ...] = ()
    events_path: str = "-"  # security events (JSON lines) for the SIEM; "-" = stderr


@dataclass(frozen=True, slots=True)
class IncidentSettings:
    state_file: Path | None = None  # revocations and switches of a replica without Redis
    max_token_lifetime_seconds: int = 43200  # how long a revocation outlives its cut-off


@dataclass(frozen=True, slots=True)
class Settings:
    upstream: str
    listen: Listen = Listen()
    admin: Admin = Admin()
    policies: Path = Path("policies")
    mode: Mode = Mode.ENFORCE
    issuers: tuple[IssuerSettings, ...] = ()
    redis: str | None = None
    pseudonym_key_file: Path | None = None
    audit: AuditSettings = AuditSettings()
    limits: Limits = DEFAULT_LIMITS
    guard: GuardSettings = GuardSettings()
    incident: IncidentSettings = IncidentSettings()
    upstream_timeout_seconds: float = 10.0
    upstream_connect_timeout_seconds: float = 3.0
    upstream_client: str = "native"  # native | aiohttp | httpx (one connection per request)
    upstream_keepalive: bool = True  # false: one connection per request, for bad framers
    upstream_echoes_request_id: bool = False  # true: a response without our X-Request-ID: 502
    upstream_max_connections: int = 512
    upstream_max_connections_per_principal: int = 64
    upstream_pool_timeout_seconds: float = 5.0  # waiting for a pooled connection: then 504
    upstream_ca_file: Path | None = None  # https:// upstreams: the CA to trust (else system)
    upstream_client_cert_file: Path | None = None  # mTLS to the upstream
    upstream_client_key_file: Path | None = None
    max_request_body_bytes: int = 10_485_760  # a route's default request.max_bytes
    request_body_timeout_seconds: float = 30.0  # to receive a whole request body: then 408
    max_response_bytes: int = 52_428_800
    shutdown_grace_seconds: float = 20.0
    links: LinkSettings = LinkSettings()  # public_url, trusted_proxies... (rewrite/settings.py)
    log_format: str = "text"  # text | json (telemetry/logs.py)
    log_level: str = "info"
    workers: int = 1  # processes on the same ports (SO_REUSEPORT); > 1 needs `redis`
    source: Path | None = None



_TOP_KEYS = {
    "upstream", "listen", "admin", "policies", "mode", "issuers", "redis",
    "pseudonym_key_file", "audit", "limits", "guard", "upstream_timeout_seconds",
    "upstream_connect_timeout_seconds", "max_response_bytes", "shutdown_grace_seconds",
    "upstream_client", "log_format", "log_level", "incident", "workers", *LINK_KEYS,
    *CONNECTION_KEYS,
}
UPSTREAM_CLIENTS = ("native", "aiohttp", "httpx")
T = TypeVar("T")


class _Reader:
    """Validates one raw mapping, raising ConfigError with file/line or env variable."""

    def __init__(self, lines: yamlsrc.Lines, env_keys: Mapping[yamlsrc.Path, str],
                 base: Path) -> None:
        self.lines = lines
        self.env_keys = env_keys
        self.base = base

    def error(self, path: yamlsrc.Path, message: str) -> ConfigError:
        key = ".".join(str(p) for p in path)
        for env_path, variable in self.env_keys.items():
            if path[: len(env_path)] == env_path:
                return ConfigError(f"{message} (key '{key}')", file=f"environment {variable}",
                                   key=key)
        return self.lines.error(path, f"{message} (key '{key}')")

    def mapping(self, raw: Any, path: yamlsrc.Path, allowed: set[str]) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise self.error(path, "must be a mapping")
        for key in raw:
            if key not in allowed:
                raise self.error((*path, key), "unknown key")
        return raw

    def typed(self, raw: Any, path: yamlsrc.Path, kind: type[T], what: str) -> T:
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)  # type: ignore[return-value]
        if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
            raise self.error(path, f"must be {what}")
        return raw

    def convert(self, raw: Any, path: yamlsrc.Path, fn: Callable[[Any], T]) -> T:
        try:
            return fn(raw)
        except (ValueError, TypeError) as exc:
            raise self.error(path, str(exc)) from exc

    def path(self, raw: Any, key: yamlsrc.Path) -> Path:
        text = self.typed(raw, key, str, "a path")
        candidate = Path(text)
        return candidate if candidate.is_absolute() else self.base / candidate

    def port(self, raw: Any, key: yamlsrc.Path) -> int:
        value = self.typed(raw, key, int, "a port number")
        if not 0 <= value <= 65535:
            raise self.error(key, "must be a port number (0-65535)")
        return value


def load_settings(path: str | os.PathLike[str] | None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    filename = str(path) if path else "<environment>"
    lines = yamlsrc.Lines(filename)
    base = Path.cwd()
    if path is not None:
        file_path = Path(path)
        try:
            text = file_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read configuration: {exc.strerror}",
                              file=filename) from exc
        loaded, lines = yamlsrc.load(text, filename)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("the configuration must be a mapping", file=filename, line=1)
        raw = loaded
        base = file_path.resolve().parent
    env_keys = _apply_environment(raw, environ)
    settings = _build(raw, _Reader(lines, env_keys, base))
    return settings if path is None else _with_source(settings, Path(path))


def _with_source(settings: Settings, source: Path) -> Settings:
    return replace(settings, source=source)


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[yamlsrc.Path, str]:
    """Merge VIGIE_A__B=value into raw[a][b]; values are parsed as YAML scalars/flows."""
    applied: dict[yamlsrc.Path, str] = {}
    for variable, text in sorted(environ.items()):
        if not variable.startswith("VIGIE_") or variable.startswith("VIGIE_TEST"):
            continue
        parts = [p.lower() for p in variable[len("VIGIE_"):].split("__") if p]
        if not parts or parts[0] not in _TOP_KEYS:
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid value for {variable}", file="environment",
                              key=variable) from exc
        if isinstance(value, int | float) and parts[-1] in {"host", "issuer", "client_claim"}:
            value = text
        if parts[-1] in {"upstream", "redis", "upstream_client", "public_url",
                         "log_format", "log_level"} and value is not None:
            value = text
        target = raw
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
                target[part] = child
            target = child
        target[parts[-1]] = value
        applied[tuple(parts)] = variable
    return applied


def _build(raw: dict[str, Any], r: _Reader) -> Settings:
    for key in raw:
        if key not in _TOP_KEYS:
            raise r.error((key,), "unknown key")
    if raw.get("upstream") in (None, ""):
        raise r.error(("upstream",), "missing required key")
    upstream = r.typed(raw["upstream"], ("upstream",), str, "a URL")
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise r.error(("upstream",), "must be an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise r.error(("upstream",), "must not have a query or fragment")

    listen_raw = r.mapping(raw.get("listen"), ("listen",),
                           {"host", "port", "tls", "max_header_bytes", "header_timeout_seconds"})
    listen = Listen(
        host=r.typed(listen_raw.get("host", Listen().host), ("listen", "host"), str, "a host"),
        port=r.port(listen_raw.get("port", Listen().port), ("listen", "port")),
        tls=parse_tls(listen_raw.get("tls"), ("listen", "tls"), r),
        max_header_bytes=positive_value(r, listen_raw, ("listen", "max_header_bytes"), int,
                                        Listen().max_header_bytes),
        header_timeout_seconds=positive_value(r, listen_raw,
                                              ("listen", "header_timeout_seconds"),
                                              float, Listen().header_timeout_seconds),
    )
    admin_raw = r.mapping(raw.get("admin"), ("admin",), {"host", "port", "token_file", "tls",
                                                          "metrics_auth", "scrape_token_file"})
    token_file = admin_raw.get("token_file")
    admin = Admin(
        host=r.typed(admin_raw.get("host", Admin().host), ("admin", "host"), str, "a host"),
        port=r.port(admin_raw.get("port", Admin().port), ("admin", "port")),
        token_file=None if token_file is None else r.path(token_file, ("admin", "token_file")),
        tls=parse_tls(admin_raw.get("tls"), ("admin", "tls"), r),
        metrics=parse_metrics_auth(admin_raw, r),
    )
    mode = r.convert(raw.get("mode", "enforce"), ("mode",), Mode)
    issuers = tuple(
        parse_issuer(item, ("issuers", i), r) for i, item in enumerate(_list(raw, "issuers", r))
    )
    redis_url = raw.get("redis")
    if redis_url is not None:
        redis_url = r.typed(redis_url, ("redis",), str, "a redis:// URL or null")
        r.convert(redis_url, ("redis",), redis_connect.usable_by_guard)
    key_file = raw.get("pseudonym_key_file")
    audit_raw = r.mapping(raw.get("audit"), ("audit",), {"path", "on_failure", "rotate_bytes",
                                                            "usage_path",
                                                            "usage_min_principals"})
    audit_path = r.typed(audit_raw.get("path", "-"), ("audit", "path"), str, "a path or '-'")
    on_failure = r.typed(audit_raw.get("on_failure", "closed"), ("audit", "on_failure"), str,
                         "closed or open")
    if on_failure not in ("closed", "open"):
        raise r.error(("audit", "on_failure"), "must be closed or open")
    audit = AuditSettings(
        path=audit_path if audit_path == "-" else str(r.path(audit_path, ("audit", "path"))),
        on_failure=on_failure,
        rotate_bytes=r.typed(audit_raw.get("rotate_bytes", 0), ("audit", "rotate_bytes"), int,
                             "a number of bytes"),
        usage_path=None if audit_raw.get("usage_path") is None else str(
            r.path(audit_raw["usage_path"], ("audit", "usage_path"))),
        usage_min_principals=r.typed(audit_raw.get("usage_min_principals", 3),
                                     ("audit", "usage_min_principals"), int,
                                     "a number of principals"),
    )
    if audit.usage_min_principals < 1:
        raise r.error(("audit", "usage_min_principals"), "must be 1 or more")
    limits = parse_limits(raw.get("limits"), ("limits",), r.error).inherit(DEFAULT_LIMITS)
    guard_raw = r.mapping(raw.get("guard"), ("guard",),
                          {"quarantine_minutes", "decoy_ids", "events_path"})
    decoys = guard_raw.get("decoy_ids", [])
    if not isinstance(decoys, list):
        raise r.error(("guard", "decoy_ids"), "must be a list of ids")
    events_path = r.typed(guard_raw.get("events_path", "-"), ("guard", "events_path"), str,
                          "a path or '-'")
    guard = GuardSettings(
        quarantine_minutes=r.typed(guard_raw.get("quarantine_minutes", 15),
                                   ("guard", "quarantine_minutes"), int, "a number of minutes"),
        decoy_ids=tuple(str(d) for d in decoys),
        events_path=events_path if events_path == "-" else str(
            r.path(events_path, ("guard", "events_path"))),
    )

    incident_raw = r.mapping(raw.get("incident"), ("incident",),
                             {"state_file", "max_token_lifetime_seconds"})
    state_file = incident_raw.get("state_file")
    lifetime = positive_value(r, incident_raw, ("incident", "max_token_lifetime_seconds"), int,
                              43200)
    incident = IncidentSettings(
        state_file=None if state_file is None else r.path(state_file, ("incident", "state_file")),
        max_token_lifetime_seconds=lifetime)

    def positive(key: str, kind: type[T], default: T) -> T:
        return positive_value(r, raw, (key,), kind, default)

    def choice(key: str, options: tuple[str, ...], default: str) -> str:
        value = raw.get(key, default)
        if value not in options:
            raise r.error((key,), f"must be one of {', '.join(options)}")
        return str(value)

    return Settings(
        log_format=choice("log_format", LOG_FORMATS, "text"),
        log_level=choice("log_level", LOG_LEVELS, "info"),
        upstream=upstream.rstrip("/"),
        upstream_client=choice("upstream_client", UPSTREAM_CLIENTS, "native"),
        listen=listen,
        admin=admin,
        policies=r.path(raw.get("policies", "./policies"), ("policies",)),
        mode=mode,
        issuers=issuers,
        redis=redis_url,
        pseudonym_key_file=None if key_file is None else r.path(key_file,
                                                                 ("pseudonym_key_file",)),
        audit=audit,
        limits=limits,
        guard=guard,
        incident=incident,
        upstream_timeout_seconds=positive("upstream_timeout_seconds", float, 10.0),
        upstream_connect_timeout_seconds=positive("upstream_connect_timeout_seconds", float,
                                                  3.0),
        **connection_settings(raw, r),
        max_response_bytes=positive("max_response_bytes", int, 52_428_800),
        shutdown_grace_seconds=positive("shutdown_grace_seconds", float, 20.0),
        links=parse_link_settings(raw, r.error),
        workers=_workers(raw, r, redis_url),
    )


def _workers(raw: dict[str, Any], r: _Reader, redis_url: str | None) -> int:
    """`workers`: N processes need one guard state, so more than one needs `redis`."""
    workers = positive_value(r, raw, ("workers",), int, 1)
    if workers > 1 and redis_url is None:
        raise r.error(("workers",), f"{workers} workers need shared guard state: set 'redis' "
                                    "(or workers: 1)")
    return workers


def _list(raw: dict[str, Any], key: str, r: _Reader) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise r.error((key,), "must be a list")
    return value
