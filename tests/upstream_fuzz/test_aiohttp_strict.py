"""The `aiohttp` upstream client refuses the framings its lenient default parser accepted
(issue 19, fuzzing finding 2): a chunk size off by one and `Transfer-Encoding: gzip,
chunked` (h11 refuses them), an obs-fold continuation line and a bare LF (h11 reads them;
the native client refuses them, and so does aiohttp now: stricter is allowed, the
connection is never reused); and it still reads well-formed responses."""

from __future__ import annotations

import asyncio

import pytest

from upstream_fuzz.test_differential import run
from upstream_fuzz.wire import Drawn, reference

BODY = b'{"id":"1","name":"Alice"}'
HEAD = b"HTTP/1.1 200 OK\r\n"


def chunked(body: bytes, declared: int) -> bytes:
    return b"%x\r\n%b\r\n0\r\n\r\n" % (declared, body)


REFUSED = {
    "obs-fold": HEAD + b"content-length: %d\r\nx-note: a\r\n  folded\r\n\r\n%b" % (
        len(BODY), BODY),
    "chunk size one short": HEAD + b"transfer-encoding: chunked\r\n\r\n"
    + chunked(BODY, len(BODY) - 1),
    "chunk size one long": HEAD + b"transfer-encoding: chunked\r\n\r\n"
    + chunked(BODY, len(BODY) + 1),
    "gzip, chunked": HEAD + b"transfer-encoding: gzip, chunked\r\n\r\n"
    + chunked(BODY, len(BODY)),
    "bare LF": b"HTTP/1.1 200 OK\ncontent-length: %d\n\n%b" % (len(BODY), BODY),
}
H11_READS = {"obs-fold", "bare LF"}
ACCEPTED = {
    "chunked": HEAD + b"Transfer-Encoding: Chunked\r\n\r\n" + chunked(BODY, len(BODY)),
    "content-length": HEAD + b"content-length: %d\r\n\r\n%b" % (len(BODY), BODY),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_aiohttp_refuses_lenient_framings(name: str) -> None:
    drawn = Drawn("GET", REFUSED[name], closes=True)
    if name in H11_READS:
        assert reference(drawn).kind == "ok"
        assert asyncio.run(run("native", drawn))[0].kind == "error"  # as strict as native
    else:
        assert reference(drawn).kind == "error"  # h11's verdict, the reference
    first, second, _ = asyncio.run(run("aiohttp", drawn))
    assert first.kind == "error", first
    assert second.kind == "ok" and second.body == b'{"id":"8","name":"Denis"}'


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_aiohttp_still_reads_well_formed_responses(name: str) -> None:
    drawn = Drawn("GET", ACCEPTED[name], closes=False)
    assert reference(drawn).kind == "ok"
    first, _, _ = asyncio.run(run("aiohttp", drawn))
    assert (first.kind, first.status, first.body) == ("ok", 200, BODY)
