"""NIR disguises for tests: every written and encoded form of issue 12, and an oracle.

`DISGUISES` maps a name to a writer (compact NIR -> written form). `revealed` is
the independent oracle: does any decoding of a text (percent, `+`, entities,
`\\u` escapes, base64 at every alignment, NFKC, digits of any script) still
spell the NIR once everything but its characters is removed?
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote, unquote_plus

GROUPS = (1, 2, 2, 2, 3, 3, 2)


def groups(nir: str) -> list[str]:
    out, pos = [], 0
    for size in GROUPS:
        out.append(nir[pos:pos + size])
        pos += size
    return out


def joined(separator: str) -> Callable[[str], str]:
    return lambda nir: separator.join(groups(nir))


def _digits(base: int, letters: int | None = None) -> Callable[[str], str]:
    def write(nir: str) -> str:
        return "".join(chr(base + int(c)) if c.isdigit()
                       else (chr(letters + ord(c) - ord("A")) if letters else c) for c in nir)
    return write


def _percent(nir: str) -> str:
    return "".join(f"%{ord(c):02X}" for c in nir)


def _entities(nir: str) -> str:
    return "".join(f"&#{ord(c)};" for c in nir)


def _escapes(nir: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in nir)


def _b64(text: Callable[[str], str], *, url: bool = False, pad: bool = True,
         prefix: str = "") -> Callable[[str], str]:
    def write(nir: str) -> str:
        raw = (prefix + text(nir)).encode()
        out = (base64.urlsafe_b64encode(raw) if url else base64.b64encode(raw)).decode()
        return out if pad else out.rstrip("=")
    return write


DISGUISES: dict[str, Callable[[str], str]] = {
    "thin_space": joined("\u2009"),
    "figure_space": joined("\u2007"),
    "narrow_nbsp": joined("\u202f"),
    "ideographic_space": joined("\u3000"),
    "zero_width_space": joined("\u200b"),
    "word_joiner": joined("\u2060"),
    "soft_hyphen": joined("\u00ad"),
    "zwsp_and_space": joined("\u200b \u200b"),
    "en_dash": joined("\u2013"),
    "em_dash": joined("\u2014"),
    "minus_sign": joined("\u2212"),
    "slash": joined("/"),
    "plus": joined("+"),
    "fullwidth": _digits(0xFF10, 0xFF21),
    "fullwidth_spaced": lambda nir: " ".join(groups(_digits(0xFF10, 0xFF21)(nir))),
    "arabic_indic": _digits(0x0660),
    "devanagari": _digits(0x0966),
    "percent": _percent,
    "percent_spaced": joined("%20"),
    "percent_nbsp": joined("%C2%A0"),
    "percent_plus": lambda nir: "nir=" + "+".join(groups(nir)),
    "html_decimal": _entities,
    "html_nbsp": joined("&nbsp;"),
    "html_hex_first": lambda nir: f"&#x{ord(nir[0]):x};{nir[1:]}",
    "unicode_escape": _escapes,
    "base64": _b64(lambda nir: nir),
    "base64_spaced": _b64(joined(" ")),
    "base64_nbsp": _b64(joined("\u00a0")),
    "base64url_prefixed": _b64(lambda nir: nir, url=True, pad=False, prefix="NIR: "),
}


_B64 = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")
_ENCODED = re.compile(r"\\u([0-9a-fA-F]{4})")


def _base64_readings(text: str) -> list[str]:
    out = []
    for match in _B64.finditer(text):
        run = match.group().rstrip("=").translate(str.maketrans("-_", "+/"))
        for shift in range(4):
            part = run[shift:]
            part = part[: len(part) - (1 if len(part) % 4 == 1 else 0)]
            try:
                raw = binascii.a2b_base64(part + "=" * (-len(part) % 4))
            except binascii.Error:
                continue
            out.append(raw.decode("utf-8", "replace"))
            out.append(raw.decode("latin-1"))
    return out


def readings(text: str) -> list[str]:
    """Every decoding of `text` an attacker could rely on (two layers deep)."""
    layer = [text]
    for _ in range(2):
        more = []
        for item in layer:
            more += [unquote(item), unquote_plus(item), html.unescape(item),
                     _ENCODED.sub(lambda m: chr(int(m.group(1), 16)), item)]
            more += _base64_readings(item)
        layer = list(dict.fromkeys(layer + more))
    return layer


def skeleton(text: str) -> str:
    """The characters a NIR is made of (digits of any script as ASCII, A/B in upper case);
    any other letter, digit or `*` becomes `|` (it ends a run); the rest is dropped."""
    out = []
    for char in unicodedata.normalize("NFKC", text):
        digit = unicodedata.digit(char, None)
        if digit is not None:
            out.append(str(digit))
        elif char in "ABab":
            out.append(char.upper())
        elif char.isalnum() or char == "*":
            out.append("|")
    return "".join(out)


def revealed(text: str, nir: str) -> bool:
    """Does any reading of `text` still spell `nir`, with anything but letters and digits
    (spaces, dashes, format characters, punctuation) between its characters?"""
    return any(nir in skeleton(reading) for reading in readings(text))
