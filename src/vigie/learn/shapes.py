"""Shapes, never values: what a request and a response looked like, for the usage log.

- `path_shape`: a concrete path with every segment that could carry a value
  replaced by `{}` (digits, ids, anything that is not a short API word).
- `query_shape`: the parameter names (never values) and, for page-size
  parameters only, the number asked for.
- `scope_names`: the token scopes that read as names, to suggest route scopes.
- `field_paths`: the selectors (`address.postcode`, `telecom[*].value`,
  `identifier[?system=urn:oid:...].value`) of the fields a JSON body
  returned, relative to its records, bounded in depth, records and count.
  A FHIR identifier's `system` (a code system URI, not personal data) is kept
  so that the INS can be told from a local id; other values never are.

Words (path segments, query names, keys) that read as API words may still be a
person's name: the recorder writes them only once words.py admits them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from vigie.minimize import nir

PARAM = "{}"
PAGE_SIZE_NAMES = frozenset({"page_size", "pagesize", "per_page", "limit", "size", "_count",
                             "count", "max_results", "page[size]"})
MAX_DEPTH = 8
MAX_RECORDS_SAMPLED = 20
MAX_FIELD_PATHS = 256

_WORD = re.compile(r"[A-Za-z][A-Za-z_-]{0,31}(?:\.[a-z]{1,8})?|v[0-9]{1,2}|R[0-9]")
_QUERY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\[\]-]{0,63}")
_KEY = re.compile(r"[A-Za-z_@][A-Za-z0-9_@-]{0,63}")
_SCOPE = re.compile(r"[A-Za-z][A-Za-z0-9_.:/*-]{0,63}")
_DIGITS = re.compile(r"[0-9]{4}")
_SYSTEM = re.compile(r"urn:oid:[0-9]+(?:\.[0-9]+){1,20}"
                     r"|urn:[a-z0-9-]{1,32}(?::[A-Za-z0-9._-]{1,64}){1,6}"
                     r"|https?://[A-Za-z0-9.-]{1,100}(?:/[A-Za-z0-9._~-]{1,64}){0,10}")


def is_word(segment: str) -> bool:
    """A path segment that reads as an API word (`patients`, `export.ndjson`), not a value."""
    return _WORD.fullmatch(segment) is not None and not nir.contains(segment)


def path_shape(path: str) -> tuple[str, ...]:
    """The segments of a normalized path, value-like ones replaced by `{}`."""
    if path == "/":
        return ("",)
    return tuple(part if is_word(part) else PARAM for part in path[1:].split("/"))


def query_shape(query: str) -> tuple[list[str], dict[str, int]]:
    """(parameter names, {page-size name: number asked}) of a raw query string."""
    names: list[str] = []
    sizes: dict[str, int] = {}
    for pair in query.split("&") if query else ():
        raw_name, _, raw_value = pair.partition("=")
        name = unquote_plus(raw_name)
        if not _QUERY_NAME.fullmatch(name) or nir.contains(name):
            continue  # a name that could be a value is not recorded
        if name not in names:
            names.append(name)
        value = unquote_plus(raw_value).strip()
        if name.lower() in PAGE_SIZE_NAMES and value.isdigit() and len(value) <= 9:
            sizes[name] = max(sizes.get(name, 0), int(value))
    return names, sizes


def scope_names(scopes: frozenset[str]) -> set[str]:
    """The token's scopes that read as names (authorization, not patient data); 32 at most."""
    names = {scope for scope in scopes if _SCOPE.fullmatch(scope) and not _DIGITS.search(scope)
             and not nir.contains(scope)}
    return set(sorted(names)[:32])


def records_location(body: Any) -> tuple[str, list[Any]]:
    """Where the records of a JSON body are, and a sample of them."""
    if isinstance(body, list):
        return "$[*]", body[:MAX_RECORDS_SAMPLED]
    if isinstance(body, dict):
        entries = body.get("entry")
        if body.get("resourceType") == "Bundle" and isinstance(entries, list):
            return "$.entry[*].resource", [e["resource"] for e in entries[:MAX_RECORDS_SAMPLED]
                                          if isinstance(e, dict) and "resource" in e]
        items = body.get("items")
        if isinstance(items, list):
            return "$.items[*]", items[:MAX_RECORDS_SAMPLED]
    return "$", [body]


KeyGate = Callable[[str], bool]


def _any_key(key: str) -> bool:
    return True


def field_paths(records: list[Any], limit: int = MAX_FIELD_PATHS,
                admit: KeyGate = _any_key) -> set[str]:
    """The leaf selectors of these records (at most `limit`); a key `admit` refuses is `{}`."""
    out: set[str] = set()
    for record in records:
        _walk(record, "", 0, out, limit, admit)
    return out


def _walk(value: Any, path: str, depth: int, out: set[str], limit: int,
          admit: KeyGate) -> None:
    if len(out) >= limit:
        return
    if depth > MAX_DEPTH:
        if path:
            out.add(path)
        return
    if isinstance(value, dict):
        if not value and path:
            out.add(path)
        for key, child in value.items():
            if not isinstance(key, str) or not _KEY.fullmatch(key) or _DIGITS.search(key):
                continue  # a key that could be a value (an id, a date) is not recorded
            step = key if admit(key) else PARAM  # a key that could be a name: `{}`
            _walk(child, f"{path}.{step}" if path else step, depth + 1, out, limit, admit)
        return
    if isinstance(value, list) and path:
        dicts = [item for item in value[:MAX_RECORDS_SAMPLED] if isinstance(item, dict)]
        if not dicts:
            out.add(path)  # a list of scalars is one field
            return
        for item in dicts:
            system = item.get("system")
            if isinstance(system, str) and _SYSTEM.fullmatch(system) and not nir.contains(system):
                _walk(item, f"{path}[?system={system}]", depth + 1, out, limit, admit)
            else:
                _walk(item, f"{path}[*]", depth + 1, out, limit, admit)
        return
    if path:
        out.add(path)
