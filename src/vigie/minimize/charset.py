"""Text without a declared charset: which encoding it is, and every other way to read it.

A `text/*` body without `charset` (or a text export labelled octet-stream) is
sniffed, in this order: a byte order mark (UTF-8, UTF-16 LE/BE); NUL bytes
mostly at odd (UTF-16 LE) or even (UTF-16 BE) offsets; valid UTF-8; else
latin-1 (every byte is a character, so nothing is lost). The body is masked in
that reading, and then every other plausible reading of the masked bytes is
scanned too (`other_readings`): a NIR that one of them shows was not masked,
so the response is refused (fail closed) rather than sent.
"""

from __future__ import annotations

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_UTF16_SAMPLE = 4096
_UTF16_SHARE = 0.3  # share of the sample's code units with a NUL in one byte


def sniff(raw: bytes) -> str:
    """The codec to read a body that declares no charset."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            return codec
    utf16 = utf16_order(raw)
    if utf16 is not None:
        return utf16
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def utf16_order(raw: bytes) -> str | None:
    """`utf-16-le` or `utf-16-be` when NULs sit mostly at one parity (ASCII text in
    UTF-16 without a BOM); None otherwise."""
    sample = raw[:_UTF16_SAMPLE]
    if b"\x00" not in sample or len(sample) < 2:
        return None
    odd = sample[1::2].count(0)
    even = sample[0::2].count(0)
    units = len(sample) // 2
    if odd >= _UTF16_SHARE * units and odd > 4 * even:
        return "utf-16-le"
    if even >= _UTF16_SHARE * units and even > 4 * odd:
        return "utf-16-be"
    return None


def other_readings(raw: bytes, codec: str) -> list[str]:
    """`raw` as every plausible reading other than `codec`: UTF-8 (undecodable bytes
    replaced), latin-1, and both UTF-16 orders when the bytes hold a NUL."""
    readings = []
    family = codec.replace("-sig", "")
    if family != "utf-8":
        readings.append(raw.decode("utf-8", "replace"))
    if family != "latin-1":
        readings.append(raw.decode("latin-1"))
    if b"\x00" in raw:
        for order in ("utf-16-le", "utf-16-be"):
            if not family.startswith("utf-16"):
                readings.append(raw[: len(raw) // 2 * 2].decode(order, "replace"))
    return readings
