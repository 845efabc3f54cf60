"""NIR detection and masking: one compiled scanner over any text.

A NIR is 13 characters (sex, year, month, department with Corsica 2A/2B,
commune, order) and a 2-digit key, `97 - (N mod 97)`, N being the 13 characters
with 2A -> 19 and 2B -> 18 (the key itself comes from `stdnum.fr.nir`).

Decisions (fail closed, the contract's "masking is the safe side"):

- Written forms: compact, or with ONE optional separator between any two of
  its 15 characters (space, tab, no-break spaces, dot, dash and the Unicode
  hyphens), so `1 85 05 78 006 084 91`, `1.85.05...`, `1-85-05-...`,
  `1850578006084 91` and irregular groupings are all found. `2a`/`2b` in lower
  case count as Corsica too.
- Structure: only the key is checked. A number with a correct key but an
  impossible structure (month 00, sex 0/5/9, department 00, order 000...) is
  still masked: structure rules are contested (provisional sex 3/4/7/8,
  pseudo-months 20-42 and 50-99) and a miss leaks while a false hit only hides
  a number that is 1-in-97 likely to collide anyway.
- Boundaries: a match must not touch another digit on either side, so a NIR
  embedded in a longer digit run (a 16-digit number, a timestamp) is not a NIR.
  Letters around it do not protect it: `NIR185057800608491x` is masked.
- Masked form: every character of the match (separators included) becomes
  `*`, so lengths and offsets are preserved and no digit of it survives.

The 13-character form without key is never detected by value (it collides with
millisecond timestamps); policies mask it by field.
"""

from __future__ import annotations

import re

from stdnum.fr.nir import calc_check_digits

MIN_LENGTH = 15  # a string shorter than this cannot hold a NIR: the cheap pre-filter
MASK_CHAR = "*"

_SEP = "[ \\t\\u00a0\\u202f.\\-\\u2010\\u2011]?"
_D = "[0-9]"
# The boundary check sits after the first digit, not before it: a pattern that starts
# with a character class lets `re` skip non-digits in C (4x faster on free text).
_SCANNER = re.compile(
    _D
    + "(?<![0-9][0-9])"
    + _SEP
    + _SEP.join([_D] * 4)
    + _SEP
    + f"(?:{_D}{_SEP}{_D}|2{_SEP}[ABab])"
    + _SEP
    + _SEP.join([_D] * 8)
    + "(?![0-9])"
)
# Any match of the scanner, valid key or not, is a candidate (the one-scan pass uses it).
SCANNER = _SCANNER
_SEPARATORS = re.compile(_SEP[:-1])

Span = tuple[int, int]


def _key_ok(match: str) -> bool:
    compact = match.upper() if len(match) == MIN_LENGTH else _SEPARATORS.sub("", match).upper()
    return calc_check_digits(compact[:13]) == compact[13:]


_DIGITS = b"0123456789"
MIN_DIGITS = 13  # 13 digits, or 12 and a Corsica letter plus the 2-digit key: at least 13


def _too_few_digits(text: str) -> bool:
    """The cheap pre-filter: counting digits in C costs ~1 us for 500 characters."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, _DIGITS)) < MIN_DIGITS


def find(text: str) -> list[Span]:
    """The (start, end) spans of every valid NIR in `text`, left to right."""
    if len(text) < MIN_LENGTH or _too_few_digits(text):
        return []
    spans: list[Span] = []
    search = _SCANNER.search
    pos = 0
    while (match := search(text, pos)) is not None:
        if _key_ok(match.group()):
            spans.append(match.span())
            pos = match.end()
        else:
            # A wrong-key candidate may overlap a valid one that starts later.
            pos = match.start() + 1
    return spans


def mask_text(text: str) -> tuple[str, int]:
    """`text` with every NIR masked, and how many were masked."""
    spans = find(text)
    if not spans:
        return text, 0
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(MASK_CHAR * (end - start))
        last = end
    parts.append(text[last:])
    return "".join(parts), len(spans)


def contains(text: str) -> bool:
    return bool(find(text))


def is_whole_nir(value: str) -> bool:
    """True when `value` is exactly one NIR, nothing before or after it."""
    if len(value) < MIN_LENGTH:
        return False
    match = _SCANNER.fullmatch(value)
    return match is not None and _key_ok(value)
