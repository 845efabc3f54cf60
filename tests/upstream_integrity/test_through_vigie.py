"""End to end over real sockets: the smuggled GET body, the late stray, library errors.

Vigie in front of the misbehaving legacy server (support.legacy_patients), for every
`upstream_client`; requests sent byte for byte where a normal client would refuse.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.authz import metric, raw_request
from support.harness import Harness
from support.legacy_patients import NAMES, NIRS, legacy_server, patient_json
from support.upstream_pki import Pki
from upstream_integrity.conftest import CLIENTS, POLICY, keys


@pytest.fixture
def vigie_for(tmp_path: Path) -> Iterator[object]:
    opened: list[Harness] = []

    def start(url: str, config: str) -> Harness:
        folder = tmp_path / str(len(opened))
        folder.mkdir()
        harness = Harness(folder, {"app.yaml": POLICY}, config=config, keys=keys(),
                          upstream_url=url)
        opened.append(harness.__enter__())
        return harness

    yield start
    for harness in opened:
        harness.__exit__(None, None, None)


SMUGGLED = (b"GET /admin/patients/42 HTTP/1.1\r\nHost: legacy\r\n"
            b"X-Vigie-Client: billing\r\nX-Vigie-User: admin\r\n\r\n")


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_smuggled_get_body_never_reaches_the_upstream(kind: str, vigie_for: object) -> None:
    with legacy_server() as server:  # reads a GET's head only: its body would be a request
        h = vigie_for(server.url, f"upstream_client: {kind}\n")  # type: ignore[operator]
        token = h.token("app").encode()
        head = (b"GET /patients/1 HTTP/1.1\r\nHost: vigie\r\nConnection: close\r\n"
                b"Authorization: Bearer " + token + b"\r\n")
        for framing in (b"Content-Length: %d\r\n\r\n%b" % (len(SMUGGLED), SMUGGLED),
                        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n0\r\n\r\n"
                        % (len(SMUGGLED), SMUGGLED)):
            answer = raw_request(h, head + framing)
            assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
            assert b"Fanny" not in answer
        assert server.seen == []  # not the authorized GET, and never the smuggled one
        # an empty body is no body: forwarded, and the caller gets its own patient
        answer = raw_request(h, head + b"Content-Length: 0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(patient_json("1"))
        for pid in ("7", "8", "9"):
            response = h.get(f"/patients/{pid}", h.token("app"))
            assert response.content == patient_json(pid)
    assert server.seen == [b"GET /patients/%b HTTP/1.1" % p.encode() for p in "1789"]


def test_declared_request_bodies_are_bounded_typed_and_reframed(vigie_for: object) -> None:
    with legacy_server() as server:
        h = vigie_for(server.url, "")  # type: ignore[operator]
        token = h.token("app")
        too_big = h.request("POST", "/notes", token, content=b"x" * 1001,
                            headers={"content-type": "application/json"})
        assert too_big.status_code == 413
        wrong_type = h.request("POST", "/notes", token, content=b"{}",
                               headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        assert server.seen == []
        accepted = h.request("POST", "/notes", token, content=iter([b'{"a":', b"1}"]),
                             headers={"content-type": "application/json"})
        assert accepted.status_code == 200
    assert server.seen == [b"POST /notes HTTP/1.1"]


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("kind", CLIENTS)
def test_the_late_stray_response_reaches_no_caller_with_correlation(
        kind: str, scheme: str, vigie_for: object, pki: Pki) -> None:
    tls = pki.server_context() if scheme == "https" else None
    with legacy_server("second_late", tls) as server:
        trust = f"upstream_ca_file: {pki.ca}\n" if tls else ""
        h = vigie_for(server.url, f"upstream_client: {kind}\n"  # type: ignore[operator]
                      "upstream_echoes_request_id: true\n" + trust)
        token = h.token("app")
        table = []
        for pid in ("1", "7", "8", "9"):
            response = h.get(f"/patients/{pid}", token, headers={"x-request-id": f"r-{pid}"})
            table.append(response.status_code)
            assert response.status_code == 502 or response.content == patient_json(pid)
            assert NAMES["2"] not in response.text
        assert table in ([200, 502, 200, 200], [200, 200, 200, 200]), table
        if kind == "native":
            assert table[1] == 502
            assert metric(h, "vigie_upstream_connections_discarded_total",
                          reason="request_id_mismatch") == 1


@pytest.mark.parametrize("kind", CLIENTS)
def test_library_failures_are_502_and_never_logged_with_their_text(
        kind: str, vigie_for: object, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with legacy_server() as server:
        h = vigie_for(server.url, f"upstream_client: {kind}\n")  # type: ignore[operator]
        for case in ("cl_chars", "upgrade", "head_body", "close_mid_body"):
            server.arm(case)
            method = "HEAD" if case == "head_body" else "GET"
            response = h.request(method, "/patients/7", h.token("app"))
            assert response.status_code in (200, 502), (case, response.status_code)
            if response.status_code == 200 and method == "GET":
                assert response.content == patient_json("7")
            after = h.get("/patients/8", h.token("app"))
            assert after.content == patient_json("8"), case
    text = caplog.text
    for secret in (*NAMES.values(), *NIRS.values()):
        assert secret not in text
    assert "Traceback" not in text
