"""The `envelope` key of a route's `response`: what may leave outside the records.

    envelope:
      keep: [total, link, "entry[*].fullUrl"]   # selectors from the body root
      unlisted: drop                             # the default; or keep

Absent, the defaults apply (`model.DEFAULT_ENVELOPE_KEEP`, unlisted: drop).
Declared, `keep` replaces the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vigie import yamlsrc
from vigie.policy.model import Envelope, Selector, Unlisted
from vigie.policy.selectors import parse_selector

ENVELOPE_KEYS = ("keep", "unlisted")
Report = Callable[[yamlsrc.Path, str], None]
Parse = Callable[[Callable[[str], Selector], Any, yamlsrc.Path], Selector | None]


def parse_envelope(raw: Any, path: yamlsrc.Path, error: Report, parse: Parse) -> Envelope | None:
    if not isinstance(raw, dict):
        error(path, "must be a mapping with keep (a list of selectors) and unlisted")
        return None
    unknown = [key for key in raw if key not in ENVELOPE_KEYS]
    for key in unknown:
        error((*path, key), f"unknown key (allowed: {', '.join(ENVELOPE_KEYS)})")
    keep = raw.get("keep", [])
    if not isinstance(keep, list):
        error((*path, "keep"), "must be a list of selectors (from the body root)")
        keep = []
    selectors = [parse(parse_selector, text, (*path, "keep", index))
                 for index, text in enumerate(keep)]
    unlisted = Unlisted.DROP
    if "unlisted" in raw:
        try:
            unlisted = Unlisted(raw["unlisted"])
        except ValueError:
            error((*path, "unlisted"), "must be drop or keep")
    if unknown or any(selector is None for selector in selectors):
        return None
    return Envelope(keep=tuple(s for s in selectors if s is not None), unlisted=unlisted)
