"""RFC 8725 attacks on the bearer token, end to end through the proxy over real HTTP.

Each forged or misplaced credential is refused with 401, a Bearer challenge, a
problem+json body and the exact `vigie_auth_failures_total{reason}` moving, and
the upstream receives nothing. A valid token is shown to pass first, so the
refusals are caused by the attack and not by the setup.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from authz.conftest import NO_GUARD
from support.authz import check_problem, metric, refusal
from support.harness import AUDIENCE, ISSUER, Harness, Keys
from support.tokens import (
    FakeIssuer,
    JwksServer,
    KeyPair,
    b64url,
    claims,
    hmac_token,
    mint,
    unsigned,
)

POLICY = f"""\
client: gp-frontdesk
issuer: {ISSUER}
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{{id}}
    scopes: [patient.read]
""" + NO_GUARD

PARTNER = "https://idp.partner.example/realms/lab"
PATH = "/patients/42"


@pytest.fixture(scope="module")
def attacker_jwks(attacker_key: KeyPair) -> Iterator[JwksServer]:
    """The attacker's own JWKS endpoint: must never be contacted."""
    with JwksServer(attacker_key) as server:
        yield server


@pytest.fixture(scope="module")
def partner() -> Iterator[FakeIssuer]:
    with FakeIssuer(PARTNER, KeyPair.rsa("partner-1"), algorithms=("RS256",)) as issuer:
        yield issuer


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, hospital_keys: Keys,
      partner: FakeIssuer) -> Iterator[Harness]:
    with Harness(tmp_path_factory.mktemp("attacks"), {"gp.yaml": POLICY}, keys=hospital_keys,
                 issuers=[partner]) as harness:
        harness.upstream.reply(json={"id": "42"})
        yield harness


@pytest.fixture(scope="module")
def hospital(hospital_keys: Keys) -> KeyPair:
    """The default issuer's signing key as a KeyPair, to mint arbitrary tokens."""
    return KeyPair("k1", "RS256", hospital_keys.private)


def good_claims(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "client": "gp-frontdesk",
                              "scope": "patient.read", **overrides}
    return claims(**values)


def test_a_valid_token_passes(h: Harness, hospital: KeyPair) -> None:
    forwarded = len(h.upstream.requests)
    response = h.get(PATH, mint(hospital, good_claims()))
    assert response.status_code == 200, response.text
    assert len(h.upstream.requests) == forwarded + 1


# --- credentials missing, misplaced or malformed ---------------------------------------

@pytest.mark.parametrize("where", [
    {"params": {"access_token": "TOKEN"}},
    {"params": {"token": "TOKEN"}},
    {"params": {"access_token": "TOKEN", "token": "TOKEN", "jwt": "TOKEN"}},
    {"cookies": {"access_token": "TOKEN"}},
    {"cookies": {"token": "TOKEN", "session": "TOKEN"}},
    {"headers": {"X-Access-Token": "TOKEN"}},
    {"headers": {"X-Auth-Token": "Bearer TOKEN"}},
    {"headers": {"Proxy-Authorization": "Bearer TOKEN"}},
    {},
], ids=["query-access_token", "query-token", "query-many", "cookie-access_token",
        "cookie-token", "x-access-token", "x-auth-token", "proxy-authorization", "nothing"])
def test_a_valid_token_anywhere_but_authorization_is_never_accepted(
        h: Harness, hospital: KeyPair, where: dict[str, dict[str, str]]) -> None:
    token = mint(hospital, good_claims())
    kwargs = {kind: {name: value.replace("TOKEN", token) for name, value in items.items()}
              for kind, items in where.items()}
    cookies = kwargs.pop("cookies", None)
    if cookies:  # per-request cookies: send the header as a browser would
        kwargs.setdefault("headers", {})["Cookie"] = "; ".join(
            f"{k}={v}" for k, v in cookies.items())
    refusal(h, lambda: h.client.get(PATH, **kwargs), 401, reason="missing")


@pytest.mark.parametrize(("header", "reason"), [
    ("Basic Z3AtZnJvbnRkZXNrOnNlY3JldA==", "missing"),
    ("Digest username=\"gp\"", "missing"),
    ("Token TOKEN", "missing"),
    ("TOKEN", "missing"),  # a bare token has no scheme: it is read as an unknown scheme
    ("Bearer", "malformed"),
    ("Bearer TOKEN TOKEN", "malformed"),
    ("Bearer TOKEN,Bearer TOKEN", "malformed"),
    ("Bearer TOKEN, Basic Zm9vOmJhcg==", "malformed"),
    ("Bearer \"TOKEN\"", "malformed"),
    ("Bearer not-a-jwt", "malformed"),
    ("Bearer a.b", "malformed"),
    ("Bearer a.b.c.d.e", "malformed"),
], ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None)
def test_other_schemes_and_two_tokens_are_refused(h: Harness, hospital: KeyPair, header: str,
                                                  reason: str) -> None:
    value = header.replace("TOKEN", mint(hospital, good_claims()))
    refusal(h, lambda: h.client.get(PATH, headers={"Authorization": value}), 401, reason=reason)


