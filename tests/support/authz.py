"""Helpers for the end-to-end authorization tests: refusals proven whole, metrics, raw HTTP.

`refusal(h, send, status, reason=...)` sends one request through the proxy and
asserts everything a refusal must be: the status, an RFC 9457 problem body that
names the request, `WWW-Authenticate: Bearer ... error=...` on 401, the auth
failure counter moved for `reason`, and the upstream received nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from support.harness import Harness


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                total += item.value
    return total


def metric(h: Harness, name: str, **labels: str) -> float:
    return sample(h.metrics_text(), name, **labels)


def auth_failures(h: Harness, reason: str) -> float:
    return metric(h, "vigie_auth_failures_total", reason=reason)


def check_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """The problem+json body of a refusal, checked against the response."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    problem = orjson.loads(response.content)
    assert isinstance(problem, dict)
    assert problem["status"] == status
    assert str(problem["type"]).startswith("https://vigie.dev/problems/")
    assert problem["title"] and problem["detail"]
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


def check_www_authenticate(response: httpx.Response, reason: str) -> None:
    """RFC 6750 §3: a challenge always; an error code only when credentials were sent."""
    challenges = response.headers.get_list("www-authenticate")
    assert len(challenges) == 1, challenges
    challenge = challenges[0]
    assert challenge.startswith("Bearer "), challenge
    assert 'realm="vigie"' in challenge
    if reason == "missing":
        assert "error=" not in challenge, challenge
    else:
        assert 'error="invalid_token"' in challenge, challenge


def refusal(h: Harness, send: Callable[[], httpx.Response], status: int, *,
            reason: str | None = None) -> httpx.Response:
    """Send one request and prove it was refused with `status` and reached nothing.

    `reason`: the `vigie_auth_failures_total` label that must move by exactly one
    (required for 401; `unknown_client` for that 403).
    """
    if status == 401 and reason is None:
        raise ValueError("a 401 names its auth failure reason")
    forwarded = len(h.upstream.requests)
    before = h.metrics_text()
    response = send()
    check_problem(response, status)
    assert len(h.upstream.requests) == forwarded, "the upstream received the refused request"
    after = h.metrics_text()
    if status == 401:
        check_www_authenticate(response, reason or "")
    elif status == 403:  # RFC 6750 §3.1
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    else:
        assert "www-authenticate" not in response.headers
    name = "vigie_auth_failures_total"
    if reason is not None:
        moved = sample(after, name, reason=reason) - sample(before, name, reason=reason)
        assert moved == 1, f"vigie_auth_failures_total{{reason={reason!r}}} moved by {moved}"
    moved_total = sample(after, name) - sample(before, name)
    assert moved_total == (1 if reason is not None else 0), moved_total
    return response


def raw_request(h: Harness, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send bytes as they are (httpx would normalize the target) and read the whole answer."""
    async def go() -> bytes:
        host, port = h.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(data)
        await writer.drain()
        chunks: list[bytes] = []
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), timeout)
                if not chunk:
                    break
                chunks.append(chunk)
                if _complete(b"".join(chunks)):
                    break
        finally:
            writer.close()
        return b"".join(chunks)
    return asyncio.run(go())


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def raw_get(h: Harness, target: bytes, token: str | None, *,
            extra: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """GET `target` byte for byte over a fresh connection: (status, headers, body)."""
    request = b"GET " + target + b" HTTP/1.1\r\nHost: vigie.test\r\nConnection: close\r\n"
    if token is not None:
        request += b"Authorization: Bearer " + token.encode() + b"\r\n"
    answer = raw_request(h, request + extra + b"\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body
