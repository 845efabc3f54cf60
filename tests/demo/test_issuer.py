"""The demo token issuer: JWKS and discovery over HTTP, tokens that verify against them."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from support.legacy import run_app_in_thread
from vigie.demo.issuer import DemoIssuer, rsa_public_jwk

AUDIENCE = "patient-api"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[DemoIssuer, httpx.Client]]:
    issuer = DemoIssuer("http://placeholder")
    with run_app_in_thread(issuer.app()) as base_url, httpx.Client(base_url=base_url) as client:
        issuer.issuer_url = base_url  # what the demo runner does once it knows the port
        yield issuer, client


def _verify(token: str, client: httpx.Client, issuer: str) -> dict[str, Any]:
    jwks = jwt.PyJWKSet.from_dict(client.get("/jwks").json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"],
                                        audience=AUDIENCE, issuer=issuer)
    return claims


def test_jwks_is_public_and_cacheable(served: tuple[DemoIssuer, httpx.Client]) -> None:
    issuer, client = served
    response = client.get("/jwks")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "max-age=300"
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert key["kid"] == issuer.kid
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    modulus = base64.urlsafe_b64decode(key["n"] + "==")
    assert len(modulus) * 8 == 2048


def test_discovery_points_at_the_jwks(served: tuple[DemoIssuer, httpx.Client]) -> None:
    issuer, client = served
    config = client.get("/.well-known/openid-configuration").json()
    assert config["issuer"] == issuer.issuer_url
    assert config["jwks_uri"] == f"{issuer.issuer_url}/jwks"
    assert config["token_endpoint"] == f"{issuer.issuer_url}/token"
    assert client.get(config["jwks_uri"]).json() == issuer.jwks()


def test_minted_token_verifies_against_the_served_jwks(
        served: tuple[DemoIssuer, httpx.Client]) -> None:
    issuer, client = served
    token = issuer.mint("gp-frontdesk", "dr-martin", ["patient.read", "patient.search"],
                        practice_id="P1")
    claims = _verify(token, client, issuer.issuer_url)
    assert claims["azp"] == "gp-frontdesk" and claims["sub"] == "dr-martin"
    assert claims["scope"] == "patient.read patient.search"
    assert claims["practice_id"] == "P1"
    assert claims["aud"] == AUDIENCE
    now = time.time()
    assert claims["nbf"] == claims["iat"] and abs(claims["iat"] - now) < 5
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": issuer.kid, "typ": "JWT"}


def test_mint_claims_override_the_defaults(served: tuple[DemoIssuer, httpx.Client]) -> None:
    issuer, client = served
    expired = issuer.mint("billing", "agent", ["patient.read"], exp=int(time.time()) - 60)
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(expired, client, issuer.issuer_url)
    other_audience = issuer.mint("billing", "agent", [], aud="another-api")
    with pytest.raises(jwt.InvalidAudienceError):
        _verify(other_audience, client, issuer.issuer_url)
    first, second = (issuer.mint("billing", "agent", []) for _ in range(2))
    assert _verify(first, client, issuer.issuer_url)["jti"] != \
        _verify(second, client, issuer.issuer_url)["jti"]


def test_token_endpoint_round_trip(served: tuple[DemoIssuer, httpx.Client]) -> None:
    issuer, client = served
    response = client.post("/token", data={"client_id": "research", "sub": "analyst-7",
                                           "scope": "export.read patient.search"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    claims = _verify(body["access_token"], client, issuer.issuer_url)
    assert claims["azp"] == "research" and claims["sub"] == "analyst-7"
    assert claims["scope"] == "export.read patient.search"
    assert "practice_id" not in claims
    with_practice = client.post("/token", data={"client_id": "gp-frontdesk", "sub": "dr-b",
                                                "scope": "patient.read", "practice_id": "P3"})
    assert _verify(with_practice.json()["access_token"], client,
                   issuer.issuer_url)["practice_id"] == "P3"


@pytest.mark.parametrize("form", [{}, {"client_id": "gp-frontdesk"}, {"sub": "dr-martin"},
                                  {"client_id": "", "sub": "x"}])
def test_token_endpoint_requires_client_and_subject(
        served: tuple[DemoIssuer, httpx.Client], form: dict[str, str]) -> None:
    _, client = served
    response = client.post("/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_token_endpoint_refuses_huge_bodies(served: tuple[DemoIssuer, httpx.Client]) -> None:
    _, client = served
    response = client.post("/token", content=b"sub=" + b"x" * 20000,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


def test_a_token_from_another_issuer_key_does_not_verify(
        served: tuple[DemoIssuer, httpx.Client]) -> None:
    issuer, client = served
    impostor = DemoIssuer(issuer.issuer_url)
    forged = impostor.mint("gp-frontdesk", "dr-martin", ["patient.read"])
    assert impostor.kid != issuer.kid
    with pytest.raises(StopIteration):
        _verify(forged, client, issuer.issuer_url)


def test_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 7638 section 3.1 example key and its published thumbprint.
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
         "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
         "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
         "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    e = "AQAB"

    def as_int(value: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")

    public_key = rsa.RSAPublicNumbers(as_int(e), as_int(n)).public_key()
    jwk = rsa_public_jwk(public_key)
    assert jwk["kid"] == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert jwk["n"] == n and jwk["e"] == e


def test_an_injected_key_is_used() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = DemoIssuer("https://issuer.test", key=key, lifetime_seconds=60)
    token = issuer.mint("billing", "agent", ["patient.read"])
    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"], audience=AUDIENCE,
                        issuer="https://issuer.test")
    assert claims["exp"] - claims["iat"] == 60
    assert issuer.private_key is key
