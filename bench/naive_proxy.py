"""The baseline of `make bench`: a naive starlette + aiohttp proxy that only masks NIRs.

No authentication, no policy, no audit: forward the GET, regex-mask 15-digit
NIR-like runs in the body, return it. Vigie, with every feature on, must serve
at least as many requests per second as this.
"""

from __future__ import annotations

import os
import re

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

UPSTREAM = os.environ["NAIVE_UPSTREAM"]
NIR = re.compile(rb"\b[1-478]\d{4}(?:\d\d|2[AB])\d{8}\b")
session: aiohttp.ClientSession | None = None


async def proxy(request: Request) -> Response:
    global session
    if session is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
    url = UPSTREAM + request.url.path + ("?" + request.url.query if request.url.query else "")
    async with session.get(url) as upstream:
        body = await upstream.read()
        return Response(NIR.sub(b"*" * 15, body), status_code=upstream.status,
                        media_type=upstream.headers.get("content-type"))


app = Starlette(routes=[Route("/{path:path}", proxy)])
