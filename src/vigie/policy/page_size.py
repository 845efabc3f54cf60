"""The `page_size:` key of a route: `{param: <query parameter>, max: N}`.

It tells the guard which query parameter sizes a page and the largest page, so the
reservation and the deep-paging signal need not guess from parameter names. `max`
defaults to the query rule's `max` of that parameter. Kept apart from loader.py, which
calls `parse_page_size` with its error collector.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from vigie import yamlsrc
from vigie.policy.model import PageSize, QueryRule

PAGE_SIZE_KEYS = ("param", "max")
_PARAM = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def parse_page_size(raw: Any, path: yamlsrc.Path, query: QueryRule | None,
                    error: Callable[[yamlsrc.Path, str], None]) -> PageSize | None:
    """The declaration, or None (absent, or after reporting every problem via `error`)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        error(path, "must be a mapping of param (the query parameter) and max")
        return None
    found = _Count(error)
    for key in raw:
        if key not in PAGE_SIZE_KEYS:
            found.report((*path, key), f"unknown key (allowed: {', '.join(PAGE_SIZE_KEYS)})")
    param = raw.get("param")
    if not isinstance(param, str) or not _PARAM.fullmatch(param):
        found.report((*path, "param"), "must name the query parameter that sets the page "
                                        "size (letters, digits, '_', '.', '-')")
        return None
    if query is not None and query.allowed and param not in query.allowed:
        found.report((*path, "param"), f"{param!r} is not in the query rule's allowed "
                                        "parameters")
    cap = raw.get("max")
    declared = query.max.get(param) if query is not None else None
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        found.report((*path, "max"), "must be a positive integer (the largest page)")
    elif cap is not None and declared is not None and cap != declared:
        found.report((*path, "max"), f"differs from the query rule's max of {param!r} "
                                      f"({declared}); declare one")
    if found.problems:
        return None
    return PageSize(param, cap if cap is not None else declared)


class _Count:
    """Reports through `error`, counting what it reported."""

    def __init__(self, error: Callable[[yamlsrc.Path, str], None]) -> None:
        self.error = error
        self.problems = 0

    def report(self, where: yamlsrc.Path, message: str) -> None:
        self.problems += 1
        self.error(where, message)
