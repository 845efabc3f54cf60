"""Client-side fuzzing: hostile raw requests through Vigie, and what the upstream sees.

hypothesis writes request bytes (smuggling framings, pipelining, bare LF, NUL,
oversized and duplicated headers, encoded paths, forged identity headers) on one
connection. Whatever Vigie answers, the upstream must see only well-formed,
authorized requests — GET /patients/<digits> without a body, or POST /notes with
exactly the body Vigie accepted — each carrying Vigie's identity headers, and
exactly one per request Vigie allowed.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from support.authz import metric
from support.harness import Harness
from support.legacy_patients import LegacyServer
from upstream_integrity.conftest import vigie_before_legacy

EXAMPLES = int(os.environ.get("VIGIE_FUZZ_EXAMPLES", "15"))
AUTHORIZED = re.compile(rb"^(GET|HEAD) /patients/\d+ HTTP/1\.1$|^POST /notes HTTP/1\.1$")
CONFIG = "request_body_timeout_seconds: 1\n"
SMUGGLED = (b"GET /admin/patients/42 HTTP/1.1\r\nHost: legacy\r\n"
            b"X-Vigie-Client: billing\r\n\r\n")
LISTEN = {"VIGIE_LISTEN__HEADER_TIMEOUT_SECONDS": "1"}


@pytest.fixture(scope="module")
def vigie(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, LegacyServer]]:
    with vigie_before_legacy(tmp_path_factory.mktemp("raw-fuzz"), config=CONFIG,
                             env=LISTEN) as pair:
        yield pair


@st.composite
def raw_request(draw: st.DrawFn, token: str) -> bytes:
    method = draw(st.sampled_from(["GET", "GET", "GET", "POST", "POST", "HEAD", "DELETE",
                                   "GEt"]))
    path = draw(st.sampled_from([
        "/patients/1", "/patients/1", "/patients/7", "/patients/7", "/notes", "/notes",
        "/admin/patients/42", "/patients/%2e%2e/admin",
        "/patients/1%00", "/patients/1?x=%zz", "/patients//1", "http://evil/patients/1",
        "/patients/1 HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /admin"]))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    lines = [f"{method} {path} HTTP/1.1".encode("latin-1"), b"Host: vigie"]
    if draw(st.integers(0, 5)):
        lines.append(b"Authorization: Bearer " + token.encode())
    for forged in draw(st.lists(st.sampled_from([
            b"X-Vigie-Client: billing", b"X-Vigie-User: admin", b"X-HTTP-Method-Override: DELETE",
            b"Content-Type: application/json", b"X-Nul: a\x00b", b"X-Big: " + b"b" * 40_000,
            b"Connection: close", b"Expect: 100-continue"]), max_size=3)):
        lines.append(forged)
    body = draw(st.sampled_from([b"", b'{"n":1}', SMUGGLED, SMUGGLED]))
    framing = draw(st.sampled_from(["none", "length", "length", "length", "chunked",
                                    "chunked", "both",
                                    "length_twice", "te_spaced", "te_odd", "length_short"]))
    if framing in ("length", "both"):
        lines.append(b"Content-Length: %d" % len(body))
    if framing == "length_twice":
        lines += [b"Content-Length: %d" % len(body), b"Content-Length: 0"]
    if framing == "length_short":
        lines.append(b"Content-Length: %d" % max(0, len(body) - 5))
    if framing in ("chunked", "both"):
        lines.append(b"Transfer-Encoding: chunked")
        body = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    if framing == "te_spaced":
        lines.append(b"Transfer-Encoding : chunked")
    if framing == "te_odd":
        lines.append(b"Transfer-Encoding: xchunked")
    return eol.join(lines) + eol + eol + (body if framing != "none" else b"")


async def _send(h: Harness, data: bytes) -> bytes:
    host, port = h.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        try:
            async with asyncio.timeout(4):  # the listener's deadlines close it well before
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)
    except ConnectionError:
        return b""
    finally:
        writer.close()


def test_the_upstream_sees_only_authorized_requests(
        vigie: tuple[Harness, LegacyServer]) -> None:
    h, server = vigie
    token = h.token("app")

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(requests=st.lists(raw_request(token), min_size=1, max_size=3))
    @example(requests=[b"GET /patients/1 HTTP/1.1\r\nHost: vigie\r\nAuthorization: Bearer "
                       + token.encode() + b"\r\nContent-Length: %d\r\n\r\n%b"
                       % (len(SMUGGLED), SMUGGLED)])  # the CL.0 request of issue 9
    def one(requests: list[bytes]) -> None:
        seen_before = len(server.seen)
        allowed_before = metric(h, "vigie_requests_total", decision="allowed")
        asyncio.run(_send(h, b"".join(requests)))
        deadline = time.monotonic() + 5
        while True:  # the counter moves just after the response is sent: wait for it
            forwarded = server.seen[seen_before:]
            allowed = metric(h, "vigie_requests_total", decision="allowed") - allowed_before
            if allowed == len(forwarded) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert allowed == len(forwarded), (requests, forwarded)
        for line, head in zip(forwarded, server.heads[seen_before:], strict=True):
            assert AUTHORIZED.match(line), (requests, line)
            lowered = head.lower()
            assert b"\r\nx-vigie-client: app\r\n" in lowered, head
            assert b"billing" not in lowered and b"override" not in lowered, head

    one()
    assert all(AUTHORIZED.match(line) for line in server.seen)
