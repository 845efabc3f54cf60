"""Valid tokens become Identities; header syntax and identity claims are checked strictly."""

from __future__ import annotations

import pytest

from support.tokens import FakeClock, FakeIssuer, JwksServer, KeyPair, bearer, mint, refusal
from vigie.auth import Authenticator, bearer_token
from vigie.errors import AuthError
from vigie.telemetry.metrics import Metrics


async def test_hospital_token_gives_identity(auth: Authenticator, hospital: FakeIssuer) -> None:
    token = hospital.token(client="gp-frontdesk", subject="dr-martin",
                           scope="patient.read  patient.search", practice_id="P1")
    identity = await auth.authenticate(bearer(token))
    assert identity.issuer == hospital.issuer
    assert identity.client == "gp-frontdesk"
    assert identity.subject == "dr-martin"
    assert identity.scopes == {"patient.read", "patient.search"}
    assert identity.claim_text("practice_id") == "P1"


async def test_pro_sante_connect_token_with_its_claims(auth: Authenticator,
                                                       psc: FakeIssuer) -> None:
    token = psc.token(client="dpi-cabinet", subject="f:550e8400-e29b:899700218896",
                      scope="openid scope_all", SubjectNameID="899700218896",
                      SubjectRefPro={"codeCivilite": "DR"}, acr="eidas1")
    identity = await auth.authenticate(bearer(token))
    assert (identity.issuer, identity.client) == (psc.issuer, "dpi-cabinet")
    assert identity.scopes == {"openid", "scope_all"}
    assert identity.claim_text("SubjectNameID") == "899700218896"
    assert identity.claim_text("SubjectRefPro") is None  # not a scalar


async def test_scp_claim_as_list_or_string_merges_with_scope(auth: Authenticator,
                                                             hospital: FakeIssuer) -> None:
    listed = await auth.authenticate(bearer(hospital.token(scope=None, scp=["a", "b"])))
    assert listed.scopes == {"a", "b"}
    both = await auth.authenticate(bearer(hospital.token(scope="a", scp="c d")))
    assert both.scopes == {"a", "c", "d"}
    none = await auth.authenticate(bearer(hospital.token(scope=None)))
    assert none.scopes == frozenset()


@pytest.mark.parametrize("scope", [42, ["ok", 1], {"a": 1}, True])
async def test_scope_of_wrong_type_is_refused(auth: Authenticator, hospital: FakeIssuer,
                                              scope: object) -> None:
    assert await refusal(auth, bearer(hospital.token(scope=None, scp=scope))) == "claim_type"


async def test_audience_list_needs_one_configured_audience(auth: Authenticator,
                                                           hospital: FakeIssuer) -> None:
    token = hospital.token(audience=["account", "patient-api"])
    assert (await auth.authenticate(bearer(token))).client == "gp-frontdesk"


async def test_lowercase_and_extra_spaces_in_scheme_are_accepted(auth: Authenticator,
                                                                 hospital: FakeIssuer) -> None:
    token = hospital.token()
    for header in (f"bearer {token}", f"BEARER {token}", f"Bearer   {token}", f" Bearer {token} "):
        assert (await auth.authenticate(header)).subject == "dr-house"


