"""One outgoing response rewritten: codings, charsets, streams, and what is refused."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest

from vigie.errors import InspectionError
from vigie.messages import OutgoingResponse
from vigie.rewrite.response import rewrite_response
from vigie.rewrite.urls import Links, UpstreamUrls

UP = "http://10.0.0.5:8080"
LINKS = Links(UpstreamUrls(UP), "https://vigie.example")


async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read(response: OutgoingResponse) -> bytes:
    if isinstance(response.body, bytes):
        return response.body
    return b"".join([piece async for piece in response.body])


async def test_a_compressed_body_is_decoded_rewritten_and_its_validators_dropped() -> None:
    body = gzip.compress(f'{{"next": "{UP}/p?page=2"}}'.encode())
    response = OutgoingResponse(200, [("content-type", "application/json"),
                                      ("content-encoding", "gzip"), ("etag", '"abc"')], body)
    await rewrite_response(response, LINKS, 1 << 20)
    assert await read(response) == b'{"next": "https://vigie.example/p?page=2"}'
    assert [k for k, _ in response.headers] == ["content-type"]


async def test_a_compressed_body_without_upstream_urls_is_sent_as_it_came() -> None:
    body = gzip.compress(b'{"a": 1}')
    response = OutgoingResponse(200, [("content-encoding", "gzip"), ("etag", '"abc"')], body)
    await rewrite_response(response, LINKS, 1 << 20)
    assert response.body is body and len(response.headers) == 2


async def test_utf16_text_is_rewritten_in_its_charset() -> None:
    text = f"voir {UP}/dossier"
    response = OutgoingResponse(200, [("content-type", "text/plain; charset=utf-16")],
                                text.encode("utf-16"))
    await rewrite_response(response, LINKS, 1 << 20)
    assert (await read(response)).decode("utf-16") == "voir https://vigie.example/dossier"


async def test_a_streamed_binary_body_naming_the_upstream_is_refused_wherever_it_is() -> None:
    first = OutgoingResponse(200, [("content-type", "application/pdf")],
                             pieces(b"%PDF-1.7 " + UP.encode(), b"rest"))
    with pytest.raises(InspectionError):  # in the first piece: a clean 502
        await rewrite_response(first, LINKS, 1 << 20)
    url = UP.encode()
    later = OutgoingResponse(200, [("content-type", "application/pdf")],
                             pieces(b"%PDF-1.7 " + b"\x00" * 100, b"x" * 50 + url[:9], url[9:]))
    await rewrite_response(later, LINKS, 1 << 20)
    with pytest.raises(InspectionError):  # cut across two pieces, later: the stream is cut
        await read(later)


async def test_streamed_binary_data_without_upstream_urls_is_untouched() -> None:
    data = [b"\x89PNG\r\n\x1a\n" + bytes(range(256)), bytes(range(256)) * 4]
    response = OutgoingResponse(200, [("content-type", "image/png")], pieces(*data))
    await rewrite_response(response, LINKS, 1 << 20)
    assert await read(response) == b"".join(data)


async def test_a_streamed_text_body_is_rewritten_across_pieces() -> None:
    line = f'{{"u": "{UP}/x"}}\n'.encode()
    data = line * 300
    parts = [data[i:i + 97] for i in range(0, len(data), 97)]
    response = OutgoingResponse(200, [("content-type", "application/x-ndjson")],
                                pieces(*parts))
    await rewrite_response(response, LINKS, 1 << 20)
    assert await read(response) == b'{"u": "https://vigie.example/x"}\n' * 300
