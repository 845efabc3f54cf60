"""NIR masking over parsed JSON values: every string, number and key, any depth.

The walk is iterative (an explicit stack), so a deeply nested body is refused
with InspectionError instead of exhausting the interpreter's stack. Containers
are changed in place: they come fresh from the parser and belong to us.
"""

from __future__ import annotations

from typing import Any

from vigie.context import Decision
from vigie.errors import InspectionError
from vigie.minimize import nir

# orjson serializes at most 254 levels; refuse a little earlier, explicitly.
MAX_DEPTH = 200
_MIN_NIR_INT = 10 ** (nir.MIN_LENGTH - 1)


def count_nir(decision: Decision, where: str, found: int) -> None:
    decision.nir_detections[where] += found
    decision.masked["nir"] += found


def scalar_text(value: object) -> str | None:
    """The text a NIR could hide in, for a JSON scalar; None when it cannot hold one."""
    if type(value) is str:
        return value if len(value) >= nir.MIN_LENGTH else None
    if type(value) is int:
        return str(value) if value >= _MIN_NIR_INT or value <= -_MIN_NIR_INT else None
    if type(value) is float:
        text = repr(value)
        return text if len(text) >= nir.MIN_LENGTH else None
    return None


def scan_scalar(value: Any, decision: Decision, where: str = "field") -> Any:
    """The scalar with any NIR masked; a masked number becomes a string."""
    text = scalar_text(value)
    if text is None:
        return value
    masked, found = nir.mask_text(text)
    if not found:
        return value
    count_nir(decision, where, found)
    return masked


def scan_key(key: str, decision: Decision) -> str:
    if len(key) < nir.MIN_LENGTH:
        return key
    masked, found = nir.mask_text(key)
    if found:
        count_nir(decision, "field", found)
    return masked


def scan_tree(value: Any, decision: Decision, depth: int = 0) -> Any:
    """`value` with every NIR masked (containers changed in place and returned)."""
    if not isinstance(value, dict | list):
        return scan_scalar(value, decision)
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, depth)]
    while stack:
        container, level = stack.pop()
        if level > MAX_DEPTH:
            raise InspectionError("response nested too deeply to inspect")
        if isinstance(container, dict):
            rename = False
            for key, item in container.items():
                kind = type(item)
                if kind is str:
                    if len(item) >= nir.MIN_LENGTH:
                        container[key] = scan_scalar(item, decision)
                elif kind is dict or kind is list:
                    stack.append((item, level + 1))
                elif kind is int or kind is float:
                    container[key] = scan_scalar(item, decision)
                if len(key) >= nir.MIN_LENGTH and nir.contains(key):
                    rename = True
            if rename:
                items = list(container.items())
                container.clear()
                for key, item in items:
                    container[scan_key(key, decision)] = item
        else:
            scalars = 0
            for index, item in enumerate(container):
                kind = type(item)
                if kind is str:
                    scalars += 1
                    if len(item) >= nir.MIN_LENGTH:
                        container[index] = scan_scalar(item, decision)
                elif kind is dict or kind is list:
                    stack.append((item, level + 1))
                elif kind is int or kind is float:
                    scalars += 1
                    container[index] = scan_scalar(item, decision)
            if scalars > 1:
                mask_adjacent(container, decision)
    return value


def _element_text(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value)
    return None


def mask_adjacent(items: list[Any], decision: Decision) -> None:
    """A NIR split over consecutive scalar elements of one array (`["1850578",
    "00608491"]`), found in their concatenation: each element masks its part (a masked
    number becomes a string). Elements are scanned alone before this."""
    start = 0
    count = len(items)
    while start < count:
        if _element_text(items[start]) is None:
            start += 1
            continue
        end = start
        texts: list[str] = []
        while end < count and (text := _element_text(items[end])) is not None:
            texts.append(text)
            end += 1
        if len(texts) > 1 and sum(map(len, texts)) >= nir.MIN_LENGTH:
            masked, spans = nir.scan("".join(texts))
            if spans:
                count_nir(decision, "field", len(spans))
                offset = 0
                for index, text in enumerate(texts, start):
                    piece = masked[offset:offset + len(text)]
                    offset += len(text)
                    if piece != text:
                        items[index] = piece
        start = end + 1


class Fallback(Exception):  # noqa: N818 - a signal, not an error
    """The one-scan pass (`onescan.py`) cannot decide alone: the per-value path runs."""


def check_depth(value: Any, depth: int = 0) -> None:
    """What `scan_tree` would refuse for nesting, found without scanning: raises Fallback."""
    if type(value) is not dict and type(value) is not list:
        return
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, depth)]
    while stack:
        container, level = stack.pop()
        if level > MAX_DEPTH:
            raise Fallback
        for item in container.values() if type(container) is dict else container:
            if type(item) is dict or type(item) is list:
                stack.append((item, level + 1))