@pytest.mark.parametrize(("header", "reason"), [
    (None, "missing"),
    ("", "missing"),
    ("   ", "missing"),
    ("Basic ZHI6aG91c2U=", "missing"),
    ("Digest username=x", "missing"),
    ("Bearer", "malformed"),
    ("Bearer ", "malformed"),
    ("Bearer a.b.c d.e.f", "malformed"),
    ("Bearer a.b.c,d.e.f", "malformed"),
    ("Bearer\ta.b.c\nx", "malformed"),
    ("Bearer: a.b.c", "malformed"),
    ("Bearer a.b", "malformed"),
    ("Bearer a.b.c.d.e", "malformed"),
    ("Bearer ...", "malformed"),
    ("Bearer !!!.@@@.###", "malformed"),
    ("Bearer eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "malformed"),
    ("Bearer bm90IGpzb24.e30.c2ln", "malformed"),
    ("Bearer WzFd.e30.c2ln", "malformed"),  # header is a JSON array
    ("Bearer " + "a" * 9000, "too_large"),
])
async def test_bad_authorization_headers(auth: Authenticator, header: str | None,
                                         reason: str) -> None:
    assert await refusal(auth, header) == reason


def test_bearer_token_extracts_exactly_one_token() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    with pytest.raises(AuthError) as caught:
        bearer_token("Bearer abc def")
    assert caught.value.reason == "malformed"


async def test_missing_credentials_challenge_has_no_error_code(auth: Authenticator) -> None:
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(None)
    assert caught.value.headers["WWW-Authenticate"] == 'Bearer realm="vigie"'


@pytest.mark.parametrize(("claim", "value"), [
    ("sub", None), ("sub", ""), ("sub", 42), ("sub", "x" * 257),
    ("azp", None), ("azp", ""), ("azp", ["gp"]),
])
async def test_identity_claims_must_be_non_empty_strings(auth: Authenticator,
                                                         hospital: FakeIssuer, claim: str,
                                                         value: object) -> None:
    token = mint(hospital.key, {**hospital.claims(), claim: value} if value is not None
                 else {k: v for k, v in hospital.claims().items() if k != claim})
    assert await refusal(auth, bearer(token)) == ("claim_missing" if value is None
                                                  else "claim_type")


@pytest.mark.parametrize("client_claim", ["client_id", "sub"])
async def test_client_claim_is_configurable(metrics: Metrics, client_claim: str) -> None:
    key = KeyPair.ec("k", alg="ES384")
    with FakeIssuer("https://idp.test", key, client_claim=client_claim) as issuer:
        auth = Authenticator([issuer.settings()], metrics)
        await auth.start()
        try:
            claims = issuer.claims(subject="svc-billing", client="billing", azp="not-this")
            identity = await auth.authenticate(bearer(mint(key, claims)))
        finally:
            await auth.close()
    assert identity.client == ("svc-billing" if client_claim == "sub" else "billing")


@pytest.mark.parametrize("make", [lambda: KeyPair.rsa("ps", alg="PS256"),
                                  lambda: KeyPair.ed25519("ed"),
                                  lambda: KeyPair.ec("p521", alg="ES512"),
                                  lambda: KeyPair.rsa("rs512", alg="RS512")])
async def test_every_asymmetric_family_verifies(metrics: Metrics, make: object) -> None:
    key = make()  # type: ignore[operator]
    with FakeIssuer("https://idp.test", key) as issuer:
        auth = Authenticator([issuer.settings()], metrics)
        await auth.start()
        try:
            assert (await auth.authenticate(bearer(issuer.token()))).client == "gp-frontdesk"
        finally:
            await auth.close()


async def test_jwk_without_alg_is_matched_by_key_type(metrics: Metrics) -> None:
    key = KeyPair.ec("no-alg", alg="ES256")
    with JwksServer(key.jwk(alg=None, use=None)) as server:
        issuer = FakeIssuer("https://idp.test", key, server=server)
        auth = Authenticator([issuer.settings(algorithms=("ES256", "ES384", "RS256"))],
                             metrics)
        await auth.start()
        try:
            assert (await auth.authenticate(bearer(issuer.token()))).subject == "dr-house"
            # the header may not choose another curve or family for this key
            forged = mint(key, issuer.claims(), headers={"alg": "ES384"}, alg="ES256")
            assert await refusal(auth, bearer(forged)) == "algorithm"
        finally:
            await auth.close()


async def test_token_without_kid_only_matches_a_single_key_set(auth: Authenticator,
                                                               hospital: FakeIssuer) -> None:
    token = hospital.token(headers={"kid": None})
    assert (await auth.authenticate(bearer(token))).subject == "dr-house"


async def test_leeway_applies_to_time_claims(auth: Authenticator, hospital: FakeIssuer,
                                             clock: FakeClock) -> None:
    token = hospital.token(now=clock.now, lifetime=60)
    clock.advance(60 + 29)  # expired 29 s ago, leeway 30 s
    assert (await auth.authenticate(bearer(token))).subject == "dr-house"
    clock.advance(2)
    assert await refusal(auth, bearer(token)) == "expired"


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "application/at+JWT", None])
async def test_access_token_types_are_accepted(auth: Authenticator, hospital: FakeIssuer,
                                               typ: str | None) -> None:
    token = hospital.token(headers={"typ": typ})
    assert (await auth.authenticate(bearer(token))).subject == "dr-house"


def test_duplicate_issuers_are_a_configuration_error(hospital: FakeIssuer,
                                                     metrics: Metrics) -> None:
    from vigie.errors import ConfigError

    with pytest.raises(ConfigError, match="twice"):
        Authenticator([hospital.settings(), hospital.settings()], metrics)
