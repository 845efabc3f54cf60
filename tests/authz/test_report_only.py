"""Report-only mode (`mode: report-only` in a policy): decide and record, block nothing that
is well formed — but never forward without a valid token or with a malformed path.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from authz.conftest import NO_GUARD
from support.authz import raw_get, raw_request, refusal
from support.harness import Harness, Keys

POLICY = """\
client: pilot
mode: report-only
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    scopes: [patient.read]
  - name: search-patients
    methods: [GET]
    path: /patients
    scopes: [patient.read]
    query: {allowed: [last_name], max: {}}
""" + NO_GUARD
ENFORCED = """\
client: strict
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
""" + NO_GUARD


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, hospital_keys: Keys) -> Iterator[Harness]:
    with Harness(tmp_path_factory.mktemp("report-only"),
                 {"pilot.yaml": POLICY, "strict.yaml": ENFORCED}, keys=hospital_keys) as harness:
        harness.upstream.reply(json={"id": "42"})
        yield harness


@pytest.mark.parametrize(("method", "target", "forwarded", "would_block"), [
    ("GET", "/admin/export", "/admin/export", "denied:no_route"),
    ("DELETE", "/patients/42", "/patients/42", "denied:no_route"),
    ("GET", "//admin//../patients/7", "/patients/7", None),
    ("GET", "/patients?nir=185057800608491", "/patients", "denied:bad_request"),
])
def test_a_refusable_request_is_forwarded_and_recorded(h: Harness, method: str, target: str,
                                                       forwarded: str,
                                                       would_block: str | None) -> None:
    count = len(h.upstream.requests)
    token = h.token("pilot", scope="patient.read")
    if target.startswith("//"):
        status, _, _ = raw_get(h, target.encode(), token)
    else:
        status = h.request(method, target, token).status_code
    assert status == 200
    assert len(h.upstream.requests) == count + 1
    assert h.upstream.requests[-1].path == forwarded
    line = h.audit_lines()[-1]
    assert line["client"] == "pilot"
    assert line["mode"] == "report-only"
    assert line["status"] == 200
    assert line["would_block"] == would_block
    if would_block:
        assert line["route"] == "unmatched"


def test_a_missing_scope_is_forwarded_and_recorded(h: Harness) -> None:
    count = len(h.upstream.requests)
    assert h.get("/patients/42", h.token("pilot", scope="")).status_code == 200
    assert len(h.upstream.requests) == count + 1
    assert h.audit_lines()[-1]["would_block"] == "denied:scope"


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
def test_without_a_valid_token_it_is_still_401(h: Harness, token: str | None) -> None:
    lines = len(h.audit_lines())
    refusal(h, lambda: h.get("/patients/42", token), 401,
            reason="missing" if token is None else "malformed")
    assert len(h.audit_lines()) == lines  # no verified token: nothing to attribute


def test_an_expired_token_is_still_401(h: Harness) -> None:
    token = h.token("pilot", scope="patient.read", lifetime=-3600)
    refusal(h, lambda: h.get("/patients/42", token), 401, reason="expired")


@pytest.mark.parametrize("target", [b"/patients%2F42", b"/patients/..%2Fadmin",
                                    b"/patients/42;x=1", b"/../etc/passwd",
                                    b"/patients/%C0%AE"])
def test_a_malformed_path_is_still_400(h: Harness, target: bytes) -> None:
    count = len(h.upstream.requests)
    status, headers, _ = raw_get(h, target, h.token("pilot", scope="patient.read"))
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert len(h.upstream.requests) == count


def test_an_absolute_form_target_is_still_400(h: Harness) -> None:
    count = len(h.upstream.requests)
    token = h.token("pilot", scope="patient.read")
    answer = raw_request(h, b"GET http://evil.example/patients/42 HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\nAuthorization: Bearer " + token.encode()
                         + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:60]
    assert len(h.upstream.requests) == count


def test_another_client_in_enforce_mode_is_still_refused(h: Harness) -> None:
    refusal(h, lambda: h.get("/admin/export", h.token("strict")), 403)
