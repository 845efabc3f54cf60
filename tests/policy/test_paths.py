"""Path normalization: what the proxy matches is exactly what the upstream receives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigie.errors import BadRequest
from vigie.paths import MAX_PATH_LENGTH, check_query, normalize, segment_value, upstream_url


@pytest.mark.parametrize(("raw", "expected"), [
    ("/", "/"),
    ("/patients/42", "/patients/42"),
    (b"/patients/42", "/patients/42"),
    ("/patients/", "/patients/"),
    ("/a//b///c", "/a/b/c"),
    ("//patients/42", "/patients/42"),
    ("/a/./b", "/a/b"),
    ("/a/b/../c", "/a/c"),
    ("/a/b/.", "/a/b/"),
    ("/a/b/..", "/a/"),
    ("/a/..", "/"),
    ("/.", "/"),
    ("/patients/4%32", "/patients/42"),            # unreserved escapes are decoded
    ("/%70atients/%7Eme_%2D", "/patients/~me_-"),
    ("/a/%c3%a9", "/a/%C3%A9"),                    # others kept, upper-cased
    ("/a/%3f%23", "/a/%3F%23"),
    ("/a/%25zz", "/a/%25zz"),                      # a lone encoded '%' is data
    ("/a/%20b", "/a/%20b"),
    ("/.well-known/x", "/.well-known/x"),
    ("/a/...", "/a/..."),
    ("/a:b@c/!$&'()*+,=", "/a:b@c/!$&'()*+,="),
    ("//evil.example/x", "/evil.example/x"),      # can never become an authority
])
def test_normalizes(raw: str | bytes, expected: str) -> None:
    assert normalize(raw) == expected
    assert normalize(expected) == expected  # idempotent


@pytest.mark.parametrize(("raw", "reason"), [
    ("/patients/42%2F..%2F43", "encoded slash"),
    ("/a%2fb", "encoded slash"),
    ("/a/%2e%2e/b", "encoded dot"),
    ("/a/%2E/b", "encoded dot"),
    ("/a/.%2e/b", "encoded dot"),
    ("/a%5cb", "encoded backslash"),
    ("/a%5Cb", "encoded backslash"),
    ("/a\\b", "backslash"),
    ("/a/..\\..\\x", "backslash"),
    ("/a%00", "encoded NUL"),
    ("/a\x00", "control character"),
    ("/a;jsessionid=1", "';' parameters"),
    ("/a%3Bx", "encoded ';'"),
    ("/a%3bx", "encoded ';'"),
    ("/%252F", "double percent-encoding"),
    ("/%252e%252e/x", "double percent-encoding"),
    ("/%25%32%46", "double percent-encoding"),  # %25 then escaped hex
    ("/..", "climbs above the root"),
    ("/../etc/passwd", "climbs above the root"),
    ("/a/../../x", "climbs above the root"),
    ("/a/b/../../..", "climbs above the root"),
    ("http://evil/x", "starting with '/'"),
    ("https://evil.example/patients/1", "starting with '/'"),
    ("evil.example:443", "starting with '/'"),
    ("*", "starting with '/'"),
    ("", "starting with '/'"),
    ("patients/1", "starting with '/'"),
    ("/a?b=1", "'?' or '#'"),
    ("/a#frag", "'?' or '#'"),
    ("/a b", "space"),
    ("/a\tb", "control character"),
    ("/a\r\nHost: evil", "control character"),
    ("/a\x7f", "control character"),
    (b"/caf\xc3\xa9", "non-ASCII byte"),
    ("/café", "non-ASCII character"),
    (b"/\xff", "non-ASCII byte"),
    ("/a%", "malformed percent-escape"),
    ("/a%4", "malformed percent-escape"),
    ("/a%G0", "malformed percent-escape"),
    ("/%C0%AE%C0%AE/x", "not valid UTF-8"),        # overlong '.'
    ("/%C0%AF", "not valid UTF-8"),                # overlong '/'
    ("/%E0%80%AF", "not valid UTF-8"),
    ("/%FF", "not valid UTF-8"),
    ("/%EF%BC%8F", "compatibility character"),     # fullwidth solidus
    ("/%EF%BC%8E%EF%BC%8E/x", "compatibility character"),  # fullwidth full stops
    ("/%0A", "encoded control"),
    ("/%E2%80%AE", "encoded control"),             # right-to-left override (Cf)
    ("/a<b>", "not allowed in a path"),
    ("/a{b}", "not allowed in a path"),
    ('/a"b', "not allowed in a path"),
    ("/a|b", "not allowed in a path"),
    ("/" + "a" * MAX_PATH_LENGTH, "too long"),
])
def test_refuses(raw: str | bytes, reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        normalize(raw)
    assert reason in caught.value.detail
    assert caught.value.status == 400


def test_segment_values_are_decoded() -> None:
    assert segment_value("%C3%A9t%C3%A9") == "été"
    assert segment_value("42") == "42"


@pytest.mark.parametrize(("query", "ok"), [
    (b"", True), (b"last_name=Martin&page=2", True), (b"q=a%20b+c", True),
    (b"q=\xc3\xa9", False), (b"q=a b", False), (b"q=a#b", False), (b"q=\x00", False),
    (b'q="x"', False),
])
def test_check_query(query: bytes, ok: bool) -> None:
    if ok:
        assert check_query(query) == query.decode()
    else:
        with pytest.raises(BadRequest):
            check_query(query)


def test_upstream_url_is_upstream_plus_normalized_path() -> None:
    path = normalize(b"//evil.example/patients/../x")
    assert upstream_url("http://legacy:8000/", path, "") == "http://legacy:8000/evil.example/x"
    assert upstream_url("http://legacy:8000/api", "/p/1", "a=1") == "http://legacy:8000/api/p/1?a=1"
    for bad in ("//evil.example/x", "evil", "/a/../b", "/a%2fb"):
        with pytest.raises((ValueError, BadRequest)):
            upstream_url("http://legacy:8000", bad, "")


_PATH_CHARS = st.sampled_from(list("ab9.-_~/%:@!$&'()*+,=;\\?#") + ["%2F", "%2e", "%41", "%25",
                                                                     "..", "//", "%C3%A9"])


@given(st.lists(_PATH_CHARS, max_size=30).map(lambda parts: "/" + "".join(parts)))
def test_normalized_paths_are_stable_and_safe(raw: str) -> None:
    try:
        path = normalize(raw)
    except BadRequest:
        return
    assert normalize(path) == path
    assert path.startswith("/") and not path.startswith("//")
    segments = path.split("/")
    assert "." not in segments and ".." not in segments
    assert "//" not in path
    lowered = path.lower()
    for refused in ("%2f", "%2e", "%5c", "%00", "%3b", "\\", ";", "?", "#"):
        assert refused not in lowered
