"""Route path templates: parse `/patients/{id}` into segments, and compare two templates.

A segment is a literal (matched exactly, after path normalization) or a whole
`{name}` parameter that matches one non-empty segment. No other wildcards. A
trailing '/' is kept as an empty last literal segment (legacy APIs that use it).
"""

from __future__ import annotations

import re

from vigie.errors import BadRequest
from vigie.paths import normalize

Segments = tuple[str | None, ...]
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_template(template: object) -> tuple[Segments, tuple[str, ...]]:
    """(segments, parameter names) of a path template; ValueError with a precise reason."""
    if not isinstance(template, str) or not template.startswith("/"):
        raise ValueError("a path template must be a string starting with '/'")
    if template == "/":
        return ("",), ()
    segments: list[str | None] = []
    params: list[str] = []
    parts = template[1:].split("/")
    for position, part in enumerate(parts):
        if "*" in part:
            raise ValueError("no wildcards in paths: use {name} for one segment")
        if not part and position < len(parts) - 1:
            raise ValueError("empty segment ('//') in the path template")
        param = _PARAM.fullmatch(part)
        if param:
            if param.group(1) in params:
                raise ValueError(f"duplicate path parameter {{{param.group(1)}}}")
            params.append(param.group(1))
            segments.append(None)
        elif "{" in part or "}" in part:
            raise ValueError(f"bad segment {part!r}: a {{name}} parameter must be a whole "
                             "segment, its name letters, digits and '_'")
        else:
            segments.append(part)
    literal = "/" + "/".join("x" if s is None else s for s in segments)
    try:
        normal = normalize(literal)
    except BadRequest as exc:
        raise ValueError(f"invalid path: {exc.detail}") from None
    if normal != literal:
        raise ValueError(f"write the path in normalized form (as {normal!r})")
    return tuple(segments), tuple(params)


def covers(earlier: Segments, later: Segments) -> bool:
    """True when every path the `later` template matches is also matched by `earlier`."""
    if len(earlier) != len(later):
        return False
    return all(
        (mine is None and theirs != "") or mine == theirs
        for mine, theirs in zip(earlier, later, strict=True)
    )
