"""Route templates from path shapes: `/patients/{}` and `/patients/{}` → `/patients/{id}`.

Shapes already carry `{}` where a segment looked like a value. A position where
three or more different words follow the same prefix (and precede the same
suffix) is a value too (`/patients/by-name/{}`); those shapes merge. Each
parameter is named after the collection before it (`/patients/{patient_id}/
results/{id}`); route names are built from the words of the path.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from vigie.learn.shapes import PARAM

MERGE_THRESHOLD = 3
_PARAM_TEXT = re.compile(r"\{[A-Za-z0-9_]*\}")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def split(path: str) -> tuple[str, ...]:
    """Segments of a shape or template, every `{...}` read as `{}`."""
    if path == "/":
        return ("",)
    return tuple(PARAM if _PARAM_TEXT.fullmatch(s) else s for s in path[1:].split("/"))


def generalize(shapes: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Each shape → the template shape it belongs to (positions with many words → `{}`)."""
    result = {shape: shape for shape in shapes}
    changed = True
    while changed:
        changed = False
        groups: dict[tuple[int, tuple[str, ...], tuple[str, ...]], set[str]] = defaultdict(set)
        current = set(result.values())
        for shape in current:
            for i, segment in enumerate(shape):
                if segment != PARAM:
                    groups[(i, shape[:i], shape[i + 1:])].add(segment)
        for (i, prefix, suffix), words in groups.items():
            if len(words) >= MERGE_THRESHOLD:
                for source, target in result.items():
                    if target[:i] == prefix and target[i + 1:] == suffix and target[i] in words:
                        result[source] = (*prefix, PARAM, *suffix)
                        changed = True
    return result


def template(shape: tuple[str, ...]) -> str:
    """`/patients/{patient_id}/results/{id}`: parameters named after their collection."""
    params = [i for i, s in enumerate(shape) if s == PARAM]
    out: list[str] = []
    used: set[str] = set()
    for i, segment in enumerate(shape):
        if segment != PARAM:
            out.append(segment)
            continue
        if i == params[-1]:
            name = "id"
        else:
            before = shape[i - 1] if i > 0 and shape[i - 1] != PARAM else f"p{i}"
            name = _identifier(_singular(before)) + "_id"
        base, n = name, 2
        while name in used:
            name, n = f"{base}{n}", n + 1
        used.add(name)
        out.append("{" + name + "}")
    return "/" + "/".join(out)


def route_name(method: str, shape: tuple[str, ...], taken: set[str]) -> str:
    words = [s.split(".")[0] for s in shape if s and s != PARAM]
    base = "-".join(words) or "root"
    if shape and shape[-1] == PARAM:
        base += "-item"
    if method != "GET":
        base = f"{method.lower()}-{base}"
    base = _NAME_CHARS.sub("-", base).strip("-._")[:60] or "route"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def specificity(template_path: str) -> tuple[int, ...]:
    """Sort key that puts literal segments before parameters, so no route shadows a later one."""
    return tuple(1 if s == PARAM else 0 for s in split(template_path))


def _singular(word: str) -> str:
    word = word.split(".")[0]
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _identifier(word: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_]", "_", word).lower().strip("_") or "p"
    return clean if not clean[0].isdigit() else f"p{clean}"
