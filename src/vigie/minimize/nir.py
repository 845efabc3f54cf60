"""NIR detection and masking: one compiled scanner over any text, in every disguise.

A NIR is 13 characters (sex, year, month, department with Corsica 2A/2B,
commune, order) and a 2-digit key, `97 - (N mod 97)`, N being the 13 characters
with 2A -> 19 and 2B -> 18 (the key itself comes from `stdnum.fr.nir`).

Decisions (fail closed, the contract's "masking is the safe side"):

- Digits: the decimal digits of any script (`\\d` in Unicode: Arabic-Indic,
  Devanagari, full-width...) and the superscript and subscript digits. The
  Corsica letters in either case, full-width too.
- Separators: between any two of its 15 characters, at most ONE visible
  separator (every Unicode space, tab, dot, dash, slash, `+`, `_`) and any
  number of invisible format characters (category Cf: soft hyphen, zero-width
  space and joiners, word joiner, bidi marks...). So `1 85 05 78 006 084 91`,
  `1.85.05...`, `1–85–05...`, `1/85/05...`, `1+85+05...` (a URL query), and
  irregular groupings are all found; the scanner reads the original text, so
  offsets are the original ones and masking keeps the length.
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
- Encoded forms (percent-encoding, HTML entities, `\\uXXXX` escapes, base64):
  `encoded.py`; `scan` and `mask_text` here cover them too.

The 13-character form without key is never detected by value (it collides with
millisecond timestamps); policies mask it by field.
"""

from __future__ import annotations

import re
import unicodedata

from stdnum.fr.nir import calc_check_digits

from vigie.minimize import encoded
from vigie.minimize.encoded import Span

MIN_LENGTH = 15  # a string shorter than this cannot hold a NIR: the cheap pre-filter
MASK_CHAR = "*"


def _chars_of(categories: tuple[str, ...], top: int = 0x10000) -> list[str]:
    """Every character below `top` of these Unicode categories (plus the plane-14 tags
    for Cf). Computed at import (~20 ms) so it follows the running Python's Unicode."""
    chars = [chr(c) for c in range(top) if unicodedata.category(chr(c)) in categories]
    if "Cf" in categories:
        chars += [chr(0xE0001)] + [chr(c) for c in range(0xE0020, 0xE0080)]
    return [c for c in chars if c not in "\n\r"]


def _class(chars: list[str] | str) -> str:
    return "".join(re.escape(c) for c in chars)


# Invisible: any number of them anywhere between two characters of a NIR.
_INVISIBLE = _chars_of(("Cf",))
# Visible separators: one at most between two characters. Newlines are left out (a NIR
# is not written over two lines, and JSON writes them as escapes, see onescan.py).
_VISIBLE = _chars_of(("Zs", "Pd")) + list("\t._/+\u00b7\u2024\u2027\u2044\u2212\u2215"
                                          "\u30fb\uff0b\uff0e\uff0f\uff3f\uff65")
_OTHER_DIGITS = "\u00b2\u00b3\u00b9\u2070\u2074\u2075\u2076\u2077\u2078\u2079" + "".join(
    chr(c) for c in range(0x2080, 0x208A))
_CORSICA = "ABab\uff21\uff22\uff41\uff42"
# The common separators, ASCII and the French no-break spaces: the fast pattern's.
_COMMON_SEPARATORS = " \t._/+\\-\u00a0\u202f"
# Any other character a NIR may be written with: its presence selects the full pattern.
EXOTIC = frozenset(
    c for c in [*_INVISIBLE, *_VISIBLE, *_chars_of(("Nd",), 0x20000), *_OTHER_DIGITS,
                *_CORSICA] if not c.isascii() and c not in _COMMON_SEPARATORS)


def _scanner(digit: str, two: str, corsica: str, sep: str) -> re.Pattern[str]:
    # The boundary check sits after the first digit, not before it: a pattern that starts
    # with a character class lets `re` skip non-digits in C (4x faster on free text).
    # Possessive separators: a separator is never a digit, backtracking into one is vain.
    return re.compile(
        digit + f"(?<!{digit}{digit})" + sep + sep.join([digit] * 4) + sep
        + f"(?:{digit}{sep}{digit}|{two}{sep}{corsica})" + sep + sep.join([digit] * 8)
        + f"(?!{digit})")


