"""Revocations and containment switches: immutable records, their JSON form and validation.

A `Revocation` refuses tokens already issued: every token of a client, of one user
(the audit pseudonym of its `sub`), or one `jti`, issued before `issued_before`
(default: the moment it is made). It ends by itself at `expires`, when every token it
covers has expired (`issued_before` + the longest token lifetime). A `Containment`
switch narrows what a client (or every client, scope `*`) may do until `expires`.

Operator text (`reason`, `by`) is checked here: short, printable, never a NIR.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from vigie.minimize import nir

GLOBAL = "*"  # the containment scope of every client
MAX_REASON = 200
_TEXT = re.compile(r"[\w .,:;#/()'@+=-]{1,200}")
_NAME = re.compile(r"[A-Za-z0-9._@:+|/=~-]{1,256}")  # clients, pseudonyms, subs, jtis
_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class IncidentInputError(ValueError):
    """A request the incident API refuses (400): the message says what to fix."""


class RevocationKind(StrEnum):
    CLIENT = "client"
    USER = "user"
    JTI = "jti"


class ContainMode(StrEnum):
    DENY = "deny"  # every request 403
    READ_ONLY = "read-only"  # safe methods only
    MINIMAL = "minimal"  # every route answers in its least form


@dataclass(frozen=True, slots=True)
class Revocation:
    id: str
    kind: RevocationKind
    client: str | None
    principal: str | None  # the user's audit pseudonym, never a raw `sub`
    jti: str | None
    issued_before: float
    expires: float
    reason: str
    by: str
    created: float

    def covers(self, issued_at: float | None) -> bool:
        """A token without `iat` cannot prove it is newer: it is covered (fail closed)."""
        return self.kind is RevocationKind.JTI or issued_at is None or (
            issued_at < self.issued_before + CLOCK_SKEW_SECONDS)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Revocation:
        return cls(**{**data, "kind": RevocationKind(data["kind"])})


@dataclass(frozen=True, slots=True)
class Containment:
    scope: str  # a client, or GLOBAL
    mode: ContainMode
    reason: str
    by: str
    created: float
    expires: float

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = str(self.mode)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Containment:
        return cls(**{**data, "mode": ContainMode(data["mode"])})


# An IdP clock a little ahead of ours must not let a token issued just before the
# revocation through: it covers tokens stamped up to this many seconds after it.
CLOCK_SKEW_SECONDS = 30


def new_revocation_id() -> str:
    return "rev_" + secrets.token_hex(6)


def parse_time(value: Any, what: str) -> float:
    """ISO 8601 (naive = UTC) or epoch seconds, as epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise IncidentInputError(f"{what}: expected an ISO 8601 time such as "
                                 f"2026-12-04T15:30:00Z, got {_shown(value)}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise IncidentInputError(f"{what}: not an ISO 8601 time: {_shown(value)} "
                                 "(example: 2026-12-04T15:30:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_duration(value: str, what: str) -> float:
    """`90s`, `15m`, `2h`, `1d` or `1h30m` as seconds."""
    text = value.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise IncidentInputError(f"{what}: not a duration: {_shown(value)} "
                                 "(examples: 30m, 2h, 1d)")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in parts)
    if seconds <= 0:
        raise IncidentInputError(f"{what}: must be longer than zero")
    return float(seconds)


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def check_reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise IncidentInputError("reason: required (a ticket number or a short why)")
    text = value.strip()
    if len(text) > MAX_REASON or not _TEXT.fullmatch(text):
        raise IncidentInputError(f"reason: at most {MAX_REASON} letters, digits, spaces and "
                                 "punctuation . , : ; # / ( ) ' @ + = -")
    if nir.contains(text):
        raise IncidentInputError("reason: must not contain a NIR")
    return text


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise IncidentInputError(f"{what}: expected 1-256 characters among letters, digits "
                                 f"and . _ @ : + | / = ~ -, got {_shown(value)}")
    if nir.contains(value):
        raise IncidentInputError(f"{what}: must not contain a NIR")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 and not nir.contains(text) else "(value not shown)"
