"""Header hygiene end to end: what the upstream may believe about who is asking.

The upstream sees the raw header list (duplicates included), so a client-sent
`X-Vigie-Client` cannot hide behind the proxy's own value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.responses import Response

from authz.conftest import NO_GUARD
from support.harness import Harness, Keys

ROUTES = """\
routes:
  - name: read-patient
    methods: [GET, DELETE]
    path: /patients/{id}
""" + NO_GUARD

SPOOFED = {
    "X-Vigie-Client": "billing", "X-Vigie-User": "psn-root", "X-Vigie-Admin": "1",
    "X-Forwarded-For": "10.0.0.1", "X-Forwarded-Host": "admin.internal",
    "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/admin", "X-Forwarded-User": "root",
    "Forwarded": "for=10.0.0.1;host=admin.internal", "X-Real-IP": "10.0.0.1",
    "X-User": "root", "X-User-Id": "1", "X-Userinfo": "e30", "X-Username": "admin",
    "X-Client": "billing", "X-Client-Id": "billing", "X-Client-Cert": "MIIB",
    "X-Client-IP": "10.0.0.1",
}
# Headers some back ends honour to change the method or the path after authorization.
OVERRIDES = {
    "X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "DELETE",
    "X-Method-Override": "DELETE", "X-Original-URL": "/admin/export",
    "X-Rewrite-URL": "/admin/export",
}
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


class RawHeaders:
    """The upstream's view: every header line, in order, duplicates kept."""

    def __init__(self) -> None:
        self.seen: list[list[tuple[str, str]]] = []

    async def __call__(self, request: Request) -> Response:
        self.seen.append([(k.decode("latin-1"), v.decode("latin-1"))
                          for k, v in request.scope["headers"]])
        return Response(b"{}", media_type="application/json")

    def last(self, name: str) -> list[str]:
        return [value for key, value in self.seen[-1] if key == name]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, hospital_keys: Keys) -> Iterator[Harness]:
    policies = {"gp.yaml": "client: gp-frontdesk\n" + ROUTES,
                "billing.yaml": "client: billing\n" + ROUTES}
    with Harness(tmp_path_factory.mktemp("headers"), policies, keys=hospital_keys) as harness:
        yield harness


@pytest.fixture
def raw(h: Harness) -> RawHeaders:
    recorder = RawHeaders()
    h.upstream.handler = recorder
    return recorder


@pytest.mark.parametrize("casing", [str, str.lower, str.upper])
def test_identity_and_hop_headers_from_the_client_are_removed(h: Harness, raw: RawHeaders,
                                                              casing: object) -> None:
    token = h.token("gp-frontdesk", sub="dr-house")
    spoofed = {casing(name): value for name, value in SPOOFED.items()}  # type: ignore[operator]
    assert h.get("/patients/42", token, headers=spoofed).status_code == 200
    names = [name for name, _ in raw.seen[-1]]
    for name in SPOOFED:
        if name.lower() not in ("x-vigie-client", "x-vigie-user"):
            assert name.lower() not in names, name
    assert raw.last("x-vigie-client") == ["gp-frontdesk"]
    assert len(raw.last("x-vigie-user")) == 1
    assert raw.last("x-vigie-user") != ["psn-root"]
    assert "x-vigie-admin" not in names
    assert "authorization" not in names
    assert all(token not in value for _, value in raw.seen[-1])


def test_method_and_url_override_headers_are_removed(h: Harness, raw: RawHeaders) -> None:
    token = h.token("gp-frontdesk")
    assert h.get("/patients/42", token, headers=OVERRIDES).status_code == 200
    names = [name for name, _ in raw.seen[-1]]
    for name in OVERRIDES:
        assert name.lower() not in names, name


def test_the_user_is_pseudonymized_stably_and_per_client(h: Harness, raw: RawHeaders) -> None:
    def user(client: str, sub: str) -> str:
        assert h.get("/patients/42", h.token(client, sub=sub)).status_code == 200
        [value] = raw.last("x-vigie-user")
        assert raw.last("x-vigie-client") == [client]
        return value

    first = user("gp-frontdesk", "dr-house")
    assert re.fullmatch(r"psn-[a-z2-7]{24}", first), first
    assert user("gp-frontdesk", "dr-house") == first  # stable for the same user
    assert user("gp-frontdesk", "dr-cuddy") != first  # another user
    assert user("billing", "dr-house") != first  # the same account name in another client
    for _, value in raw.seen[-1]:
        assert "dr-house" not in value


def test_a_valid_traceparent_is_continued(h: Harness, raw: RawHeaders) -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    incoming = f"00-{trace_id}-{parent}-01"
    response = h.get("/patients/42", h.token("gp-frontdesk"), headers={"traceparent": incoming})
    assert response.status_code == 200
    [outgoing] = raw.last("traceparent")
    match = TRACEPARENT.fullmatch(outgoing)
    assert match is not None, outgoing
    assert match.group(1) == trace_id


@pytest.mark.parametrize("incoming", [
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper-case hex
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # flags missing
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "garbage", "00-" + "a" * 200,
])
def test_an_invalid_traceparent_is_not_passed_on(h: Harness, raw: RawHeaders,
                                                 incoming: str) -> None:
    response = h.get("/patients/42", h.token("gp-frontdesk"), headers={"traceparent": incoming})
    assert response.status_code == 200
    outgoing = raw.last("traceparent")
    assert incoming not in outgoing
    assert len(outgoing) == 1 and TRACEPARENT.fullmatch(outgoing[0]), outgoing
    assert "00000000000000000000000000000000" not in outgoing[0]


def test_two_traceparents_are_not_both_passed_on(h: Harness, raw: RawHeaders) -> None:
    first = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    second = "00-11111111111111111111111111111111-2222222222222222-01"
    token = h.token("gp-frontdesk")
    response = h.client.get("/patients/42", headers=[
        ("Authorization", f"Bearer {token}"), ("traceparent", first), ("traceparent", second)])
    assert response.status_code == 200
    assert len(raw.last("traceparent")) == 1
