"""SMART on FHIR scopes: which granted scopes satisfy a scope a route requires.

A route's scope is either an opaque name (`patient.read`: the token must carry it,
exactly) or a SMART clinical scope `context/Type.permissions[?query]`:
- context `patient`, `user` or `system`: never interchangeable;
- Type a FHIR resource type, or `*` (every type);
- permissions SMART v2 letters in order `c r u d s` (`rs`, `cruds`...), or SMART v1
  `read` (= `rs`), `write` (= `cud`) or `*` (= `cruds`).

A granted scope satisfies a required one when the context is the same, its type is the
same or `*` (a required `*` needs a granted `*`), its permissions include every required
permission, and it is not narrowed by a query the requirement does not have (a granted
`patient/Observation.rs?category=laboratory` satisfies only that same requirement).
So `patient/Patient.read`, `patient/*.rs` and `patient/Patient.cruds` all satisfy
`patient/Patient.rs`; `user/Patient.read` does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

CONTEXTS = ("patient", "user", "system")
_SMART = re.compile(r"(patient|user|system)/(\*|[A-Z][A-Za-z]{0,63})\.([a-z*]+)(\?.+)?")
_V2 = re.compile(r"c?r?u?d?s?")
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}


@dataclass(frozen=True, slots=True)
class SmartScope:
    context: str
    resource: str  # a FHIR type, or "*"
    permissions: frozenset[str]
    query: str  # "" or "?category=..."


@lru_cache(maxsize=4096)
def parse(scope: str) -> SmartScope | None:
    """The SMART scope `scope` spells, or None (an opaque scope name, or malformed)."""
    match = _SMART.fullmatch(scope)
    if match is None:
        return None
    context, resource, letters, query = match.groups()
    permissions = _V1.get(letters)
    if permissions is None:
        if not letters or not _V2.fullmatch(letters):
            return None
        permissions = frozenset(letters)
    return SmartScope(context, resource, permissions, query or "")


def looks_smart(scope: str) -> bool:
    """A scope written in the SMART form (so a typo in it is an error, not a name)."""
    return scope.startswith(tuple(f"{c}/" for c in CONTEXTS))


def covers(granted: SmartScope, required: SmartScope) -> bool:
    return (granted.context == required.context
            and granted.resource in ("*", required.resource)
            and required.permissions <= granted.permissions
            and granted.query in ("", required.query))


def satisfied(required: frozenset[str], granted: frozenset[str]) -> bool:
    """Every required scope is granted, SMART scopes by SMART matching, others exactly."""
    if required <= granted:
        return True
    for scope in required - granted:
        wanted = parse(scope)
        if wanted is None:
            return False
        if not any(have is not None and covers(have, wanted)
                   for have in map(parse, granted)):
            return False
    return True
