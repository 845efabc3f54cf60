"""Field values one by one: their text, and the mask and generalize transforms.

A value that cannot be generalized (not a date, not a postcode) becomes None:
the safe side. Masking keeps the length and at most the last 2 or 4 characters.
"""

from __future__ import annotations

import re
from typing import Any

from vigie.policy.model import Each, Generalization, Key, MaskStyle, Step

_YEAR = re.compile(r"(\d{4})(?:$|[-/T ])")
_MONTH = re.compile(r"(\d{4})-(\d{2})(?:$|[-T ])")
_POSTCODE = re.compile(r"\d{5}")


def as_text(value: Any) -> str | None:
    """A JSON scalar as text (JSON spelling for booleans); None for null and containers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return None


def select_first(record: Any, steps: tuple[Step, ...]) -> Any:
    """The first value a selector reaches in a record, or None."""
    value = record
    for step in steps:
        if isinstance(step, Key):
            if not isinstance(value, dict) or step.name not in value:
                return None
            value = value[step.name]
            continue
        if not isinstance(value, list):
            return None
        if isinstance(step, Each):
            if not value:
                return None
            value = value[0]
        else:
            matches = [e for e in value if isinstance(e, dict)
                       and as_text(e.get(step.key)) == step.value]
            if not matches:
                return None
            value = matches[0]
    return value


def department(value: str) -> str | None:
    text = value.strip()
    if not _POSTCODE.fullmatch(text):
        return None
    if text.startswith("20"):
        return "2A" if text[2] in "01" else "2B" if text[2] in "26" else "20"
    if text.startswith(("97", "98")):
        return text[:3]
    return text[:2]


def generalize(value: Any, how: Generalization | None) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and how is Generalization.DEPARTMENT:
        text: str | None = f"{value:05d}"
    else:
        text = as_text(value)
    if text is None:
        return None
    if how is Generalization.YEAR:
        year = _YEAR.match(text)
        return year.group(1) if year else None
    if how is Generalization.MONTH:
        month = _MONTH.match(text)
        return f"{month.group(1)}-{month.group(2)}" if month else None
    if how is Generalization.DEPARTMENT:
        return department(text)
    return None


def mask(text: str, style: MaskStyle | None) -> str:
    shown = 2 if style is MaskStyle.LAST2 else 4 if style is MaskStyle.LAST4 else 0
    if shown == 0 or len(text) <= shown:
        return "*" * len(text)
    return "*" * (len(text) - shown) + text[-shown:]
