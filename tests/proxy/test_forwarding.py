"""Forwarding over real loopback HTTP: methods, headers, bodies, statuses, errors."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from support.harness import Harness


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_bodies_and_statuses_are_forwarded(harness: Harness, token: str,
                                                   method: str) -> None:
    harness.upstream.reply(status=201, body=b"created", content_type="text/plain",
                           headers={"x-upstream": "yes"})
    body = b"payload-" + method.encode()
    response = harness.request(method, "/items/7?verbose=1", token, content=body,
                               headers={"content-type": "application/octet-stream",
                                        "x-custom": "kept"})
    assert response.status_code == 201
    assert response.text == "created"
    assert response.headers["x-upstream"] == "yes"
    seen = harness.upstream.requests[-1]
    assert seen.method == method
    assert seen.path == "/items/7"
    assert seen.query == "verbose=1"
    assert seen.body == body
    assert seen.headers["x-custom"] == "kept"
    assert seen.headers["x-vigie-client"] == "app"
    assert seen.headers["x-vigie-user"].startswith("psn-")
    assert "authorization" not in seen.headers  # the bearer token never reaches the upstream


def test_head_has_no_body(harness: Harness, token: str) -> None:
    harness.upstream.reply(body=b"", content_type="text/plain")
    response = harness.request("HEAD", "/items/1", token)
    assert response.status_code == 200
    assert response.content == b""
    assert harness.upstream.requests[-1].method == "HEAD"


@pytest.mark.parametrize("status", [200, 204, 301, 400, 404, 409, 500, 503])
def test_upstream_statuses_pass_through(harness: Harness, token: str, status: int) -> None:
    harness.upstream.reply(status=status, body=b"" if status == 204 else b"x",
                           content_type="text/plain", headers={"location": "/items/2"})
    response = harness.request("GET", "/items/1", token, follow_redirects=False)
    assert response.status_code == status


def test_large_request_body_is_streamed_whole(harness: Harness, token: str) -> None:
    harness.upstream.reply(body=b"ok", content_type="text/plain")
    payload = bytes(range(256)) * 8192  # 2 MiB

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(payload), 65536):
            yield payload[i:i + 65536]

    response = harness.client.post("/items", content=chunks(),
                                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert harness.upstream.requests[-1].body == payload


def test_hop_by_hop_headers_are_dropped_both_ways(harness: Harness, token: str) -> None:
    async def handler(request: Request) -> Response:
        return Response(b"ok", media_type="text/plain", headers={
            "connection": "x-upstream-hop", "x-upstream-hop": "secret",
            "keep-alive": "timeout=5", "x-end-to-end": "yes"})
    harness.upstream.handler = handler
    response = harness.get("/items/1", token, headers={
        "Connection": "x-client-hop", "X-Client-Hop": "1", "TE": "trailers",
        "Upgrade": "h2c", "Proxy-Authorization": "Basic Zm9vOmJhcg==", "Keep-Alive": "300",
        "X-End-To-End": "kept"})
    assert response.status_code == 200
    seen = harness.upstream.requests[-1].headers
    for name in ("x-client-hop", "te", "upgrade", "proxy-authorization", "keep-alive"):
        assert name not in seen, name
    assert seen["x-end-to-end"] == "kept"
    assert "x-upstream-hop" not in response.headers
    assert "keep-alive" not in response.headers
    assert response.headers["x-end-to-end"] == "yes"


def test_identity_and_hop_headers_from_clients_are_replaced(harness: Harness,
                                                            token: str) -> None:
    harness.upstream.reply(body=b"ok", content_type="text/plain")
    harness.get("/items/1", token, headers={
        "X-Vigie-Client": "admin", "X-Vigie-User": "root", "X-Forwarded-For": "10.0.0.1",
        "X-Forwarded-Host": "evil", "Forwarded": "for=1.2.3.4", "X-Real-IP": "1.2.3.4",
        "X-User-Id": "42", "X-Client-Cert": "x", "X-Userinfo": "y"})
    seen = harness.upstream.requests[-1].headers
    assert seen["x-vigie-client"] == "app"
    assert seen["x-vigie-user"] != "root"
    for name in ("x-forwarded-for", "x-forwarded-host", "forwarded", "x-real-ip",
                 "x-user-id", "x-client-cert", "x-userinfo"):
        assert name not in seen, name


def test_request_id_is_kept_when_valid_and_replaced_otherwise(harness: Harness,
                                                              token: str) -> None:
    harness.upstream.reply(body=b"ok", content_type="text/plain")
    good = harness.get("/items/1", token, headers={"X-Request-ID": "abc.DEF_123-x"})
    assert good.headers["x-request-id"] == "abc.DEF_123-x"
    assert harness.upstream.requests[-1].headers["x-request-id"] == "abc.DEF_123-x"
    for bad in ("a b", "x" * 65, "<script>", ""):
        response = harness.get("/items/1", token, headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", response.headers["x-request-id"])
        assert response.headers["x-request-id"] != bad
    refused = harness.get("/items/1")  # no token: still has a request id
    assert refused.status_code == 401
    assert refused.headers["x-request-id"]


def test_the_upstream_host_never_changes(harness: Harness, token: str) -> None:
    harness.upstream.reply(body=b"ok", content_type="text/plain")
    response = harness.get("/items/1", token, headers={"Host": "evil.example"})
    assert response.status_code == 200
    assert harness.upstream.requests[-1].headers["host"].startswith("127.0.0.1:")
    # an absolute-form target names another host: refused, nothing forwarded
    count = len(harness.upstream.requests)
    raw = _raw_request(harness, b"GET http://evil.example/items/1 HTTP/1.1\r\nHost: evil.example"
                       b"\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400") or raw.startswith(b"HTTP/1.1 403"), raw[:40]
    assert len(harness.upstream.requests) == count


def _raw_request(harness: Harness, data: bytes) -> bytes:
    async def go() -> bytes:
        host, port = harness.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
        return answer
    return asyncio.run(go())


def test_unreachable_upstream_is_502_without_details(harness: Harness, token: str) -> None:
    harness.stop()
    from support.servers import free_socket
    from vigie.config import load_settings

    sock = free_socket()
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens there any more
    harness.settings = load_settings(harness.tmp / "vigie.yaml", {"VIGIE_UPSTREAM": dead})
    harness._start()
    response = harness.get("/items/1", token)
    assert response.status_code == 502
    assert "127.0.0.1" not in response.text and str(dead) not in response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert 'vigie_upstream_up 0.0' in harness.metrics_text()


def test_upstream_reset_is_502(harness: Harness, token: str) -> None:
    async def handler(request: Request) -> Response:
        raise ConnectionResetError("boom")  # uvicorn drops the connection: no response
    harness.upstream.handler = handler
    response = harness.get("/items/1", token)
    assert response.status_code in (500, 502)  # starlette answers 500 or the socket closes


def test_slow_upstream_is_504_without_details(harness: Harness, token: str) -> None:
    harness.upstream.reply(body=b"late", content_type="text/plain", delay=3.0)
    response = harness.get("/items/1", token)
    assert response.status_code == 504
    assert "late" not in response.text and "127.0.0.1" not in response.text


def test_streamed_binary_response_passes_on_a_route_without_rules(harness: Harness,
                                                                  token: str) -> None:
    blob = bytes(range(256)) * 4096

    async def handler(request: Request) -> Response:
        async def chunks():  # type: ignore[no-untyped-def]
            for i in range(0, len(blob), 32768):
                yield blob[i:i + 32768]
        return StreamingResponse(chunks(), media_type="application/octet-stream")
    harness.upstream.handler = handler
    response = harness.get("/items/1", token)
    assert response.status_code == 200
    assert response.content == blob


def test_metrics_count_requests_by_route_not_path(harness: Harness, token: str) -> None:
    harness.upstream.reply(body=b"ok", content_type="text/plain")
    harness.get("/items/12345", token)
    text = harness.metrics_text()
    assert 'vigie_requests_total{client="app",decision="allowed",route="items",status="200"}' \
        in text
    assert "12345" not in text
    assert httpx.get(f"{harness.admin_url}/healthz").status_code == 200
    assert httpx.get(f"{harness.admin_url}/readyz").status_code == 200


def test_a_generated_request_id_never_spells_a_nir(monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by the soak (docs/reliability.md): this random id holds "602797025350695", a
    # 15-digit run with a valid key, and reached a 429 body, the audit log and the logs.
    from vigie import proxy
    from vigie.minimize import nir

    drawn = iter(["750a602797025350695f150e17e2c0d6", "0123abcdef4567890abcdef0123abcd"])
    monkeypatch.setattr(proxy.secrets, "token_hex", lambda _: next(drawn))
    assert nir.contains("750a602797025350695f150e17e2c0d6")
    assert proxy._request_id([]) == "0123abcdef4567890abcdef0123abcd"
