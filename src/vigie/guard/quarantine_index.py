"""The quarantine index the admin list reads: one Redis hash, `<client>\x1f<pseudonym>` ->
{until (Redis clock), reason, mode}. Plain commands only (never inside a script), so on a
Redis Cluster it is routed to its node like any key."""

from __future__ import annotations

from typing import Any

import orjson

from vigie.guard.store import Quarantine

SEPARATOR = "\x1f"


def index_field(client: str, subject: str) -> str:
    return f"{client}{SEPARATOR}{subject}"


def parse_index(raw: dict[Any, Any], now: float, offset: float
                ) -> tuple[list[Any], list[Quarantine]]:
    expired: list[Any] = []
    live: list[Quarantine] = []
    for field, value in raw.items():
        text = field.decode() if isinstance(field, bytes) else str(field)
        client, _, subject = text.partition(SEPARATOR)
        meta = orjson.loads(value)
        until = float(meta.get("until", 0))
        if until <= now:
            expired.append(field)
            continue
        live.append(Quarantine(client, subject, until - offset, str(meta.get("reason", "")),
                               str(meta.get("mode", "enforce"))))
    return expired, live
