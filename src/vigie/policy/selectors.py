"""Parse selector strings into `model.Selector` step tuples, once, at load time.

Two flavours share one grammar:

    field selectors (relative to one record)   last_name, address.postcode,
                                               telecom[*].value,
                                               identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value
    record locations (from the body root)      $, $[*], $.items[*], $.entry[*].resource

Grammar: a selector is a key followed by any number of `.key`, `[*]` or
`[?key=value]`; a location is `$` followed by the same steps. Keys are made of
letters, digits, `_`, `-` and `@`. A filter value runs to the closing `]` and
may hold dots and colons (OIDs, URNs); quote it ('...' or "...") when it holds
`]` or is empty. Anything else is a ValueError that names the position.
"""

from __future__ import annotations

import re

from vigie.policy.model import Each, Key, Selector, Step, Where

_KEY = re.compile(r"[A-Za-z0-9_@-]+")


def parse_selector(text: str) -> Selector:
    """A field selector relative to one record, e.g. `telecom[*].value`."""
    if not isinstance(text, str) or not text:
        raise ValueError("empty selector")
    if text.startswith("$"):
        raise ValueError(f"selector {text!r}: field selectors are relative to the record; "
                         "drop the leading '$'")
    if not _KEY.match(text):
        raise ValueError(f"selector {text!r}: must start with a field name")
    return Selector(text, _steps(text, 0))


def parse_location(text: str) -> Selector:
    """Where the records are in a body: `$`, `$[*]`, `$.items[*]`, `$.entry[*].resource`."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise ValueError(f"record location {text!r}: must start with '$' "
                         "(e.g. \"$\", \"$[*]\", \"$.items[*]\")")
    if text == "$":
        return Selector(text, ())
    if text[1] not in ".[":
        raise ValueError(f"record location {text!r}: expected '.' or '[' at position 1")
    return Selector(text, _steps(text, 2 if text[1] == "." else 1))


def _steps(text: str, position: int) -> tuple[Step, ...]:
    steps: list[Step] = []
    expect_key = position == 0 or text[position - 1] == "."
    while True:
        if expect_key:
            match = _KEY.match(text, position)
            if not match:
                raise _error(text, position, "expected a field name")
            steps.append(Key(match.group()))
            position = match.end()
        if position == len(text):
            return tuple(steps)
        char = text[position]
        if char == ".":
            position += 1
            expect_key = True
        elif char == "[":
            step, position = _bracket(text, position)
            steps.append(step)
            expect_key = False
        else:
            raise _error(text, position, f"unexpected {char!r}")


def _bracket(text: str, position: int) -> tuple[Step, int]:
    """Parse `[*]` or `[?key=value]` starting at the '['; return the step and the next index."""
    body = position + 1
    if text.startswith("*]", body):
        return Each(), body + 2
    if not text.startswith("?", body):
        if text[body:body + 1].isdigit():
            raise _error(text, body, "list indexes are not supported: use [*] or [?key=value]")
        raise _error(text, body, "expected '*' or '?key=value' after '['")
    match = _KEY.match(text, body + 1)
    if not match:
        raise _error(text, body + 1, "expected a field name in the filter")
    key, position = match.group(), match.end()
    if not text.startswith("=", position):
        raise _error(text, position, "expected '=' in the filter (only equality is supported)")
    position += 1
    quote = text[position:position + 1]
    if quote in ("'", '"'):
        end = text.find(quote, position + 1)
        if end < 0:
            raise _error(text, position, "unterminated quoted filter value")
        value = text[position + 1:end]
        if not text.startswith("]", end + 1):
            raise _error(text, end + 1, "expected ']' after the quoted filter value")
        return Where(key, value), end + 2
    end = text.find("]", position)
    if end < 0:
        raise _error(text, position, "missing ']'")
    value = text[position:end]
    if not value:
        raise _error(text, position, "empty filter value (quote it: [?key=''])")
    if "[" in value:
        raise _error(text, position + value.index("["),
                     "'[' inside a filter value: quote the value")
    return Where(key, value), end + 1


def _error(text: str, position: int, message: str) -> ValueError:
    return ValueError(f"selector {text!r}, position {position}: {message}")
