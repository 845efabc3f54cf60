"""Request-target hygiene: one canonical path, authorized and forwarded byte for byte.

`normalize(raw_path)` takes the path exactly as sent on the wire (ASGI
`scope["raw_path"]`: percent-encoded, without the query) and returns the one
path that routes are matched against and that the upstream receives. Anything
that could make the proxy and the upstream disagree about which resource is
meant is refused with `BadRequest` (400) rather than repaired:

- a target that does not start with '/' (absolute-form `http://h/x`,
  authority-form, asterisk-form) or that holds '?' or '#';
- encoded slash, dot, backslash, NUL or semicolon (`%2F %2E %5C %00 %3B`, any case),
  any raw backslash or `;` (matrix parameters), raw bytes outside printable ASCII,
  characters that are not legal in a URI path (space, `"<>^`{|}`);
- double encoding: `%25` followed by two hex digits (`%252F`); a lone `%25` stays;
- malformed escapes (`%`, `%G1`), escapes that do not decode to UTF-8 (overlong
  forms such as `%C0%AE` included), decoded control characters, and decoded
  characters that Unicode compatibility normalization (NFKC) would change
  (fullwidth `／` `．` and the like, which some back ends fold into `/` and `.`);
- dot segments that climb above the root; paths longer than `MAX_PATH_LENGTH`.

Then: escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded, other
escapes are kept with upper-case hex, duplicate slashes collapse, and dot
segments are removed (RFC 3986 5.2.4; a trailing `.`/`..` leaves a trailing '/').
The result always starts with exactly one '/', so `upstream + path` can never
change the upstream's host.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from vigie.errors import BadRequest

MAX_PATH_LENGTH = 4096
MAX_QUERY_LENGTH = 8192

# Paths in the common case (no escapes, no dot segments, no '//') are already normal.
_SIMPLE = re.compile(r"(?:/[A-Za-z0-9_~!$&'()*+,=:@-][A-Za-z0-9._~!$&'()*+,=:@-]*)*/?")
# Raw characters allowed in a path: unreserved, sub-delims except ';', ':', '@', '/', '%'.
_LEGAL = re.compile(r"[A-Za-z0-9._~!$&'()*+,=:@/%-]*")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_DOUBLE = re.compile(r"%25[0-9A-Fa-f]{2}")
_MULTI_SLASH = re.compile(r"/{2,}")
_REFUSED_ESCAPES = {
    "2F": "encoded slash",
    "2E": "encoded dot",
    "5C": "encoded backslash",
    "00": "encoded NUL",
    "3B": "encoded ';'",
}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Query strings: printable ASCII without '#' (fragments never reach a server legitimately).
_QUERY_LEGAL = re.compile(r"[\x21\x24-\x7e]*")


def normalize(raw_path: bytes | str) -> str:
    """The canonical path for `raw_path`, or BadRequest naming what was refused."""
    text = _ascii(raw_path)
    if len(text) > MAX_PATH_LENGTH:
        raise BadRequest("path too long")
    if _SIMPLE.fullmatch(text) and text:
        return text
    if not text.startswith("/"):
        raise BadRequest("the request target must be a path starting with '/'")
    if not _LEGAL.fullmatch(text):
        bad = next(c for c in text if not _LEGAL.fullmatch(c))
        raise BadRequest(f"character {bad!r} is not allowed in a path")
    if "%" in text:
        text = _decode_unreserved(text)
    text = _MULTI_SLASH.sub("/", text)
    return _remove_dot_segments(text)


def segment_value(segment: str) -> str:
    """The decoded text of one segment of a normalized path (a path parameter's value)."""
    return unquote(segment, errors="strict") if "%" in segment else segment


def check_query(query_string: bytes | str) -> str:
    """The raw query as text, refused (400) when it holds non-ASCII, controls, space or '#'."""
    if isinstance(query_string, bytes):
        try:
            text = query_string.decode("ascii")
        except UnicodeDecodeError:
            raise BadRequest("non-ASCII byte in the query string") from None
    else:
        text = query_string
    if len(text) > MAX_QUERY_LENGTH:
        raise BadRequest("query string too long")
    if not _QUERY_LEGAL.fullmatch(text):
        raise BadRequest("character not allowed in the query string")
    return text


def upstream_url(upstream: str, path: str, query: str) -> str:
    """The URL the proxy forwards to: configured upstream + normalized path + '?' + query.

    `path` must be the output of `normalize` (checked: a mistake here would let a
    client pick another host); `query` the validated raw query.
    """
    if not path.startswith("/") or path.startswith("//") or normalize(path) != path:
        raise ValueError("upstream_url needs a normalized path")
    if "#" in query:
        raise ValueError("upstream_url needs a validated query")
    base = upstream.rstrip("/")
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def _ascii(raw_path: bytes | str) -> str:
    if isinstance(raw_path, bytes):
        try:
            text = raw_path.decode("ascii")
        except UnicodeDecodeError:
            raise BadRequest("non-ASCII byte in the path") from None
    else:
        text = raw_path
        if not text.isascii():
            raise BadRequest("non-ASCII character in the path")
    if not text.isprintable() or " " in text:
        raise BadRequest("control character or space in the path")
    if "\\" in text:
        raise BadRequest("backslash in the path")
    if ";" in text:
        raise BadRequest("';' parameters are not allowed in the path")
    if "?" in text or "#" in text:
        raise BadRequest("the path must not contain '?' or '#'")
    return text


def _decode_unreserved(text: str) -> str:
    if _DOUBLE.search(text):
        raise BadRequest("double percent-encoding in the path")
    if text.count("%") != len(_ESCAPE.findall(text)):
        raise BadRequest("malformed percent-escape in the path")

    def replace(match: re.Match[str]) -> str:
        hex_digits = match.group(1).upper()
        refused = _REFUSED_ESCAPES.get(hex_digits)
        if refused:
            raise BadRequest(f"{refused} in the path")
        char = chr(int(hex_digits, 16))
        return char if char in _UNRESERVED else f"%{hex_digits}"

    decoded = _ESCAPE.sub(replace, text)
    if _DOUBLE.search(decoded):  # "%25%32%46" decodes to "%252F": double encoding in disguise
        raise BadRequest("double percent-encoding in the path")
    for segment in decoded.split("/"):
        if "%" in segment:
            _check_decoded(segment)
    return decoded


def _check_decoded(segment: str) -> None:
    try:
        value = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("percent-escapes in the path are not valid UTF-8") from None
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value):
        raise BadRequest("encoded control or unassigned character in the path")
    if unicodedata.normalize("NFKC", value) != value:
        raise BadRequest("encoded compatibility character in the path")


def _remove_dot_segments(path: str) -> str:
    segments = path[1:].split("/")
    if "." not in segments and ".." not in segments:
        return path
    output: list[str] = []
    for segment in segments:
        if segment == ".":
            continue
        if segment == "..":
            if not output:
                raise BadRequest("the path climbs above the root")
            output.pop()
            continue
        output.append(segment)
    if segments[-1] in (".", ".."):
        output.append("")
    return "/" + "/".join(output)
