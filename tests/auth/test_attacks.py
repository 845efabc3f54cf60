"""Forged and abused tokens (RFC 8725 threats and the usual JWT library pitfalls).

Every case asserts the exact AuthError reason, so a refusal for the wrong
reason (e.g. a signature check that never ran) fails the test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest

from support.tokens import (
    FakeClock,
    FakeIssuer,
    JwksServer,
    KeyPair,
    b64url,
    bearer,
    hmac_token,
    mint,
    refusal,
    unsigned,
)
from vigie.auth import Authenticator
from vigie.telemetry.metrics import Metrics


@pytest.fixture
async def lenient(hospital: FakeIssuer, psc: FakeIssuer, metrics: Metrics,
                  clock: FakeClock) -> AsyncIterator[Authenticator]:
    """Both issuers allow RS256 and ES256: the key itself must then stop confusion."""
    both = ("RS256", "ES256")
    auth = Authenticator([hospital.settings(algorithms=both), psc.settings(algorithms=both)],
                         metrics, clock=clock)
    await auth.start()
    yield auth
    await auth.close()


# --- RFC 8725 §2.1 weak signatures / "alg": "none" -------------------------------------

@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", None, 256, "RS256 "])
@pytest.mark.parametrize("signature", [b"", b"\x00" * 32])
async def test_alg_none_and_junk_alg_are_refused(auth: Authenticator, hospital: FakeIssuer,
                                                 alg: object, signature: bytes) -> None:
    token = unsigned(hospital.claims(), headers={"alg": alg, "kid": hospital.key.kid},
                     signature=signature)
    assert await refusal(auth, bearer(token)) == "algorithm"


async def test_header_without_alg_is_refused(auth: Authenticator, hospital: FakeIssuer) -> None:
    token = mint(hospital.key, hospital.claims(), headers={"alg": None}, alg="RS256")
    assert await refusal(auth, bearer(token)) == "algorithm"


# --- RFC 8725 §2.1 / §3.1 algorithm confusion (HS* keyed with the public key) ---------

@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("secret_form", ["pem", "jwk", "der-ish"])
async def test_hmac_with_the_public_key_as_secret_is_refused(
        auth: Authenticator, hospital: FakeIssuer, alg: str, secret_form: str) -> None:
    secret = {"pem": hospital.key.public_pem(),
              "jwk": json.dumps(hospital.key.jwk()).encode(),
              "der-ish": hospital.key.public_pem().strip()}[secret_form]
    token = hmac_token(secret, hospital.claims(), alg=alg, headers={"kid": hospital.key.kid})
    assert await refusal(auth, bearer(token)) == "algorithm"


async def test_algorithm_outside_the_issuer_allowlist(auth: Authenticator,
                                                      hospital: FakeIssuer) -> None:
    # PS256 with the hospital's own RSA key: a valid signature, but only RS256 is allowed
    token = mint(hospital.key, hospital.claims(), alg="PS256")
    assert await refusal(auth, bearer(token)) == "algorithm"
    token = mint(hospital.key, hospital.claims(), alg="RS512")
    assert await refusal(auth, bearer(token)) == "algorithm"


async def test_es256_token_against_an_rsa_key_of_the_same_kid(
        lenient: Authenticator, hospital: FakeIssuer, attacker_ec: KeyPair) -> None:
    assert attacker_ec.kid == hospital.key.kid
    token = mint(attacker_ec, hospital.claims())
    assert await refusal(lenient, bearer(token)) == "algorithm"


async def test_rs256_token_against_an_ec_key_of_the_same_kid(
        lenient: Authenticator, psc: FakeIssuer, attacker_rsa: KeyPair) -> None:
    token = mint(attacker_rsa, psc.claims(), headers={"kid": psc.key.kid})
    assert await refusal(lenient, bearer(token)) == "algorithm"


async def test_ec_curve_must_match_the_algorithm(lenient: Authenticator,
                                                 psc: FakeIssuer) -> None:
    token = mint(psc.key, psc.claims(), headers={"alg": "ES384"}, alg="ES256")
    assert await refusal(lenient, bearer(token)) == "algorithm"


# --- RFC 8725 §3.8 / §3.10 issuer and key-routing confusion (forged kid) --------------

async def test_kid_of_issuer_a_on_a_token_claiming_issuer_b(
        lenient: Authenticator, hospital: FakeIssuer, psc: FakeIssuer) -> None:
    token = mint(hospital.key, psc.claims())  # signed by A, claims B, kid of A
    assert await refusal(lenient, bearer(token)) == "unknown_kid"
    token = mint(psc.key, hospital.claims())
    assert await refusal(lenient, bearer(token)) == "unknown_kid"


async def test_kid_of_issuer_a_on_issuer_b_outside_b_allowlist(
        auth: Authenticator, hospital: FakeIssuer, psc: FakeIssuer) -> None:
    assert await refusal(auth, bearer(mint(hospital.key, psc.claims()))) == "algorithm"


@pytest.mark.parametrize("kid", ["../../x", "../../../../etc/passwd", "' OR '1'='1",
                                 "1; DROP TABLE keys --", "%2e%2e%2f", "\u0000", "*",
                                 "chu-rs256-2025 ", "CHU-RS256-2025", "https://evil.test/k"])
async def test_forged_kids_find_no_key(auth: Authenticator, hospital: FakeIssuer,
                                       kid: str) -> None:
    token = mint(hospital.key, hospital.claims(), headers={"kid": kid})
    assert await refusal(auth, bearer(token)) == "unknown_kid"


@pytest.mark.parametrize("kid", [42, ["chu-rs256-2025"], {"kid": 1}, "k" * 257])
async def test_kid_that_is_not_a_short_string_is_malformed(auth: Authenticator,
                                                           hospital: FakeIssuer,
                                                           kid: object) -> None:
    token = mint(hospital.key, hospital.claims(), headers={"kid": kid})
    assert await refusal(auth, bearer(token)) == "malformed"


# --- RFC 8725 §3.10 / RFC 7515 §4.1.2-6: keys named by the token itself ---------------

@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
@pytest.mark.parametrize("kid_choice", ["attacker", "victim"])
async def test_keys_embedded_or_linked_in_the_header_are_never_used(
        auth: Authenticator, hospital: FakeIssuer, attacker_rsa: KeyPair, header: str,
        kid_choice: str) -> None:
    attacker = KeyPair("attacker-key", "RS256", attacker_rsa.private_key)
    with JwksServer(attacker) as evil:
        value = {
            "jku": evil.url,
            "x5u": evil.url,
            "jwk": attacker.jwk(),
            "x5c": [b64url(attacker.public_pem())],
        }[header]
        kid = attacker.kid if kid_choice == "attacker" else hospital.key.kid
        token = mint(attacker, hospital.claims(), headers={header: value, "kid": kid})
        expected = "unknown_kid" if kid_choice == "attacker" else "signature"
        assert await refusal(auth, bearer(token)) == expected
        assert evil.hits == 0  # the linked key set was never even fetched


# --- RFC 8725 §3.12 and §2.8: time and audience -----------------------------------------

async def test_expired(auth: Authenticator, hospital: FakeIssuer, clock: FakeClock) -> None:
    token = hospital.token(now=clock.now - 3600, lifetime=600)
    assert await refusal(auth, bearer(token)) == "expired"


async def test_not_before_in_the_future(auth: Authenticator, hospital: FakeIssuer,
                                        clock: FakeClock) -> None:
    token = hospital.token(nbf=int(clock.now) + 120)
    assert await refusal(auth, bearer(token)) == "not_yet_valid"


async def test_issued_in_the_future(auth: Authenticator, hospital: FakeIssuer,
                                    clock: FakeClock) -> None:
    token = hospital.token(now=clock.now + 600)
    assert await refusal(auth, bearer(token)) == "not_yet_valid"


@pytest.mark.parametrize(("claim", "value"), [
    ("exp", None), ("exp", "2099-01-01"), ("exp", True), ("nbf", "now"), ("iat", [1]),
])
async def test_time_claims_missing_or_not_numbers(auth: Authenticator, hospital: FakeIssuer,
                                                  claim: str, value: object) -> None:
    claims = hospital.claims()
    claims.pop(claim)
    if value is not None:
        claims[claim] = value
    refused = await refusal(auth, bearer(mint(hospital.key, claims)))
    assert refused == ("claim_missing" if value is None else "claim_type")


@pytest.mark.parametrize("iss", ["https://evil.test/realms/soins",
                                 "https://idp.chu-exemple.fr/realms/soins/",
                                 "HTTPS://IDP.CHU-EXEMPLE.FR/realms/soins", None, 7,
                                 ["https://idp.chu-exemple.fr/realms/soins"]])
async def test_wrong_or_missing_issuer(auth: Authenticator, hospital: FakeIssuer,
                                       iss: object) -> None:
    claims = {**hospital.claims(), "iss": iss}
    if iss is None:
        del claims["iss"]
    assert await refusal(auth, bearer(mint(hospital.key, claims))) == "issuer"


@pytest.mark.parametrize("aud", ["other-api", ["account"], [], "", None, [1], {"a": 1},
                                 "dpi-connect"])
async def test_wrong_or_missing_audience(auth: Authenticator, hospital: FakeIssuer,
                                         aud: object) -> None:
    claims = {**hospital.claims(), "aud": aud}
    if aud is None:
        del claims["aud"]
    assert await refusal(auth, bearer(mint(hospital.key, claims))) == "audience"


async def test_id_token_of_the_same_issuer_is_not_an_access_token(
        auth: Authenticator, hospital: FakeIssuer) -> None:
    id_token = hospital.token(audience="gp-frontdesk", nonce="n-0S6_WzA2Mj")
    assert await refusal(auth, bearer(id_token)) == "audience"


@pytest.mark.parametrize("typ", ["dpop+jwt", "logout+jwt", "secevent+jwt", "JWE", 1])
async def test_other_token_types_are_refused(auth: Authenticator, hospital: FakeIssuer,
                                             typ: object) -> None:
    token = hospital.token(headers={"typ": typ})
    assert await refusal(auth, bearer(token)) == "token_type"


async def test_missing_sub(auth: Authenticator, hospital: FakeIssuer) -> None:
    claims = hospital.claims()
    del claims["sub"]
    assert await refusal(auth, bearer(mint(hospital.key, claims))) == "claim_missing"


# --- signature integrity ----------------------------------------------------------------

async def test_truncated_signature(auth: Authenticator, hospital: FakeIssuer) -> None:
    signing_input, signature = hospital.token().rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "==")
    for keep in (len(raw) - 1, len(raw) // 2, 1):
        token = f"{signing_input}.{b64url(raw[:keep])}"
        assert await refusal(auth, bearer(token)) == "signature"
    for cut in (1, 5, 40):  # cut in the middle of a base64 group
        assert await refusal(auth, bearer(signing_input + "." + signature[:-cut])) in {
            "signature", "malformed"}


async def test_signature_of_another_token(auth: Authenticator, hospital: FakeIssuer) -> None:
    mine = hospital.token(subject="dr-a", scope="patient.read")
    theirs = hospital.token(subject="dr-b", scope="patient.read patient.export")
    spliced = theirs.rsplit(".", 1)[0] + "." + mine.rsplit(".", 1)[1]
    assert await refusal(auth, bearer(spliced)) == "signature"


async def test_payload_changed_after_signing(auth: Authenticator, hospital: FakeIssuer) -> None:
    head, _payload, signature = hospital.token().split(".")
    tampered = {**hospital.claims(), "scope": "patient.read patient.export"}
    payload = b64url(json.dumps(tampered).encode())
    assert await refusal(auth, bearer(f"{head}.{payload}.{signature}")) == "signature"


async def test_empty_signature_with_a_real_algorithm(auth: Authenticator,
                                                     hospital: FakeIssuer) -> None:
    head, payload, _signature = hospital.token().split(".")
    assert await refusal(auth, bearer(f"{head}.{payload}.")) == "signature"


async def test_psychic_ecdsa_signature_of_zeros(auth: Authenticator, psc: FakeIssuer) -> None:
    token = unsigned(psc.claims(), headers={"alg": "ES256", "kid": psc.key.kid},
                     signature=b"\x00" * 64)
    assert await refusal(auth, bearer(token)) == "signature"


async def test_token_signed_by_an_attacker_key_with_the_victim_kid(
        auth: Authenticator, hospital: FakeIssuer, attacker_rsa: KeyPair) -> None:
    token = mint(attacker_rsa, hospital.claims())
    assert await refusal(auth, bearer(token)) == "signature"


# --- parsing attacks -------------------------------------------------------------------

async def test_oversized_token_is_refused_before_parsing(auth: Authenticator,
                                                         hospital: FakeIssuer) -> None:
    token = hospital.token(padding="x" * 9000)  # validly signed, just too big
    assert await refusal(auth, bearer(token)) == "too_large"
    assert await refusal(auth, "Bearer " + "A" * 100_000) == "too_large"


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["urn:evil"], [], "b64"])
async def test_critical_header_extensions_are_refused(auth: Authenticator,
                                                      hospital: FakeIssuer,
                                                      crit: object) -> None:
    token = hospital.token(headers={"crit": crit, "exp": 1, "b64": True, "urn:evil": 1})
    assert await refusal(auth, bearer(token)) == "malformed"


async def test_unencoded_payload_without_crit_is_refused(auth: Authenticator,
                                                         hospital: FakeIssuer) -> None:
    token = hospital.token(headers={"b64": False})
    assert await refusal(auth, bearer(token)) == "malformed"


@pytest.mark.parametrize("token", [
    "eyJhbGciOiJSUzI1NiJ9..c2ln",  # empty payload
    ".e30.c2ln",  # empty header
    "eyJhbGciOiJSUzI1NiJ9.e30.c2ln.e30.c2ln",  # JWE-like five parts
    "eyJhbGciOiJSUzI1NiJ9=.e30.c2ln",  # padding
    "e30.e30.c2ln",  # {} header
    "bnVsbA.e30.c2ln",  # null header
    "eyJhbGciOiJSUzI1NiJ9.bnVsbA.c2ln",  # null payload
    "eyJhbGciOiJSUzI1NiJ9.WyJpc3MiXQ.c2ln",  # array payload
    "eyJhbGciOiJSUzI1NiJ9.e30.c2ln+",  # non-url alphabet
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhIiwiZXhwIjpOYU59.c2ln",  # NaN in JSON
])
async def test_garbage_segments(auth: Authenticator, token: str) -> None:
    assert await refusal(auth, bearer(token)) in {"malformed", "algorithm"}


async def test_json_serialization_instead_of_compact(auth: Authenticator,
                                                     hospital: FakeIssuer) -> None:
    head, payload, signature = hospital.token().split(".")
    body = json.dumps({"payload": payload, "protected": head, "signature": signature})
    assert await refusal(auth, bearer(body.replace(" ", ""))) == "malformed"
