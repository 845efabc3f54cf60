"""Path normalization end to end, over raw sockets (httpx would normalize targets itself).

A target that could make the proxy and the upstream disagree about the resource
is refused (400) and reaches nothing; a target that has one canonical form is
normalized, and the upstream receives exactly the path that was authorized.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from authz.conftest import NO_GUARD
from support.authz import auth_failures, raw_get, raw_request, sample
from support.harness import Harness, Keys

POLICY = """\
client: gp-frontdesk
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    scopes: [patient.read]
  - name: read-document
    methods: [GET]
    path: /patients/{id}/documents/{doc}
    scopes: [patient.read]
""" + NO_GUARD


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, hospital_keys: Keys) -> Iterator[Harness]:
    with Harness(tmp_path_factory.mktemp("paths"), {"gp.yaml": POLICY},
                 keys=hospital_keys) as harness:
        harness.upstream.reply(json={"ok": True})
        yield harness


@pytest.fixture(scope="module")
def token(h: Harness) -> str:
    return h.token("gp-frontdesk", scope="patient.read")


def refused(h: Harness, target: bytes, token: str, status: int = 400, *,
            by_vigie: bool = True) -> None:
    """`target` is refused with `status`, reaching nothing and counting no auth failure.

    by_vigie=False: the HTTP parser may refuse it before vigie sees it (also fine)."""
    forwarded = len(h.upstream.requests)
    failures = sample(h.metrics_text(), "vigie_auth_failures_total")
    got, headers, body = raw_get(h, target, token)
    assert got == status, (target, got, body[:200])
    assert len(h.upstream.requests) == forwarded, target
    if by_vigie or headers.get("content-type") == "application/problem+json":
        assert headers["content-type"] == "application/problem+json", (target, headers)
        problem = orjson.loads(body)
        assert problem["status"] == status
        assert problem["request_id"] == headers["x-request-id"]
    assert sample(h.metrics_text(), "vigie_auth_failures_total") == failures


@pytest.mark.parametrize("target", [
    # encoded slash, dot, backslash, NUL, semicolon, in any case
    b"/patients%2F42", b"/patients%2f42", b"/patients/42%2F..%2F..%2Fadmin",
    b"/patients/%2E%2E/admin", b"/patients/%2e%2e/admin", b"/patients/%2E", b"/%2e/patients/42",
    b"/patients/42%5Cadmin", b"/patients/42%5c", b"/patients/42%00", b"/patients/42%00.json",
    b"/patients/42%3Bx=1", b"/patients/42%3b",
    # raw backslash and matrix parameters
    b"/patients\\42", b"/patients/42\\..\\admin",
    b"/patients/42;jsessionid=abc", b"/patients;x=1/42", b"/patients/;/42",
    # double encoding and malformed escapes
    b"/patients/%252F42", b"/patients/%252e%252e/admin", b"/patients/%25%32%46",
    b"/patients/%2542",  # "%25" then two hex digits: double encoding of "B"
    b"/patients/%", b"/patients/%4", b"/patients/%G1",
    # dot segments above the root
    b"/../patients/42", b"/patients/../../patients/42", b"/..",
    # unicode tricks: overlong UTF-8, fullwidth and compatibility forms, bidi controls
    b"/patients/%C0%AE%C0%AE/admin", b"/patients/%C0%AF", b"/patients/%E0%80%AE",
    b"/patients/%EF%BC%8F42", b"/patients/%EF%BC%8E%EF%BC%8E", b"/patients/%EF%BC%94%EF%BC%92",
    b"/patients/%E2%80%AE24", b"/patients/%C2%A042", b"/patients/%EF%BB%BF42", b"/patients/%FF",
    # characters that are not legal in a path
    b"/patients/<42>", b"/patients/4\"2", b"/patients/{42}", b"/patients/4|2", b"/patients/4^2",
    b"/patients/4`2",
    # overlong path
    b"/patients/" + b"1" * 5000, b"/patients/42/documents/" + b"a" * 4090,
])
def test_ambiguous_paths_are_refused(h: Harness, token: str, target: bytes) -> None:
    refused(h, target, token)


@pytest.mark.parametrize("target", [
    b"/patients/\xef\xbc\x94\xef\xbc\x92",  # raw UTF-8 fullwidth "42"
    b"/patients/\xc3\xa9", b"/patients/\x80", b"/patients/42\x00", b"/patients/4 2",
    b"/patients/42\x7f", b"/patients/42\t", b"\\patients\\42",
])
def test_raw_bytes_outside_printable_ascii_are_refused(h: Harness, token: str,
                                                       target: bytes) -> None:
    refused(h, target, token, by_vigie=False)


@pytest.mark.parametrize("request_line", [
    b"GET http://evil.example/patients/42 HTTP/1.1",
    b"GET http://127.0.0.1/patients/42 HTTP/1.1",
    b"GET https://vigie.test/patients/42 HTTP/1.1",
    b"GET //evil.example/patients/42 HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"GET patients/42 HTTP/1.1",
])
def test_targets_that_are_not_an_origin_form_path_are_refused(h: Harness, token: str,
                                                              request_line: bytes) -> None:
    forwarded = len(h.upstream.requests)
    answer = raw_request(h, request_line + b"\r\nHost: vigie.test\r\nConnection: close\r\n"
                         b"Authorization: Bearer " + token.encode() + b"\r\n\r\n")
    status = int(answer.split(b" ", 2)[1])
    if request_line.startswith(b"GET //evil"):
        # origin form after all: "//evil.example/patients/42" is the path /evil.example/...
        assert status == 403, answer[:200]
    else:
        assert status == 400, answer[:200]
    assert len(h.upstream.requests) == forwarded


@pytest.mark.parametrize(("target", "forwarded_path"), [
    (b"//patients//42", "/patients/42"),
    (b"/patients///42", "/patients/42"),
    (b"/./patients/42", "/patients/42"),
    (b"/patients/./42", "/patients/42"),
    (b"/admin/../patients/42", "/patients/42"),
    (b"/patients/41/../42", "/patients/42"),
    (b"/patients/42/documents/7/../../../42", "/patients/42"),
    (b"/%70atients/%34%32", "/patients/42"),
    (b"/pa%74ients/4%32", "/patients/42"),
    (b"/patients/%7E42", "/patients/~42"),
    (b"/patients/%c3%a9", "/patients/%C3%A9"),
    (b"/patients/%C3%A9", "/patients/%C3%A9"),
    (b"/patients/a%20b", "/patients/a%20b"),
    (b"/patients/%25", "/patients/%25"),
    (b"/patients/42/documents/%41-1", "/patients/42/documents/A-1"),
    (b"/patients/42?", "/patients/42"),
])
def test_normalizable_paths_are_forwarded_exactly_as_authorized(
        h: Harness, token: str, target: bytes, forwarded_path: str) -> None:
    forwarded = len(h.upstream.requests)
    status, _, body = raw_get(h, target, token)
    assert status == 200, (target, body[:200])
    assert len(h.upstream.requests) == forwarded + 1
    assert h.upstream.requests[-1].path == forwarded_path


@pytest.mark.parametrize("target", [
    b"/patients/../admin", b"/patients/42/../../admin/42", b"/patients/42/documents/..",
    b"/patients/42/.", b"/Patients/42", b"/patients/42/", b"//patients//42//",
    b"/%61dmin",
])
def test_a_normalized_path_no_route_names_is_forbidden(h: Harness, token: str,
                                                       target: bytes) -> None:
    refused(h, target, token, 403)


def test_path_checks_never_run_before_the_token(h: Harness) -> None:
    """Without a valid token a malformed path is still 401: nothing is learned about routes."""
    forwarded = len(h.upstream.requests)
    before = auth_failures(h, "missing")
    status, headers, _ = raw_get(h, b"/patients%2F42", None)
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert auth_failures(h, "missing") == before + 1
    assert len(h.upstream.requests) == forwarded