def test_two_authorization_headers_are_refused(h: Harness, hospital: KeyPair) -> None:
    """Which of two credentials counts is ambiguous: neither does."""
    good = mint(hospital, good_claims())
    other = mint(hospital, good_claims(client="someone-else"))
    headers = [("Authorization", f"Bearer {good}"), ("Authorization", f"Bearer {other}")]
    refusal(h, lambda: h.client.get(PATH, headers=headers), 401, reason="malformed")
    headers = [("Authorization", f"Bearer {good}"), ("Authorization", "Basic Zm9vOmJhcg==")]
    refusal(h, lambda: h.client.get(PATH, headers=headers), 401, reason="malformed")


def test_an_oversized_token_is_refused_before_parsing(h: Harness, hospital: KeyPair) -> None:
    padded = mint(hospital, good_claims(padding="x" * 9000))
    refusal(h, lambda: h.get(PATH, padded), 401, reason="too_large")
    junk = "A" * 20000
    refusal(h, lambda: h.get(PATH, junk), 401, reason="too_large")


# --- signature and algorithm ------------------------------------------------------------

@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", [b"", b"\x00" * 256])
def test_alg_none_in_any_casing_is_refused(h: Harness, alg: str, signature: bytes) -> None:
    token = unsigned(good_claims(), headers={"alg": alg, "kid": "k1"}, signature=signature)
    refusal(h, lambda: h.get(PATH, token), 401, reason="algorithm")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("secret_form", ["pem", "jwk", "n"])
def test_hmac_keyed_with_the_rsa_public_key_is_refused(h: Harness, hospital: KeyPair, alg: str,
                                                       secret_form: str) -> None:
    jwk = hospital.jwk()
    secret = {"pem": hospital.public_pem(),
              "jwk": str(jwk).encode(),
              "n": jwk["n"].encode()}[secret_form]
    token = hmac_token(secret, good_claims(), headers={"kid": "k1"}, alg=alg)
    refusal(h, lambda: h.get(PATH, token), 401, reason="algorithm")


def test_an_algorithm_outside_the_allowlist_is_refused(h: Harness, hospital: KeyPair) -> None:
    token = mint(hospital, good_claims(), alg="PS256")  # a real RSA signature, not allowed
    refusal(h, lambda: h.get(PATH, token), 401, reason="algorithm")


def test_an_attackers_key_under_the_real_kid_is_refused(h: Harness,
                                                        impostor_key: KeyPair) -> None:
    token = mint(impostor_key, good_claims())  # kid "k1", signed by the attacker
    refusal(h, lambda: h.get(PATH, token), 401, reason="signature")


def test_an_invented_kid_is_refused(h: Harness, attacker_key: KeyPair) -> None:
    token = mint(attacker_key, good_claims(), headers={"kid": "../../../etc/passwd"})
    refusal(h, lambda: h.get(PATH, token), 401, reason="unknown_kid")


# A 2048-bit signature is 342 base64url characters: cutting 2, 6 or 86 leaves a canonical
# encoding of fewer bytes (a wrong signature); cutting 8 leaves stray bits (not base64url).
@pytest.mark.parametrize(("cut", "reason"), [(2, "signature"), (6, "signature"),
                                             (86, "signature"), (8, "malformed"),
                                             (342, "signature")])
def test_a_truncated_signature_is_refused(h: Harness, hospital: KeyPair, cut: int,
                                          reason: str) -> None:
    token = mint(hospital, good_claims())
    assert len(token.rsplit(".", 1)[1]) == 342
    refusal(h, lambda: h.get(PATH, token[:-cut]), 401, reason=reason)


def test_a_tampered_payload_is_refused(h: Harness, hospital: KeyPair) -> None:
    header, _, signature = mint(hospital, good_claims(scope="none")).split(".")
    payload = b64url(orjson_bytes(good_claims(scope="patient.read admin")))
    refusal(h, lambda: h.get(PATH, f"{header}.{payload}.{signature}"), 401, reason="signature")


