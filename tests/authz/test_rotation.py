"""Key rotation and IdP outages, through the proxy: what a token is worth when the JWKS moves.

The issuer's JWKS server is real and changeable; `Harness.refresh_jwks` runs the
refresh the background task would run, so tests need not wait for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from authz.conftest import NO_GUARD
from support.authz import metric, refusal
from support.harness import Harness, Keys
from support.tokens import FakeIssuer, KeyPair

ROTATING = "https://idp.rotating.example/realms/care"
POLICY = f"""\
client: gp-frontdesk
issuer: {ROTATING}
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{{id}}
""" + NO_GUARD


@pytest.fixture
def idp(rotation_keys: tuple[KeyPair, KeyPair]) -> Iterator[FakeIssuer]:
    with FakeIssuer(ROTATING, rotation_keys[0], algorithms=("RS256",)) as issuer:
        yield issuer


@pytest.fixture
def h(tmp_path_factory: pytest.TempPathFactory, hospital_keys: Keys,
      idp: FakeIssuer) -> Iterator[Harness]:
    with Harness(tmp_path_factory.mktemp("rotation"), {"gp.yaml": POLICY}, keys=hospital_keys,
                 issuers=[idp]) as harness:
        harness.upstream.reply(json={"id": "42"})
        yield harness


def ok(h: Harness, token: str) -> None:
    response = h.get("/patients/42", token)
    assert response.status_code == 200, response.text


def failures(h: Harness) -> float:
    return metric(h, "vigie_jwks_refresh_failures_total", issuer=ROTATING)


def test_a_new_key_is_accepted_after_one_refresh_and_a_removed_key_is_refused(
        h: Harness, idp: FakeIssuer, rotation_keys: tuple[KeyPair, KeyPair]) -> None:
    old, new = rotation_keys
    old_token = idp.token(key=old, subject="dr-old")
    ok(h, old_token)
    idp.server.set_keys(old, new)  # the IdP publishes its next key, then signs with it
    hits = idp.server.hits
    new_token = idp.token(key=new, subject="dr-new")
    ok(h, new_token)
    assert idp.server.hits == hits + 1  # exactly one on-demand refresh
    ok(h, idp.token(key=new, subject="dr-new-2"))
    ok(h, old_token)  # both keys are published: both verify
    assert idp.server.hits == hits + 1

    idp.server.set_keys(new)  # the old key is retired
    assert h.refresh_jwks(ROTATING)
    refusal(h, lambda: h.get("/patients/42", old_token), 401, reason="unknown_kid")
    refusal(h, lambda: h.get("/patients/42", idp.token(key=old, subject="dr-late")), 401,
            reason="unknown_kid")
    ok(h, new_token)


def test_an_unknown_kid_flood_costs_the_idp_one_fetch(h: Harness, idp: FakeIssuer,
                                                      attacker_key: KeyPair) -> None:
    hits = idp.server.hits
    for n in range(20):
        forged = idp.token(key=attacker_key, headers={"kid": f"random-{n}"})
        refusal(h, lambda t=forged: h.get("/patients/42", t), 401, reason="unknown_kid")
    assert idp.server.hits <= hits + 1


def test_an_idp_outage_keeps_the_known_keys_and_readiness(
        h: Harness, idp: FakeIssuer, rotation_keys: tuple[KeyPair, KeyPair]) -> None:
    old, new = rotation_keys
    known = idp.token(key=old, subject="dr-before")
    ok(h, known)
    before = failures(h)
    idp.server.stop()  # the IdP is down: connections are refused
    try:
        assert not h.refresh_jwks(ROTATING)
        assert failures(h) == before + 1
        ok(h, known)  # remembered token
        ok(h, idp.token(key=old, subject="dr-during"))  # a new token, known key
        assert httpx.get(f"{h.admin_url}/readyz", timeout=5).status_code == 200
        assert httpx.get(f"{h.admin_url}/healthz", timeout=5).status_code == 200
        # A key the proxy never saw cannot be fetched: refused, and the failure counted.
        unseen = idp.token(key=new, subject="dr-new")
        refusal(h, lambda: h.get("/patients/42", unseen), 401, reason="unknown_kid")
        assert failures(h) == before + 2
    finally:
        idp.server.start()  # same port
    assert h.refresh_jwks(ROTATING)
    ok(h, known)
    assert failures(h) == before + 2


def test_an_idp_serving_garbage_keeps_the_last_good_set(h: Harness, idp: FakeIssuer,
                                                        rotation_keys: tuple[KeyPair, KeyPair]
                                                        ) -> None:
    old, _ = rotation_keys
    before = failures(h)
    for failure in ("error", "garbage", "empty"):
        idp.server.failure = failure  # type: ignore[assignment]
        assert not h.refresh_jwks(ROTATING)
        ok(h, idp.token(key=old, subject=f"dr-{failure}"))
    idp.server.failure = None
    assert failures(h) == before + 3


def test_the_proxy_starts_while_the_idp_is_down(tmp_path_factory: pytest.TempPathFactory,
                                                hospital_keys: Keys,
                                                rotation_keys: tuple[KeyPair, KeyPair]) -> None:
    old, _ = rotation_keys
    with FakeIssuer(ROTATING, old, algorithms=("RS256",)) as idp:
        idp.server.stop()
        with Harness(tmp_path_factory.mktemp("idp-down"), {"gp.yaml": POLICY},
                     keys=hospital_keys, issuers=[idp]) as h:
            h.upstream.reply(json={"id": "42"})
            # Up, but not ready: a replica without keys would answer 401 to everyone.
            assert httpx.get(f"{h.admin_url}/healthz", timeout=5).status_code == 200
            assert httpx.get(f"{h.admin_url}/readyz", timeout=5).status_code == 503
            assert metric(h, "vigie_jwks_trusted", issuer=ROTATING) == 0
            token = idp.token(key=old)
            refusal(h, lambda: h.get("/patients/42", token), 401, reason="no_keys")
            assert failures(h) >= 1
            idp.server.start()
            assert h.refresh_jwks(ROTATING)
            ok(h, token)
            assert httpx.get(f"{h.admin_url}/readyz", timeout=5).status_code == 200
            assert metric(h, "vigie_jwks_trusted", issuer=ROTATING) == 1
