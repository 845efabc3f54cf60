"""Every upstream client selectable by `upstream_client` honours the same forwarding seam."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response

from support.harness import Harness

POLICY = """\
client: app
routes:
  - name: items
    methods: [GET, POST]
    path: /items/{id}
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    response:
      records: "$"
      fields: {id: keep, nir: {mask: last2}}
"""


@pytest.fixture(params=["native", "aiohttp", "httpx"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path, {"app.yaml": POLICY},
                 config=f"upstream_client: {request.param}\n") as h:
        assert h.settings.upstream_client == request.param
        yield h


def test_request_and_response_cross_unchanged_but_for_hops(harness: Harness) -> None:
    async def handler(request: Request) -> Response:
        body = await request.body()
        return Response(body[::-1], status_code=201, media_type="application/octet-stream",
                        headers={"x-upstream": "yes", "connection": "x-hop", "x-hop": "1"})
    harness.upstream.handler = handler
    token = harness.token("app")
    response = harness.request("POST", "/items/7?v=1", token, content=b"abc" * 1000,
                               headers={"x-custom": "kept", "te": "trailers"})
    assert response.status_code == 201
    assert response.content == (b"abc" * 1000)[::-1]
    assert response.headers["x-upstream"] == "yes"
    assert "x-hop" not in response.headers
    seen = harness.upstream.requests[-1]
    assert (seen.method, seen.path, seen.query) == ("POST", "/items/7", "v=1")
    assert seen.headers["x-custom"] == "kept" and "te" not in seen.headers
    assert "authorization" not in seen.headers


def test_masked_json_and_gzip_through_each_client(harness: Harness) -> None:
    import gzip

    import orjson

    payload = gzip.compress(orjson.dumps({"id": "42", "nir": "185057800608491",
                                          "notes": "NIR 1 85 05 78 006 084 91"}))
    harness.upstream.reply(body=payload, headers={"content-encoding": "gzip"})
    response = harness.get("/patients/42", harness.token("app"))
    assert response.status_code == 200
    assert response.json() == {"id": "42", "nir": "*************91"}


def test_a_slow_upstream_is_504_for_each_client(harness: Harness) -> None:
    harness.upstream.reply(body=b"late", content_type="text/plain", delay=3.0)
    response = harness.get("/items/1", harness.token("app"))
    assert response.status_code == 504
    assert "late" not in response.text