_FAST = _scanner("[0-9]", "2", "[ABab]", f"[{_COMMON_SEPARATORS}]?+")
# Any digit before a Corsica letter (a `2` of another script); `_key_ok` checks it is a 2.
_FULL = _scanner(f"[\\d{_OTHER_DIGITS}]", f"[\\d{_OTHER_DIGITS}]", f"[{_CORSICA}]",
                 f"[{_class(_INVISIBLE)}]*+(?:[{_class(_VISIBLE)}][{_class(_INVISIBLE)}]*+)?+")


def candidate(text: str) -> re.Match[str] | None:
    """The first match of the scanner, valid key or not (the one-scan pass uses it)."""
    return _pattern(text).search(text)


def _pattern(text: str) -> re.Pattern[str]:
    """The fast pattern unless the text holds a character only the full one knows
    (checked in C: ~6 us for 1,000 characters of non-ASCII text)."""
    return _FAST if text.isascii() or EXOTIC.isdisjoint(text) else _FULL


_ASCII_SEPARATORS = re.compile("[ \\t._/+\\-]")
_LETTERS = {"a": "A", "b": "B", "A": "A", "B": "B", "\uff21": "A", "\uff22": "B",
            "\uff41": "A", "\uff42": "B"}


def compact(match: str) -> str:
    """The 15 ASCII characters a match stands for (digits of any script, A/B upper)."""
    if match.isascii():
        return (match if len(match) == MIN_LENGTH
                else _ASCII_SEPARATORS.sub("", match)).upper()
    out = []
    for char in match:
        digit = unicodedata.digit(char, None)
        if digit is not None:
            out.append(chr(48 + digit))
        elif char in _LETTERS:
            out.append(_LETTERS[char])
    return "".join(out)


def _key_ok(match: str) -> bool:
    digits = compact(match)
    if len(digits) != MIN_LENGTH or (not digits[6].isdigit() and digits[5] != "2"):
        return False
    return calc_check_digits(digits[:13]) == digits[13:]


_DIGITS = b"0123456789"
MIN_DIGITS = 13  # 13 digits, or 12 and a Corsica letter plus the 2-digit key: at least 13


def _too_few_digits(text: str) -> bool:
    """The cheap pre-filter: counting digits in C costs ~1 us for 500 characters.
    Only for ASCII text: other scripts' digits are not counted, so they are scanned."""
    raw = text.encode("ascii")
    return len(raw) - len(raw.translate(None, _DIGITS)) < MIN_DIGITS


def find(text: str) -> list[Span]:
    """The (start, end) spans of every valid NIR written in plain (not encoded) form."""
    if len(text) < MIN_LENGTH or (text.isascii() and _too_few_digits(text)):
        return []
    spans: list[Span] = []
    search = _pattern(text).search
    pos = 0
    while (match := search(text, pos)) is not None:
        if _key_ok(match.group()):
            spans.append(match.span())
            pos = match.end()
        else:
            # A wrong-key candidate may overlap a valid one that starts later.
            pos = match.start() + 1
    return spans


def scan(text: str) -> tuple[str, list[Span]]:
    """`text` with every NIR masked, plain or encoded, and the spans that changed
    (each masked form keeps its length and stays valid in its own encoding)."""
    if len(text) < MIN_LENGTH:
        return text, []
    spans = find(text)
    if spans:
        text = mask_spans(text, spans)
    text, more = encoded.mask_encoded(text, find)
    if more:
        spans = sorted(spans + more)
    return text, spans


def mask_spans(text: str, spans: list[Span]) -> str:
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(MASK_CHAR * (end - start))
        last = end
    parts.append(text[last:])
    return "".join(parts)


def mask_text(text: str) -> tuple[str, int]:
    """`text` with every NIR masked (in any form), and how many were masked."""
    masked, spans = scan(text)
    return masked, len(spans)


def contains(text: str) -> bool:
    return bool(scan(text)[1])


def is_whole_nir(value: str) -> bool:
    """True when `value` is exactly one NIR in plain form, nothing before or after it."""
    if len(value) < MIN_LENGTH:
        return False
    match = _pattern(value).fullmatch(value)
    return match is not None and _key_ok(value)
