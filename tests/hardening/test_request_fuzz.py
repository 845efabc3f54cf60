"""Hypothesis against the listener with raw bytes: smuggling, pipelining, bare LF, NUL,
oversized and duplicated headers, bad percent-encodings.

Whatever the bytes, the upstream sees either nothing or exactly one well-formed,
authorized request per request Vigie accepted: a GET of the one allowed route, with
no body and Vigie's own identity headers, and never the smuggled request.
`VIGIE_FUZZ_EXAMPLES` raises the number of examples (the long mode).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.harness import Harness, Seen

POLICY = """\
client: app
routes:
  - name: read
    methods: [GET]
    path: /patients/{id}
    response: {records: "$", fields: {id: keep}}
limits: {requests: 100000/minute, records: 1000000/hour, distinct_patients: 1000000/day,
         enumeration: false}
"""
SMUGGLED = (b"GET /admin/patients/42 HTTP/1.1\r\nHost: legacy\r\n"
            b"X-Vigie-Client: billing\r\n\r\n")
ALLOWED_PATH = re.compile(r"/patients/[0-9]{1,6}")
EXAMPLES = int(os.environ.get("VIGIE_FUZZ_EXAMPLES", "60"))
SILENCE_SECONDS = 2.0  # an answer that has not started by then is not coming


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with Harness(Path(tmp_path_factory.mktemp("fuzz")), {"app.yaml": POLICY}) as h:
        h.upstream.reply(json={"id": "1"})
        h.valid_token = h.token("app", scope="")  # type: ignore[attr-defined]
        yield h


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)


framings = st.sampled_from([
    ("none", []),
    ("cl", [b"Content-Length: %d" % len(SMUGGLED)]),
    ("cl-zero", [b"Content-Length: 0"]),
    ("cl-dup", [b"Content-Length: %d" % len(SMUGGLED), b"Content-Length: 0"]),
    ("cl-plus", [b"Content-Length: +%d" % len(SMUGGLED)]),
    ("te", [b"Transfer-Encoding: chunked"]),
    ("te-cl", [b"Transfer-Encoding: chunked", b"Content-Length: 4"]),
    ("te-list", [b"Transfer-Encoding: chunked, identity"]),
    ("te-space", [b"Transfer-Encoding : chunked"]),
    ("te-tab", [b"Transfer-Encoding:\tchunked"]),
    ("te-fold", [b"X-Padding: a", b" Transfer-Encoding: chunked"]),
    ("te-dup", [b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked"]),
])
targets = st.one_of(
    st.integers(0, 999_999).map(lambda n: b"/patients/%d" % n),
    st.sampled_from([b"/patients/1%2F..%2Fadmin", b"/patients/1%zz", b"/patients/%",
                     b"http://legacy/patients/1", b"//patients/1", b"/patients/1#x",
                     b"/admin/patients/42", b"/patients/1?q=%G0", b"/patients/1/../2",
                     b"/patients/\x001", b"*", b"/patients/1 HTTP/1.1\r\nX-A: b"]),
)
extra_headers = st.lists(st.sampled_from([
    b"X-Vigie-Client: billing", b"X-Vigie-User: someone", b"X-HTTP-Method-Override: DELETE",
    b"X-Forwarded-For: 10.0.0.1", b"Expect: 100-continue", b"X-Nul: a\x00b",
    b"X-Big: " + b"a" * 70_000, b"Host: second.example", b"Connection: keep-alive, x-a",
    b"X-A: b\rc", b"Authorization: Bearer x.y.z",
]), max_size=3)


@st.composite
def units(draw: st.DrawFn, token: bytes) -> tuple[bytes, bool]:
    """One request as raw bytes, and whether it asks for the connection to close."""
    method = draw(st.sampled_from([b"GET", b"GET", b"GET", b"HEAD", b"POST", b"get"]))
    target = draw(targets)
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.1x"]))
    newline = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    name, framing = draw(framings)
    close = draw(st.booleans())
    lines = [method + b" " + target + b" " + version, b"Host: vigie.test",
             b"Authorization: Bearer " + token, *framing, *draw(extra_headers)]
    if close:
        lines.append(b"Connection: close")
    body = b""
    if name.startswith("te"):
        body = _chunked(SMUGGLED)
    elif name in ("cl", "cl-dup", "cl-plus"):
        body = SMUGGLED
    return newline.join(lines) + newline + newline + body, close


async def _exchange(base_url: str, data: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    chunks: list[bytes] = []
    try:
        writer.write(data)
        await writer.drain()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), SILENCE_SECONDS)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    except ConnectionError:
        pass
    finally:
        writer.close()
    return b"".join(chunks)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_the_upstream_sees_only_authorized_requests(harness: Harness, data: st.DataObject) -> None:
    token = harness.valid_token.encode()  # type: ignore[attr-defined]
    requests = data.draw(st.lists(units(token), min_size=1, max_size=3))
    payload = b"".join(raw for raw, _ in requests)
    before = len(harness.upstream.requests)
    answer = asyncio.run(_exchange(harness.base_url, payload))
    accepted = len(re.findall(rb"HTTP/1\.1 200 ", answer))
    seen = harness.upstream.requests[before:]
    for request in seen:
        assert request.method in ("GET", "HEAD"), request.method
        assert ALLOWED_PATH.fullmatch(request.path), request.path
        assert request.body == b"", "a request body reached the upstream"
        assert request.headers.get("x-vigie-client") == "app"
        assert "transfer-encoding" not in request.headers
        assert request.headers.get("content-length", "0") == "0"
        assert "x-http-method-override" not in request.headers
    # Every request that reached the upstream was one Vigie accepted and audited (the
    # audit line is written before the answer leaves; a connection the client broke
    # may drop the answer, never the line).
    assert _wait_audited(harness, seen), "a request reached the upstream unaudited"
    assert accepted <= len(seen), (accepted, len(seen))


def _wait_audited(harness: Harness, seen: list[Seen]) -> bool:
    wanted = {request.headers.get("x-request-id") for request in seen}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        allowed = {line["request_id"] for line in harness.audit_lines()
                   if line.get("decision") == "allowed"}
        if wanted <= allowed:
            return True
        time.sleep(0.02)
    return False
