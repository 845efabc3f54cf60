"""Route authorization end to end: default deny, methods, scopes, query rules.

Every refusal leaves the upstream untouched and never counts as an auth failure
(the token was valid); every allowed request reaches the upstream with exactly
the path and query that were authorized.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from authz.conftest import NO_GUARD
from support.authz import metric, raw_get, refusal
from support.harness import Harness, Keys

POLICY = """\
client: gp-frontdesk
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    scopes: [patient.read]
  - name: search-patients
    methods: [GET]
    path: /patients
    scopes: [patient.search]
    query: {allowed: [last_name, birth_date, page, page_size], max: {page_size: 50, page: 1000}}
  - name: move-appointment
    methods: [PUT, PATCH]
    path: /appointments/{id}
    scopes: [appointment.write, patient.read]
  - name: list-appointments
    methods: [GET]
    path: /appointments
    scopes: [appointment.read]
""" + NO_GUARD

ALL_SCOPES = "patient.read patient.search appointment.write appointment.read"


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, hospital_keys: Keys) -> Iterator[Harness]:
    with Harness(tmp_path_factory.mktemp("routes"), {"gp.yaml": POLICY},
                 keys=hospital_keys) as harness:
        harness.upstream.reply(json={"ok": True})
        yield harness


@pytest.fixture(scope="module")
def token(h: Harness) -> str:
    return h.token("gp-frontdesk", scope=ALL_SCOPES)


def allowed(h: Harness, method: str, target: str, token: str, **kwargs: Any) -> None:
    forwarded = len(h.upstream.requests)
    response = h.request(method, target, token, **kwargs)
    assert response.status_code == 200, (method, target, response.text)
    assert len(h.upstream.requests) == forwarded + 1
    seen = h.upstream.requests[-1]
    path, _, query = target.partition("?")
    assert (seen.method, seen.path, seen.query) == (method, path, query)


# --- default deny -------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/", "/admin", "/patients/42/nir", "/patients/42/", "/patients/", "/patients//",
    "/Patients/42", "/PATIENTS", "/patients/42/appointments", "/appointments/7/cancel",
    "/metrics", "/healthz", "/quarantine", "/.well-known/openid-configuration",
])
def test_a_path_no_route_names_is_forbidden(h: Harness, token: str, target: str) -> None:
    before = metric(h, "vigie_requests_total", client="gp-frontdesk", route="none",
                    status="403", decision="denied")
    refusal(h, lambda: h.get(target, token), 403)
    assert metric(h, "vigie_requests_total", client="gp-frontdesk", route="none",
                  status="403", decision="denied") == before + 1


@pytest.mark.parametrize(("method", "target"), [
    ("POST", "/patients/42"), ("PUT", "/patients/42"), ("DELETE", "/patients/42"),
    ("PATCH", "/patients/42"), ("OPTIONS", "/patients/42"), ("TRACE", "/patients/42"),
    ("POST", "/patients"), ("DELETE", "/appointments/7"), ("GET", "/appointments/7"),
    ("PROPFIND", "/patients/42"), ("CONNECT", "/patients/42"),
])
def test_a_method_the_route_does_not_list_is_forbidden(h: Harness, token: str, method: str,
                                                        target: str) -> None:
    refusal(h, lambda: h.request(method, target, token), 403)


def test_listed_methods_and_head_pass(h: Harness, token: str) -> None:
    allowed(h, "GET", "/patients/42", token)
    allowed(h, "HEAD", "/patients/42", token)  # HEAD is GET without the body
    allowed(h, "PUT", "/appointments/7", token, json={"at": "10:00"})
    allowed(h, "PATCH", "/appointments/7", token, json={"at": "10:00"})
    allowed(h, "GET", "/appointments?anything=goes&x=1", token)  # no query rule: forwarded


# --- scopes ---------------------------------------------------------------------------

@pytest.mark.parametrize("claims", [
    {"scope": ""},
    {"scope": "patient.search"},
    {"scope": "patient.readonly"},
    {"scope": "patient.rea"},
    {"scope": "PATIENT.READ"},
    {"scope": "patient.read.all"},
    {"scope": "patient.read,patient.search"},
    {"scope": "openid", "scp": ["profile", "patient.search"]},
    {"scp": ["patient read"]},
    {"scope": "", "scp": []},
])
def test_a_missing_scope_is_forbidden(h: Harness, claims: dict[str, Any]) -> None:
    token = h.token("gp-frontdesk", **claims)
    refusal(h, lambda: h.get("/patients/42", token), 403)


@pytest.mark.parametrize("claims", [
    {"scope": "patient.read"},
    {"scope": "openid  patient.read\tprofile"},
    {"scope": "", "scp": ["patient.read"]},
    {"scope": "", "scp": "patient.read profile"},
])
def test_scope_string_and_scp_list_are_both_read(h: Harness, claims: dict[str, Any]) -> None:
    allowed(h, "GET", "/patients/42", h.token("gp-frontdesk", **claims))


def test_every_scope_of_a_route_is_required(h: Harness) -> None:
    one = h.token("gp-frontdesk", scope="appointment.write")
    refusal(h, lambda: h.request("PUT", "/appointments/7", one), 403)
    other = h.token("gp-frontdesk", scope="patient.read")
    refusal(h, lambda: h.request("PUT", "/appointments/7", other), 403)
    both = h.token("gp-frontdesk", scope="appointment.write", scp=["patient.read"])
    allowed(h, "PUT", "/appointments/7", both)


def test_the_scope_is_checked_before_the_query(h: Harness) -> None:
    token = h.token("gp-frontdesk", scope="patient.read")
    refusal(h, lambda: h.get("/patients?page_size=100000&evil=1", token), 403)


# --- query rules ------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "page_size=50", "page_size=0", "page_size=050", "last_name=Martin&page=2&page_size=10",
    "birth_date=1985-05-17", "last_name=", "", "last_name=Dupont%20Martin",
])
def test_queries_within_the_rules_pass(h: Harness, token: str, query: str) -> None:
    allowed(h, "GET", f"/patients?{query}" if query else "/patients", token)


@pytest.mark.parametrize("query", [
    # not in `allowed`
    "nir=185057800608491", "last_name=Martin&export=all", "PAGE_SIZE=10", "page_size[]=10",
    "access_token=abc", "page%5Fsizes=1", "=1", "limit=1000000",
    # over `max`, or not a plain integer
    "page_size=51", "page_size=100000", "page_size=99999999999999999999", "page=1001",
    "page_size=-1", "page_size=+5", "page_size=5.0", "page_size=1e3", "page_size=0x10",
    "page_size=ten", "page_size=", "page_size=%205", "page_size=5%00", "page_size=%EF%BC%95",
    "page%5Fsize=1000",  # an encoded name is the same parameter
    # repeated (which one would the upstream read?)
    "page_size=10&page_size=1000", "page=1&page=2", "last_name=a&last_name=b",
    "page_size=1000&page_size=10",
    # not an application/x-www-form-urlencoded query
    "page_size=10;page_size=1000", "last_name=%C3",
])
def test_queries_outside_the_rules_are_bad_requests(h: Harness, token: str, query: str) -> None:
    refusal(h, lambda: h.client.get(f"/patients?{query}",
                                    headers={"Authorization": f"Bearer {token}"}), 400)


def test_too_many_parameters_are_a_bad_request(h: Harness, token: str) -> None:
    query = "&".join(["last_name=a"] * 100)
    refusal(h, lambda: h.get(f"/patients?{query}", token), 400)


@pytest.mark.parametrize("query", [b"last_name=%ZZ", b"last_name=%", b"last_name=%4",
                                   b"last%=x", b"last_name=\xc3\xa9", b"last_name=a b",
                                   b"last_name=%25ZZ%"])
def test_malformed_raw_queries_are_refused(h: Harness, token: str, query: bytes) -> None:
    forwarded = len(h.upstream.requests)
    status, headers, _ = raw_get(h, b"/patients?" + query, token)
    assert status == 400
    assert len(h.upstream.requests) == forwarded


def test_a_fragment_never_reaches_the_upstream(h: Harness, token: str) -> None:
    status, _, _ = raw_get(h, b"/patients?page_size=1#page_size=1000", token)
    assert status == 200
    assert h.upstream.requests[-1].query == "page_size=1"
