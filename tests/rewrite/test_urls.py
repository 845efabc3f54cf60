"""Every spelling of an upstream URL is found and rewritten; nothing else is touched."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigie.errors import InspectionError
from vigie.rewrite.urls import Links, UpstreamUrls

UPSTREAM = "http://10.0.0.5:8080"
PUBLIC = "https://vigie.example"
LINKS = Links(UpstreamUrls(UPSTREAM), PUBLIC)


@pytest.mark.parametrize(("given_text", "expected"), [
    ("http://10.0.0.5:8080/fhir/Patient?_page=2", "https://vigie.example/fhir/Patient?_page=2"),
    ("HTTP://10.0.0.5:8080/x", "https://vigie.example/x"),
    ("https://10.0.0.5:8080/x", "https://vigie.example/x"),  # the upstream's TLS name
    ('<http://10.0.0.5:8080/p?page=2>; rel="next"', '<https://vigie.example/p?page=2>; rel="next"'),
    ("http://10.0.0.5:8080", "https://vigie.example"),
    ('"http:\\/\\/10.0.0.5:8080\\/fhir"', '"https:\\/\\/vigie.example\\/fhir"'),
    ("next=http%3A%2F%2F10.0.0.5%3A8080%2Fp", "next=https%3A%2F%2Fvigie.example%2Fp"),
    ("a http://10.0.0.5:8080/1 b http://10.0.0.5:8080/2",
     "a https://vigie.example/1 b https://vigie.example/2"),
    ('"http:\\\\/\\\\/10.0.0.5:8080"', '"https:\\\\/\\\\/vigie.example"'),
])
def test_every_spelling_is_rewritten(given_text: str, expected: str) -> None:
    assert LINKS.in_text(given_text) == expected
    assert LINKS.in_bytes(given_text.encode()) == expected.encode()


@pytest.mark.parametrize("other", [
    "http://10.0.0.5:80801/x", "http://10.0.0.50:8080/x", "http://10.0.0.5:808/x",
    "http://10.0.0.5/x", "http://x10.0.0.5:8080.evil/x", "http://10.0.0.5:8080.evil.example/",
    "urn:oid:1.2.250.1.213.1.4.8", "10.0.0.5:8080",
])
def test_other_hosts_and_ports_are_left_alone(other: str) -> None:
    assert LINKS.in_text(other) is other


def test_default_port_spellings_and_base_path() -> None:
    links = Links(UpstreamUrls("https://legacy.example/api"), "https://vigie.example/v")
    assert links.in_text("https://legacy.example/api/p https://LEGACY.example:443/api?q=1") == \
        "https://vigie.example/v/p https://vigie.example/v?q=1"
    for outside in ("https://legacy.example/apiv2/x", "https://legacy.example/other",
                    "https://legacy.example"):
        with pytest.raises(InspectionError):  # no address through the proxy: refused
            links.in_text(outside)


def test_aliases_are_the_upstream_too() -> None:
    links = Links(UpstreamUrls(UPSTREAM, ["https://ehr.hospital.example"]), PUBLIC)
    assert links.in_text("https://ehr.hospital.example/fhir/Patient/1") == \
        "https://vigie.example/fhir/Patient/1"


def test_an_ipv6_upstream() -> None:
    links = Links(UpstreamUrls("http://[::1]:8000"), PUBLIC)
    assert links.in_text("http://[::1]:8000/a") == "https://vigie.example/a"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["x", "é", "\n", '"', "http://10.0.0.5:8080/p?i=1",
                                 "http:\\/\\/10.0.0.5:8080\\/q", "http://10.0.0.55/", "{}"]),
                max_size=40),
       st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=40))
def test_a_stream_cut_anywhere_is_rewritten_as_a_whole(parts: list[str],
                                                       cuts: list[int]) -> None:
    data = "".join(parts).encode()
    feed = LINKS.chunker()
    out, position, index = b"", 0, 0
    while position < len(data):
        size = cuts[index % len(cuts)]
        out += feed(data[position:position + size], False)
        position, index = position + size, index + 1
    out += feed(b"", True)
    assert out == LINKS.in_bytes(data)
    assert b"10.0.0.5:8080" not in out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), min_size=40, max_size=40))
def test_any_letter_case_is_found_by_the_fast_path_too(upper: list[bool]) -> None:
    links = Links(UpstreamUrls("https://legacy.example/Api"), PUBLIC)
    url = "https://legacy.example/api/x"
    spelled = "".join(c.upper() if flip else c for c, flip in zip(url, upper, strict=False))
    spelled += url[len(upper):]
    tail = spelled[-2:]  # "/x" in whatever case: the rest of the URL is kept as it was
    assert links.in_bytes(f'"{spelled}"'.encode()) == f'"https://vigie.example{tail}"'.encode()
    assert links.in_text(spelled) == f"https://vigie.example{tail}"
