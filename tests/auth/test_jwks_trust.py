"""Which key sets are trusted: TLS to the IdP, OIDC discovery, maximum staleness, and the
last good copy on disk that makes a restart during an IdP outage ready."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from support.tls import make_ca
from support.tokens import FakeClock, FakeIssuer, JwksServer, KeyPair, bearer, refusal
from vigie.auth import Authenticator
from vigie.telemetry.metrics import Metrics

ISSUER = "https://idp.chu-exemple.fr/realms/trust"
MAX_STALE = 600


def trusted(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("vigie_jwks_trusted", {"issuer": ISSUER})


@pytest.fixture(scope="module")
def tls_ca(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_ca(tmp_path_factory.mktemp("ca"))


async def test_an_internal_ca_is_refused_unless_named_by_ca_file(
        tls_ca, metrics: Metrics, clock: FakeClock, hospital_key: KeyPair,  # type: ignore[no-untyped-def]
        caplog: pytest.LogCaptureFixture) -> None:
    with JwksServer(hospital_key, tls=tls_ca.server_context()) as server:
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        assert server.url.startswith("https://127.0.0.1:")
        caplog.set_level(logging.WARNING, "vigie.auth.jwks")
        auth = Authenticator([issuer.settings()], metrics, clock=clock)
        await auth.start()
        try:
            assert not auth.ready()
            assert await refusal(auth, bearer(issuer.token())) == "no_keys"
        finally:
            await auth.close()
        warning = next(r.getMessage() for r in caplog.records if "refresh failed" in r.getMessage())
        assert "TLS certificate verification failed: the certificate's CA is not trusted" \
            in warning
        assert "ssl" not in warning.lower().replace("tls", "")  # no library text
        auth = Authenticator([issuer.settings(ca_file=tls_ca.ca_file)], metrics, clock=clock)
        await auth.start()
        try:
            assert auth.ready()
            assert (await auth.authenticate(bearer(issuer.token()))).subject == "dr-house"
        finally:
            await auth.close()


async def test_an_expired_idp_certificate_is_named(
        tmp_path: Path, metrics: Metrics, clock: FakeClock, hospital_key: KeyPair,
        caplog: pytest.LogCaptureFixture) -> None:
    ca = make_ca(tmp_path, expired=True)
    caplog.set_level(logging.WARNING, "vigie.auth.jwks")
    with JwksServer(hospital_key, tls=ca.server_context()) as server:
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        auth = Authenticator([issuer.settings(ca_file=ca.ca_file)], metrics, clock=clock)
        await auth.start()
        await auth.close()
    assert any("TLS certificate verification failed: the certificate has expired"
               in r.getMessage() for r in caplog.records)


def discovery(server: JwksServer, issuer: str) -> bytes:
    return orjson.dumps({"issuer": issuer, "jwks_uri": server.url,
                         "token_endpoint": f"{server.origin}/token"})


async def test_oidc_discovery_finds_the_jwks(metrics: Metrics, clock: FakeClock,
                                             hospital_key: KeyPair) -> None:
    with JwksServer(hospital_key) as server:
        server.documents["/.well-known/openid-configuration"] = discovery(server, ISSUER)
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        settings = issuer.settings(
            jwks_url=None, discovery_url=f"{server.origin}/.well-known/openid-configuration")
        auth = Authenticator([settings], metrics, clock=clock)
        await auth.start()
        try:
            assert (await auth.authenticate(bearer(issuer.token()))).subject == "dr-house"
        finally:
            await auth.close()


@pytest.mark.parametrize(("document", "cause"), [
    ({"issuer": "https://evil.example/realms/trust"}, "names another issuer"),
    ({"issuer": ISSUER}, "has no http(s) jwks_uri"),
    ({"issuer": ISSUER, "jwks_uri": "file:///etc/passwd"}, "has no http(s) jwks_uri"),
    ([1, 2], "not a JSON object"),
])
async def test_a_discovery_document_that_cannot_be_used_keeps_no_keys(
        metrics: Metrics, clock: FakeClock, hospital_key: KeyPair, document: object,
        cause: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "vigie.auth.jwks")
    with JwksServer(hospital_key) as server:
        server.documents["/.well-known/openid-configuration"] = orjson.dumps(document)
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        settings = issuer.settings(
            jwks_url=None, discovery_url=f"{server.origin}/.well-known/openid-configuration")
        auth = Authenticator([settings], metrics, clock=clock)
        await auth.start()
        await auth.close()
        assert not auth.ready()
    assert any(cause in r.getMessage() for r in caplog.records), caplog.text


async def test_a_set_that_cannot_be_refreshed_is_trusted_up_to_max_staleness(
        metrics: Metrics, clock: FakeClock, hospital_key: KeyPair) -> None:
    with JwksServer(hospital_key) as server:
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        auth = Authenticator([issuer.settings(jwks_max_stale_seconds=MAX_STALE)], metrics,
                             clock=clock)
        await auth.start()
        try:
            token = bearer(issuer.token(lifetime=MAX_STALE * 2, now=clock()))
            assert (await auth.authenticate(token)).subject == "dr-house"
            server.failure = "error"
            clock.advance(MAX_STALE - 1)
            assert not await auth.keys(ISSUER).refresh()
            assert (await auth.authenticate(token)).subject == "dr-house"  # remembered token
            assert auth.ready() and trusted(metrics) == 1
            clock.advance(2)  # the last good fetch is now older than jwks_max_stale_seconds
            assert await refusal(auth, token) == "keys_stale"
            assert not auth.ready() and trusted(metrics) == 0
            server.failure = None
            assert await refusal(auth, token) == "keys_stale"  # on-demand refresh rate-limited
            clock.advance(30)
            assert (await auth.authenticate(token)).subject == "dr-house"
            assert auth.ready() and trusted(metrics) == 1
        finally:
            await auth.close()


async def test_a_withdrawn_key_is_dropped_within_jwks_refresh_seconds(
        metrics: Metrics, clock: FakeClock, hospital_key: KeyPair) -> None:
    # The IdP says "cache for a day": Vigie still refreshes every jwks_refresh_seconds.
    with JwksServer(hospital_key, cache_control="max-age=86400") as server:
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        auth = Authenticator([issuer.settings(jwks_refresh_seconds=60)], metrics, clock=clock)
        await auth.start()
        try:
            assert auth.keys(ISSUER).lifetime == 60
        finally:
            await auth.close()


async def test_the_last_good_copy_makes_a_restart_during_an_outage_ready(
        tmp_path: Path, clock: FakeClock, hospital_key: KeyPair) -> None:
    copy = tmp_path / "state" / "jwks.json"
    with JwksServer(hospital_key) as server:
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        settings = issuer.settings(jwks_cache_file=copy, jwks_max_stale_seconds=MAX_STALE)
        first = Authenticator([settings], Metrics(process_collectors=False), clock=clock)
        await first.start()
        await first.close()
        saved = orjson.loads(copy.read_bytes())
        assert saved["issuer"] == ISSUER and '"d"' not in saved["jwks"]
        server.failure = "error"  # the IdP is down from now on
        clock.advance(MAX_STALE / 2)
        restarted = Authenticator([settings], Metrics(process_collectors=False), clock=clock)
        await restarted.start()
        try:
            assert restarted.ready()
            token = bearer(issuer.token(now=clock()))
            assert (await restarted.authenticate(token)).subject == "dr-house"
            # The copy's age counts from the original fetch: no restart extends the bound.
            clock.advance(MAX_STALE / 2 + 1)
            assert not restarted.ready()
        finally:
            await restarted.close()
        too_old = Authenticator([settings], Metrics(process_collectors=False), clock=clock)
        await too_old.start()
        try:
            assert not too_old.ready()
            assert await refusal(too_old, bearer(issuer.token(now=clock()))) == "no_keys"
        finally:
            await too_old.close()


async def test_a_copy_made_for_another_issuer_is_ignored(
        tmp_path: Path, metrics: Metrics, clock: FakeClock, hospital_key: KeyPair) -> None:
    copy = tmp_path / "jwks.json"
    copy.write_bytes(orjson.dumps({"issuer": "https://other.example", "fetched_at": clock(),
                                   "jwks": orjson.dumps({"keys": [hospital_key.jwk()]})
                                   .decode()}))
    with JwksServer(hospital_key) as server:
        server.failure = "error"
        issuer = FakeIssuer(ISSUER, hospital_key, server=server)
        auth = Authenticator([issuer.settings(jwks_cache_file=copy)], metrics, clock=clock)
        await auth.start()
        try:
            assert not auth.ready()
        finally:
            await auth.close()
