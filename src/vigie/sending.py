"""Sending a response over ASGI: the head (Vigie's own framing and request id), a whole
body, and noticing a client that left while a stream was being sent."""

from __future__ import annotations

from vigie.messages import OutgoingResponse
from vigie.types import Receive, Send


async def disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the request body was already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def raw_headers(response: OutgoingResponse, request_id: str,
                 length: int | None) -> list[tuple[bytes, bytes]]:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers
           if k not in ("content-length", "x-request-id", "transfer-encoding")
           and not (response.media_type and k == "content-type")]
    if response.media_type:
        raw.append((b"content-type", response.media_type.encode("latin-1")))
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    raw.append((b"x-request-id", request_id.encode()))
    return raw


async def send_whole(send: Send, response: OutgoingResponse, body: bytes,
                      request_id: str) -> None:
    await send({"type": "http.response.start", "status": response.status,
                "headers": raw_headers(response, request_id, len(body))})
    await send({"type": "http.response.body", "body": body, "more_body": False})
