"""The `request:` key of a route: `{body: allowed|refused, max_bytes: N, content_types: [..]}`.

Kept apart from loader.py, which calls `parse_request_rule` with its error collector.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from vigie import yamlsrc
from vigie.policy.model import RequestRule

REQUEST_KEYS = ("body", "max_bytes", "content_types")
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def parse_request_rule(raw: Any, path: yamlsrc.Path,
                       error: Callable[[yamlsrc.Path, str], None]) -> RequestRule | None:
    """The rule, or None after reporting every problem through `error`."""
    if not isinstance(raw, dict):
        error(path, "must be a mapping of body, max_bytes, content_types")
        return None
    problems = 0

    def report(where: yamlsrc.Path, message: str) -> None:
        nonlocal problems
        problems += 1
        error(where, message)

    for key in raw:
        if key not in REQUEST_KEYS:
            report((*path, key), f"unknown key (allowed: {', '.join(REQUEST_KEYS)})")
    body: bool | None = None
    if "body" in raw:
        if raw["body"] not in ("allowed", "refused"):
            report((*path, "body"), "must be allowed or refused")
        body = raw["body"] == "allowed"
    max_bytes = raw.get("max_bytes")
    if max_bytes is not None and (not isinstance(max_bytes, int) or isinstance(max_bytes, bool)
                                  or max_bytes <= 0):
        report((*path, "max_bytes"), "must be a positive number of bytes")
    types = raw.get("content_types", [])
    if not isinstance(types, list):
        report((*path, "content_types"), "must be a list of media types")
        types = []
    for index, item in enumerate(types):
        if not isinstance(item, str) or not _MEDIA_TYPE.fullmatch(item.strip().lower()):
            report((*path, "content_types", index), "must be a media type (type/subtype)")
    if problems:
        return None
    return RequestRule(body=body, max_bytes=max_bytes,
                       content_types=frozenset(t.strip().lower() for t in types))
