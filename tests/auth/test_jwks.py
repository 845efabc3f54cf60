"""JWKS cache behaviour against a real JWKS server: rotation, outages, rate limits, files."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from support.tokens import (
    FakeClock,
    FakeIssuer,
    JwksServer,
    KeyPair,
    bearer,
    refresh_failures,
    refusal,
)
from vigie.auth import Authenticator, IssuerKeys
from vigie.auth.jwks import max_age
from vigie.telemetry.metrics import Metrics

ISSUER = "https://idp.chu-exemple.fr/realms/rotation"


@pytest.fixture
def rotating(hospital_key: KeyPair) -> Iterator[FakeIssuer]:
    with FakeIssuer(ISSUER, hospital_key, algorithms=("RS256",)) as issuer:
        yield issuer


@pytest.fixture
async def auth_one(rotating: FakeIssuer, metrics: Metrics,
                   clock: FakeClock) -> AsyncIterator[Authenticator]:
    auth = Authenticator([rotating.settings()], metrics, clock=clock)
    await auth.start()
    yield auth
    await auth.close()


async def test_key_rotation_new_kid_fetched_once_old_key_removed(
        auth_one: Authenticator, rotating: FakeIssuer, hospital_key: KeyPair,
        hospital_next_key: KeyPair, clock: FakeClock) -> None:
    server = rotating.server
    assert server.hits == 1  # the start-up fetch
    old_token = rotating.token()
    assert (await auth_one.authenticate(bearer(old_token))).client == "gp-frontdesk"

    server.set_keys(hospital_key, hospital_next_key)  # the IdP publishes its next key
    new_token = rotating.token(key=hospital_next_key)
    assert (await auth_one.authenticate(bearer(new_token))).client == "gp-frontdesk"
    assert server.hits == 2  # one refresh for the unknown kid
    assert (await auth_one.authenticate(bearer(new_token))).subject == "dr-house"
    assert server.hits == 2  # now cached

    server.set_keys(hospital_next_key)  # the old key is withdrawn
    clock.advance(31)
    assert await refusal(auth_one, bearer(rotating.token(headers={"kid": "probe"}))) \
        == "unknown_kid"
    assert server.hits == 3
    assert await refusal(auth_one, bearer(old_token)) == "unknown_kid"
    assert (await auth_one.authenticate(bearer(new_token))).subject == "dr-house"


async def test_unknown_kids_refresh_at_most_once_per_30_seconds(
        auth_one: Authenticator, rotating: FakeIssuer, clock: FakeClock) -> None:
    server = rotating.server
    forged = [bearer(rotating.token(headers={"kid": f"random-{i}"})) for i in range(40)]
    reasons = await asyncio.gather(*(refusal(auth_one, header) for header in forged))
    assert set(reasons) == {"unknown_kid"}
    assert server.hits == 2  # start-up + one shared refresh
    clock.advance(29)
    assert {await refusal(auth_one, header) for header in forged[:10]} == {"unknown_kid"}
    assert server.hits == 2
    clock.advance(2)
    assert await refusal(auth_one, forged[0]) == "unknown_kid"
    assert server.hits == 3
    assert (await auth_one.authenticate(bearer(rotating.token()))).subject == "dr-house"


async def test_concurrent_unknown_kid_requests_share_one_slow_fetch(
        auth_one: Authenticator, rotating: FakeIssuer, hospital_key: KeyPair,
        hospital_next_key: KeyPair) -> None:
    server = rotating.server
    server.set_keys(hospital_key, hospital_next_key)
    server.failure, server.delay = "slow", 0.3
    token = bearer(rotating.token(key=hospital_next_key))
    identities = await asyncio.gather(*(auth_one.authenticate(token) for _ in range(25)))
    assert {identity.subject for identity in identities} == {"dr-house"}
    assert server.hits == 2


@pytest.mark.parametrize("failure", ["error", "garbage", "empty", "reset", "huge", "down"])
async def test_outage_keeps_last_good_keys_and_counts(
        auth_one: Authenticator, rotating: FakeIssuer, metrics: Metrics, clock: FakeClock,
        caplog: pytest.LogCaptureFixture, failure: str) -> None:
    server = rotating.server
    if failure == "down":
        server.stop()
    else:
        server.failure = failure  # type: ignore[assignment]
    keys = auth_one.keys(ISSUER)
    with caplog.at_level(logging.WARNING, logger="vigie.auth.jwks"):
        assert await keys.refresh() is False
        clock.advance(31)  # an unknown kid also tries, and also fails
        assert await refusal(auth_one, bearer(rotating.token(headers={"kid": "x"}))) \
            == "unknown_kid"
    assert refresh_failures(metrics, ISSUER) == 2
    assert len(keys.keys) == 1
    assert (await auth_one.authenticate(bearer(rotating.token()))).subject == "dr-house"
    text = caplog.text
    assert "JWKS refresh failed for issuer " + ISSUER in text
    assert "keeping the last good set (1 keys)" in text
    modulus = rotating.key.jwk()["n"]
    assert modulus[:16] not in text and "login" not in text  # no key material, no body
    if failure == "down":
        server.start()


async def test_start_with_idp_down_then_recovers_in_background(
        metrics: Metrics, clock: FakeClock, hospital_key: KeyPair) -> None:
    server = JwksServer(hospital_key).start()
    server.stop()  # the port now refuses connections
    issuer = FakeIssuer(ISSUER, hospital_key, server=server)
    auth = Authenticator([issuer.settings()], metrics, clock=clock)
    try:
        await auth.start()  # must not raise
        assert len(auth.keys(ISSUER).keys) == 0
        assert await refusal(auth, bearer(issuer.token())) == "no_keys"
        assert not auth.ready()
        assert refresh_failures(metrics, ISSUER) >= 1
        server.start()
        for _ in range(60):  # the first retry comes after about one second
            if len(auth.keys(ISSUER).keys):
                break
            await asyncio.sleep(0.05)
        assert (await auth.authenticate(bearer(issuer.token()))).subject == "dr-house"
    finally:
        await auth.close()
        server.stop()


async def test_start_with_idp_down_recovers_on_demand(
        metrics: Metrics, clock: FakeClock, hospital_key: KeyPair) -> None:
    server = JwksServer(hospital_key).start()
    server.failure = "error"
    issuer = FakeIssuer(ISSUER, hospital_key, server=server)
    auth = Authenticator([issuer.settings()], metrics, clock=clock)
    try:
        await auth.start()
        token = bearer(issuer.token())
        assert await refusal(auth, token) == "no_keys"  # on-demand fetch, still failing
        server.failure = None
        assert await refusal(auth, token) == "no_keys"  # rate limited: no fetch yet
        clock.advance(30)
        assert (await auth.authenticate(token)).subject == "dr-house"
    finally:
        await auth.close()
        server.stop()


async def test_one_issuer_down_does_not_affect_the_other(
        auth: Authenticator, hospital: FakeIssuer, psc: FakeIssuer) -> None:
    # `auth` already holds both key sets; the psc IdP now fails
    psc.server.failure = "error"
    try:
        assert await auth.keys(psc.issuer).refresh() is False
        assert (await auth.authenticate(bearer(hospital.token()))).issuer == hospital.issuer
        assert (await auth.authenticate(bearer(psc.token()))).issuer == psc.issuer
    finally:
        psc.server.failure = None


async def test_background_refresh_follows_cache_control(
        metrics: Metrics, clock: FakeClock, hospital_key: KeyPair,
        hospital_next_key: KeyPair) -> None:
    with JwksServer(hospital_key, cache_control="public, max-age=0") as server:
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        import httpx

        async with httpx.AsyncClient() as client:
            keys = IssuerKeys(issuer.settings(), metrics, client, clock=clock,
                              min_lifetime=0.2)
            await keys.start()
            try:
                server.set_keys(hospital_next_key)
                for _ in range(40):
                    if keys.keys.find(hospital_next_key.kid):
                        break
                    await asyncio.sleep(0.05)
                assert keys.keys.find(hospital_next_key.kid) is not None
                assert keys.keys.find(hospital_key.kid) is None
                assert server.hits >= 2
            finally:
                await keys.close()


@pytest.mark.parametrize(("header", "expected"), [
    # max-age may shorten jwks_refresh_seconds (120 here), never lengthen it: that bounds
    # how long a key the IdP withdrew stays trusted.
    ("max-age=600", 120.0), ("public, max-age=5", 30.0), (None, 120.0),
    ("max-age=999999999", 120.0), ("no-store", 30.0), ("private", 120.0),
])
async def test_lifetime_from_cache_control_is_clamped(
        metrics: Metrics, clock: FakeClock, hospital_key: KeyPair, header: str | None,
        expected: float) -> None:
    with JwksServer(hospital_key, cache_control=header) as server:
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        auth = Authenticator([issuer.settings(jwks_refresh_seconds=120)], metrics, clock=clock)
        await auth.start()
        try:
            assert auth.keys(ISSUER).lifetime == expected
        finally:
            await auth.close()


def test_max_age_parsing() -> None:
    assert max_age("max-age=60") == 60
    assert max_age("Public, Max-Age=\"90\", must-revalidate") == 90
    assert max_age("s-maxage=10") is None
    assert max_age("no-cache") == 0
    assert max_age("max-age=abc") is None
    assert max_age("") is None


async def test_jwks_file_is_read_and_reread(tmp_path: Path, metrics: Metrics, clock: FakeClock,
                                            hospital_key: KeyPair,
                                            hospital_next_key: KeyPair) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [hospital_key.jwk()]}))
    issuer = FakeIssuer(ISSUER, hospital_key, server=JwksServer())
    auth = Authenticator([issuer.settings(jwks_url=None, jwks_file=path)], metrics,
                         clock=clock)
    await auth.start()
    try:
        assert (await auth.authenticate(bearer(issuer.token()))).subject == "dr-house"
        path.write_text(json.dumps({"keys": [hospital_next_key.jwk()]}))
        new = bearer(issuer.token(key=hospital_next_key))
        assert (await auth.authenticate(new)).subject == "dr-house"  # unknown kid: re-read
        path.write_text("{not json")
        assert await auth.keys(ISSUER).refresh() is False
        path.unlink()
        assert await auth.keys(ISSUER).refresh() is False
        assert refresh_failures(metrics, ISSUER) == 2
        assert (await auth.authenticate(new)).subject == "dr-house"
    finally:
        await auth.close()


async def test_close_stops_background_tasks(auth_one: Authenticator) -> None:
    await auth_one.close()
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert not any(name.startswith("jwks-refresh") for name in names)


async def test_remembered_token_is_rechecked_when_its_key_changes(
        auth_one: Authenticator, rotating: FakeIssuer, clock: FakeClock,
        attacker_rsa: KeyPair, hospital_key: KeyPair) -> None:
    token = bearer(rotating.token())
    assert (await auth_one.authenticate(token)).subject == "dr-house"
    # same kid, different key material (re-keyed IdP): the earlier verification no longer counts
    rotating.server.set_keys(attacker_rsa)
    clock.advance(31)
    assert await refusal(auth_one, bearer(rotating.token(headers={"kid": "probe"}))) \
        == "unknown_kid"
    assert await refusal(auth_one, token) == "signature"
    rotating.server.set_keys(hospital_key)