def test_a_key_of_another_trusted_issuer_never_verifies_this_issuer(
        h: Harness, hospital: KeyPair, partner: FakeIssuer) -> None:
    # The partner's real key and kid, on a token that claims to come from the hospital.
    token = mint(partner.key, good_claims())
    refusal(h, lambda: h.get(PATH, token), 401, reason="unknown_kid")
    # And the other way round: the hospital's kid on a token claiming the partner.
    token = mint(hospital, partner.claims(client="gp-frontdesk"))
    refusal(h, lambda: h.get(PATH, token), 401, reason="unknown_kid")


@pytest.mark.parametrize("injected", ["jku", "x5u", "jwk", "x5c", "all"])
@pytest.mark.parametrize("kid", ["attacker-1", "k1"])
def test_key_references_in_the_token_header_are_never_trusted(
        h: Harness, attacker_key: KeyPair, attacker_jwks: JwksServer, injected: str,
        kid: str) -> None:
    fields: dict[str, Any] = {
        "jku": attacker_jwks.url,
        "x5u": attacker_jwks.url.replace("/jwks", "/cert.pem"),
        "jwk": attacker_key.jwk(kid=kid),
        "x5c": [b64url(attacker_key.public_pem())],
    }
    headers = fields if injected == "all" else {injected: fields[injected]}
    token = mint(attacker_key, good_claims(), headers={"kid": kid, **headers})
    hits = attacker_jwks.hits
    reason = "unknown_kid" if kid == "attacker-1" else "signature"
    refusal(h, lambda: h.get(PATH, token), 401, reason=reason)
    assert attacker_jwks.hits == hits == 0


# --- claims -------------------------------------------------------------------------------

def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"exp": _now() - 3600}, "expired"),
    ({"exp": _now() - 31}, "expired"),  # beyond the 30 s leeway
    ({"nbf": _now() + 3600}, "not_yet_valid"),
    ({"iat": _now() + 3600}, "not_yet_valid"),
    ({"iss": "https://idp.evil.example/realms/care"}, "issuer"),
    ({"iss": ISSUER + "/"}, "issuer"),
    ({"iss": None}, "issuer"),
    ({"audience": "another-api"}, "audience"),
    ({"audience": ["another-api", "billing"]}, "audience"),
    ({"audience": None}, "audience"),
    ({"subject": None}, "claim_missing"),
    ({"exp": None}, "claim_missing"),
    ({"exp": "tomorrow"}, "claim_type"),
    ({"azp": None}, "claim_missing"),
    ({"scope": 42}, "claim_type"),
], ids=["expired", "expired-past-leeway", "nbf-future", "iat-future", "wrong-issuer",
        "issuer-trailing-slash", "no-issuer", "wrong-audience", "wrong-audiences",
        "no-audience", "no-sub", "no-exp", "exp-text", "no-client-claim", "scope-number"])
def test_claims_that_do_not_hold_are_refused(h: Harness, hospital: KeyPair,
                                             overrides: dict[str, Any], reason: str) -> None:
    token = mint(hospital, good_claims(**overrides))
    refusal(h, lambda: h.get(PATH, token), 401, reason=reason)


def test_within_the_leeway_is_accepted(h: Harness, hospital: KeyPair) -> None:
    token = mint(hospital, good_claims(exp=_now() - 5, nbf=_now() + 5, iat=_now() + 5))
    assert h.get(PATH, token).status_code == 200


@pytest.mark.parametrize("typ", ["dpop+jwt", "logout+jwt", "JOSE+JSON", "secevent+jwt"])
def test_other_kinds_of_jwt_are_refused(h: Harness, hospital: KeyPair, typ: str) -> None:
    token = mint(hospital, good_claims(), headers={"typ": typ})
    refusal(h, lambda: h.get(PATH, token), 401, reason="token_type")


def test_an_unknown_client_is_forbidden_and_counted(h: Harness, hospital: KeyPair) -> None:
    token = mint(hospital, good_claims(client="data-broker"))
    response = refusal(h, lambda: h.get(PATH, token), 403, reason="unknown_client")
    assert check_problem(response, 403)["type"] == "https://vigie.dev/problems/forbidden"
    text = h.metrics_text()
    assert 'client="data-broker"' not in text  # a client without a policy never becomes a label


def test_refusals_are_counted_by_request_without_a_client(h: Harness) -> None:
    before = metric(h, "vigie_requests_total", client="none", status="401", decision="denied")
    refusal(h, lambda: h.get(PATH), 401, reason="missing")
    after = metric(h, "vigie_requests_total", client="none", status="401", decision="denied")
    assert after == before + 1


def orjson_bytes(value: dict[str, Any]) -> bytes:
    import orjson
    return orjson.dumps(value)
