"""The response shapes that pass between forward → minimize → proxy.

`UpstreamResponse` is what the legacy API answered (hop-by-hop headers already
removed, body not yet read); `OutgoingResponse` is what the client will get.
Header names are lower case; values are str (latin-1 decoded, as HTTP allows).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from vigie.errors import InspectionError

Headers = list[tuple[str, str]]


async def _no_close() -> None:
    return None


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Headers
    body: AsyncIterator[bytes]
    aclose: Callable[[], Awaitable[None]] = _no_close

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self, limit: int) -> bytes:
        """The whole (still encoded) body; InspectionError as soon as it exceeds `limit`."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.body:
            size += len(chunk)
            if size > limit:
                raise InspectionError("upstream response too large to inspect")
            chunks.append(chunk)
        return b"".join(chunks)


@dataclass(slots=True)
class OutgoingResponse:
    """`body` is bytes when buffered, or an async iterator when streamed.

    For a streamed body the Decision's counts are final once the iterator is
    exhausted; the proxy holds the last chunk back until the audit line is written.
    """

    status: int
    headers: Headers
    body: bytes | AsyncIterator[bytes] = b""
    media_type: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
