"""`build_incidents(settings, ...)`: the store chosen by the settings, and the live `Incidents`.

Redis when `redis` is set (every replica shares it), else the `incident.state_file`,
else this process only (a warning at start-up; the API says so on every change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from vigie.config import Settings
from vigie.incident.audit_events import AuditRecorder, IncidentEvents
from vigie.incident.redis_store import RedisIncidentStore
from vigie.incident.registry import Incidents
from vigie.incident.stores import FileStore, IncidentStore, MemoryStore
from vigie.telemetry.metrics import Metrics

log = logging.getLogger("vigie.incident")


def build_incidents(settings: Settings, metrics: Metrics,
                    known_clients: Callable[[], Collection[str]], *, can_pseudonymize: bool,
                    audit: AuditRecorder | None = None) -> Incidents:
    store: IncidentStore
    if settings.redis is not None:
        store = RedisIncidentStore(settings.redis)
    elif settings.incident.state_file is not None:
        store = FileStore(settings.incident.state_file)
    else:
        log.warning("no redis and no incident.state_file: revocations and containment "
                    "switches last until this process stops")
        store = MemoryStore()
    events = IncidentEvents(settings.guard.events_path, audit)
    return Incidents(store, metrics, events, known_clients,
                     max_token_lifetime_seconds=settings.incident.max_token_lifetime_seconds,
                     can_pseudonymize=can_pseudonymize)
