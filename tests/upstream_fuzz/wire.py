"""Hypothesis strategies for raw upstream responses, and h11 as the reference reader.

`responses()` draws one response as the bytes a (possibly broken) upstream writes:
1xx informational responses first, header casing, obs-folding, Content-Length right,
wrong, duplicated or conflicting, chunked with extensions, trailers and bad sizes,
both framings at once, close-delimited bodies, extra bytes or a whole second
response after it (pipelined leftovers), and whether the upstream closes after.
`reference()` reads those bytes with h11 (tests only) as the client would.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11
from hypothesis import strategies as st

STATUSES = (200, 201, 204, 206, 301, 304, 400, 404, 500, 503)


@dataclass(frozen=True)
class Drawn:
    method: str
    wire: bytes
    closes: bool  # the upstream closes the connection after writing `wire`


@dataclass(frozen=True)
class Outcome:
    kind: str  # "ok" or "error"
    status: int = 0
    body: bytes = b""
    reusable: bool = False  # complete, kept alive, nothing after it


def _case(name: str, draw: st.DrawFn) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)


@st.composite
def responses(draw: st.DrawFn, patient: bytes = b'{"id":"1","name":"Alice"}') -> Drawn:
    method = draw(st.sampled_from(["GET", "GET", "HEAD"]))
    parts: list[bytes] = []
    for interim in draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2)):
        parts.append(b"HTTP/1.1 %d Info\r\n\r\n" % interim)
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    status = draw(st.sampled_from(STATUSES))
    body = patient + draw(st.binary(max_size=24))
    headers: list[bytes] = []
    for name, value in draw(st.lists(st.tuples(
            st.sampled_from(["X-Patient", "Content-Type", "Cache-Control", "X-Trace"]),
            st.text(alphabet="abcdefghij0123456789 ;=/", max_size=12)), max_size=3)):
        headers.append(_case(name, draw).encode() + b": " + value.strip().encode())
    if draw(st.integers(0, 15)) == 0:  # obs-fold: a continuation line
        headers.append(b"X-Folded: a\r\n b")
    framing = draw(st.sampled_from(["length", "length", "length", "chunked", "chunked",
                                    "none", "length_off", "length_twice", "length_conflict",
                                    "both", "chunked_bad"]))
    payload = body
    if framing == "length":
        headers.append(_case("Content-Length", draw).encode() + b": %d" % len(body))
    elif framing == "length_off":
        delta = draw(st.sampled_from([-2, -1, 1, 3]))
        headers.append(b"Content-Length: %d" % max(0, len(body) + delta))
    elif framing == "length_twice":
        headers += [b"Content-Length: %d" % len(body)] * 2
    elif framing == "length_conflict":
        headers += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 1)]
    elif framing in ("chunked", "chunked_bad", "both"):
        headers.append(_case("Transfer-Encoding", draw).encode() + b": chunked")
        if framing == "both":
            headers.append(b"Content-Length: %d" % len(body))
        payload = _chunked(body, draw, bad=framing == "chunked_bad")
    if method == "HEAD" or status in (204, 304):
        # what a correct server sends; a wrong one may still send the body (below)
        payload = payload if draw(st.integers(0, 4)) == 0 else b""
    wire = b"".join(parts) + version + b" %d Status\r\n" % status
    wire += b"".join(h + b"\r\n" for h in headers) + b"\r\n" + payload
    extra = draw(st.sampled_from([b"", b"", b"", b"junk",
                                  b"HTTP/1.1 200 OK\r\ncontent-length: 26\r\n\r\n"
                                  b'{"id":"2","name":"Bruno"}\n']))
    closes = framing == "none" or draw(st.booleans())
    return Drawn(method, wire + extra, closes)


def _chunked(body: bytes, draw: st.DrawFn, *, bad: bool) -> bytes:
    out = b""
    rest = body
    while rest:
        size = draw(st.integers(1, max(1, len(rest))))
        piece, rest = rest[:size], rest[size:]
        extension = b";ext=1" if draw(st.integers(0, 5)) == 0 else b""
        declared = len(piece) + (draw(st.sampled_from([-1, 1])) if bad and not rest else 0)
        out += b"%x%b\r\n%b\r\n" % (max(declared, 0), extension, piece)
    trailer = b"X-Trailer: t\r\n" if draw(st.booleans()) else b""
    return out + b"0\r\n" + trailer + b"\r\n"


def reference(drawn: Drawn) -> Outcome:
    """What h11, as a client, makes of these bytes."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=drawn.method, target="/p", headers=[("Host", "legacy")]))
    conn.send(h11.EndOfMessage())
    status, body = 0, b""
    try:
        conn.receive_data(drawn.wire)
        if drawn.closes:
            conn.receive_data(b"")
        while True:
            event = conn.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # NEED_DATA (never completes), ConnectionClosed, PAUSED
                return Outcome("error")
    except h11.RemoteProtocolError:
        return Outcome("error")
    leftover, _ = conn.trailing_data
    reusable = (not drawn.closes and not leftover and conn.our_state is h11.DONE
                and conn.their_state is h11.DONE)
    return Outcome("ok", status, body, reusable)
