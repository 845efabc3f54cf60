"""Wiring: build every stage from the settings, start and stop them in order.

`Vigie.build(settings)` validates what only becomes known with the policies
(a pseudonymizing policy needs `pseudonym_key_file`) and raises ConfigError;
`start()` begins background work (JWKS refresh, policy watching, guard state);
`close()` undoes it. The two ASGI apps are `proxy_app` and `admin_app`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from opentelemetry.sdk.trace.export import SpanExporter
from starlette.applications import Starlette

from vigie.admin import create_admin_app, read_admin_token
from vigie.admin_auth import read_token
from vigie.audit import AuditLog
from vigie.audit.shared import SharedChain
from vigie.auth import Authenticator
from vigie.config import Settings
from vigie.errors import ConfigError
from vigie.forward import Forwarder
from vigie.guard import Guard
from vigie.incident.registry import Incidents
from vigie.incident.wiring import build_incidents
from vigie.learn.usage import NoUsage, UsageRecorder, UsageSink
from vigie.minimize import Minimizer
from vigie.policy.issuers import check_policy_issuers
from vigie.policy.model import Action, PolicySet
from vigie.policy.store import PolicyStore
from vigie.proxy import Proxy, Stages
from vigie.pseudonym import Pseudonymizer
from vigie.request_body import BodyLimits
from vigie.rewrite.rewriter import LinkRewriter
from vigie.telemetry.metrics import Metrics
from vigie.telemetry.tracing import Tracing
from vigie.upstream.client import NativeForwarder
from vigie.upstream.libraries import AiohttpForwarder, HttpxForwarder
from vigie.upstream.options import DISCARD_REASONS, UpstreamOptions
from vigie.upstream.share import PrincipalShare

log = logging.getLogger("vigie")


@dataclass(slots=True)
class Vigie:
    settings: Settings
    stages: Stages
    authenticator: Authenticator
    policies: PolicyStore
    audit: AuditLog
    incidents: Incidents
    proxy_app: Proxy
    admin_app: Starlette
    serving: bool = field(default=False)

    @classmethod
    def build(cls, settings: Settings, *, environ: Mapping[str, str] | None = None,
              span_exporter: SpanExporter | None = None,
              metrics: Metrics | None = None,
              audit_chain: SharedChain | None = None) -> Vigie:
        # httpx logs every request URL at INFO: upstream paths carry patient ids.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        metrics = metrics or Metrics()
        if not settings.policies.is_dir():
            raise ConfigError(f"{settings.policies} is not a folder of policies (key 'policies')",
                              file=str(settings.source or "<environment>"), key="policies")
        policies = PolicyStore(settings.policies, metrics,
                               validate=lambda loaded: _validate(settings, loaded))
        record_pseudonymizer = _record_pseudonymizer(settings)
        pseudonymizer = record_pseudonymizer or _ephemeral()
        admin_token = _token(settings, "admin token", "admin.token_file",
                             lambda: read_admin_token(settings.admin.token_file))
        scrape_token = _token(settings, "scrape token", "admin.scrape_token_file",
                              lambda: read_token(settings.admin.metrics.scrape_token_file,
                                                 "scrape token"))
        guard = Guard(settings, metrics, pseudonymizer)
        authenticator = Authenticator(settings.issuers, metrics)
        audit = AuditLog(settings.audit, metrics, shared=audit_chain)  # shared: workers.py
        incidents = build_incidents(settings, metrics, lambda: policies.current.clients,
                                    can_pseudonymize=record_pseudonymizer is not None,
                                    audit=audit)
        stages = Stages(
            authenticator=authenticator,
            policies=policies,
            guard=guard,
            forwarder=_forwarder(settings, metrics),
            minimizer=Minimizer(metrics, record_pseudonymizer, settings.max_response_bytes),
            audit=audit,
            metrics=metrics,
            tracing=Tracing.from_environment(os.environ if environ is None else environ,
                                             exporter=span_exporter, upstream=settings.upstream),
            pseudonymizer=pseudonymizer,
            default_mode=settings.mode,
            links=LinkRewriter(settings.upstream, settings.links, settings.max_response_bytes),
            incidents=incidents,
            usage=_usage(settings, audit),
            body_limits=BodyLimits(settings.max_request_body_bytes,
                                   settings.request_body_timeout_seconds),
        )
        proxy = Proxy(stages)
        vigie = cls(settings=settings, stages=stages, authenticator=authenticator,
                    policies=policies, audit=audit, incidents=incidents, proxy_app=proxy,
                    admin_app=Starlette())
        principal_of = record_pseudonymizer.principal if record_pseudonymizer else None
        metrics_tokens = {"none": (), "admin": (admin_token,),
                          "scrape": (scrape_token, admin_token)}[settings.admin.metrics.mode]
        vigie.admin_app = create_admin_app(
            metrics, guard, admin_token, vigie.is_ready, incidents, principal_of,
            metrics_tokens=tuple(token for token in metrics_tokens if token is not None))
        return vigie

    def is_ready(self) -> bool:
        """Serving, policies loaded, and a trusted key set for every issuer: a replica that
        holds no key would answer 401 to everyone while looking healthy."""
        return (self.serving and self.policies.current is not None
                and self.authenticator.ready())

    async def start(self) -> None:
        await self.authenticator.start()
        await self.stages.guard.start()
        await self.incidents.start()
        self.policies.start_watching()

    async def close(self) -> None:
        self.serving = False
        await self.policies.stop()
        await self.stages.forwarder.close()
        await self.stages.guard.close()
        await self.incidents.close()
        await self.authenticator.close()
        self.stages.usage.close()
        self.audit.close()
        self.stages.tracing.shutdown()


def _token(settings: Settings, what: str, key: str,
           read: Callable[[], str | None]) -> str | None:
    try:
        return read()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot use the {what}: {exc}",
                          file=str(settings.source or "<environment>"), key=key) from exc


def _usage(settings: Settings, audit: AuditLog) -> UsageSink:
    """The report-only usage log when `audit.usage_path` is set (learn/usage.py)."""
    path = settings.audit.usage_path
    return NoUsage() if path is None else UsageRecorder(
        path, lambda: audit.head, min_principals=settings.audit.usage_min_principals)


def _forwarder(settings: Settings, metrics: Metrics) -> Forwarder:
    """`upstream_client`: the native client (upstream/client.py, http:// and https://) by
    default; aiohttp or httpx on request, with one connection per exchange
    (upstream/libraries.py). Each principal gets at most its share of the pool."""
    discarded = metrics.upstream_discarded
    for reason in DISCARD_REASONS:  # at zero from the start, so increase() sees the first
        metrics.child(discarded, reason)
    options = UpstreamOptions.from_settings(
        settings, on_discard=lambda reason: metrics.child(discarded, reason).inc(),
        on_pool_timeout=metrics.upstream_pool_timeouts.inc)
    client: Forwarder
    if settings.upstream_client == "httpx":
        client = HttpxForwarder(settings.upstream, options)
    elif settings.upstream_client == "aiohttp":
        client = AiohttpForwarder(settings.upstream, options)
    else:
        client = NativeForwarder(settings.upstream, options)
    return PrincipalShare(client, settings.upstream_max_connections_per_principal,
                          metrics.upstream_share_refusals.inc)


def _record_pseudonymizer(settings: Settings) -> Pseudonymizer | None:
    """The configured key, read once at start-up."""
    if settings.pseudonym_key_file is None:
        return None
    try:
        return Pseudonymizer.from_file(settings.pseudonym_key_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot use the pseudonym key: {exc}",
                          file=str(settings.source or "<environment>"),
                          key="pseudonym_key_file") from exc


def _validate(settings: Settings, policies: PolicySet) -> None:
    """The checks on the policies that need the configuration (start-up and reload)."""
    check_policy_issuers(policies, [issuer.issuer for issuer in settings.issuers])
    _require_pseudonym_key(settings, policies)


def _require_pseudonym_key(settings: Settings, policies: PolicySet) -> None:
    """Without a key, no policy may pseudonymize: refused at start-up and on reload."""
    if settings.pseudonym_key_file is not None:
        return
    where = str(settings.source or "<environment>")
    for policy in policies.clients.values():
        for route in policy.routes:
            rules = route.response.fields if route.response else ()
            if any(rule.action is Action.PSEUDONYMIZE for rule in rules):
                raise ConfigError(
                    f"policy {policy.client!r} route {route.name!r} pseudonymizes: "
                    "pseudonym_key_file is required (key 'pseudonym_key_file')",
                    file=where, key="pseudonym_key_file")


def _ephemeral() -> Pseudonymizer:
    log.warning("no pseudonym_key_file: user pseudonyms in the audit log are stable for this "
                "process only")
    return Pseudonymizer.ephemeral()
