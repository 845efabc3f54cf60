"""A 401 an admin can act on: RFC 6750 `error` and `error_description`, one INFO log line
with the same words and the request id, and never a token or a claim value in either.

Also the RFC 9068 mapping: with `client_claim: azp`, a token without `azp` names its
client in `client_id`."""

from __future__ import annotations

import logging
import re

import pytest

from support.tokens import FakeIssuer, KeyPair, bearer, mint
from vigie.auth import REASONS, Authenticator
from vigie.errors import AUTH_DESCRIPTIONS, AuthError

SECRET_SUBJECT = "dr-secret-subject-4242"
SECRET_CLIENT = "secret-client-name-77"
_CHALLENGE = re.compile(r'Bearer realm="vigie", error="invalid_token", '
                        r'error_description="([^"\\]*)"')


async def refused(auth: Authenticator, authorization: str | None) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(authorization, request_id="req-123")
    return caught.value


def check_safe(error: AuthError, token: str, *values: str) -> str:
    """The challenge's description, checked to hold no token part and no claim value."""
    match = _CHALLENGE.fullmatch(error.headers["WWW-Authenticate"])
    assert match is not None, error.headers["WWW-Authenticate"]
    description = match.group(1)
    assert description == error.description == error.detail
    for part in [*token.split("."), *values]:
        if part:
            assert part not in description
    return description


@pytest.mark.parametrize(("change", "reason", "expected"), [
    ({"exp": None}, "claim_missing", "the token has no 'exp' claim"),
    ({"subject": None}, "claim_missing", "the token has no 'sub' claim"),
    ({"exp": "tomorrow"}, "claim_type", "the token's 'exp' claim has the wrong type or length"),
    ({"scope": 42}, "claim_type", "the token's 'scope' claim has the wrong type or length"),
    ({"subject": ["x"]}, "claim_type", "the token's 'sub' claim has the wrong type or length"),
    ({"audience": "account"}, "audience",
     "the token's aud holds none of the audiences this service accepts"),
    ({"audience": None}, "audience", "the token has no 'aud' claim"),
    ({"lifetime": -3600}, "expired", "the token has expired"),
    ({"azp": None}, "claim_missing",
     "the token names no client: no 'azp' claim and no RFC 9068 'client_id' claim"),
])
async def test_each_refusal_says_which_check_failed(
        auth: Authenticator, hospital: FakeIssuer, change: dict[str, object], reason: str,
        expected: str) -> None:
    values = {"subject": SECRET_SUBJECT, "client": SECRET_CLIENT, **change}
    token = hospital.token(**values)
    error = await refused(auth, bearer(token))
    assert error.reason == reason
    assert check_safe(error, token, SECRET_SUBJECT, SECRET_CLIENT, "account") == expected


async def test_key_and_issuer_failures_are_told_apart(auth: Authenticator,
                                                      hospital: FakeIssuer) -> None:
    stranger = KeyPair.rsa("never-published")
    token = hospital.token(key=stranger)
    assert (await refused(auth, bearer(token))).description == AUTH_DESCRIPTIONS["unknown_kid"]
    token = mint(hospital.key, hospital.claims(iss="https://idp.evil.example"))
    error = await refused(auth, bearer(token))
    assert error.reason == "issuer"
    check_safe(error, token, "idp.evil.example")


async def test_missing_credentials_have_no_error_code(auth: Authenticator) -> None:
    error = await refused(auth, None)
    assert error.headers["WWW-Authenticate"] == 'Bearer realm="vigie"'
    error = await refused(auth, "Basic dXNlcjpwYXNz")
    assert error.reason == "missing" and "another scheme" in error.description


def test_every_reason_has_a_description() -> None:
    assert set(REASONS) == set(AUTH_DESCRIPTIONS)
    assert "claims" not in REASONS and "unknown_key" not in REASONS  # renamed in 0.2
    for reason in ("missing", "expired", "signature", "issuer", "audience", "algorithm"):
        assert reason in REASONS  # fixed by the contract (section 6)
    for text in AUTH_DESCRIPTIONS.values():
        assert '"' not in text and "\\" not in text  # safe inside a quoted-string


async def test_one_info_log_line_per_refusal_without_values(
        auth: Authenticator, hospital: FakeIssuer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "vigie.auth")
    token = hospital.token(subject=SECRET_SUBJECT, client=SECRET_CLIENT, audience="account")
    await refused(auth, bearer(token))
    lines = [r for r in caplog.records if r.name == "vigie.auth"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    message = lines[0].getMessage()
    assert message.startswith("token refused: reason=audience ")
    assert "error_description=\"the token's aud holds none" in message
    assert "request_id=req-123" in message
    assert lines[0].reason == "audience"  # type: ignore[attr-defined]  # structured fields
    for value in (*token.split("."), SECRET_SUBJECT, SECRET_CLIENT):
        assert value not in caplog.text


async def test_an_rfc9068_token_names_its_client_in_client_id(auth: Authenticator,
                                                              hospital: FakeIssuer) -> None:
    token = hospital.token(client_claim="client_id", client="lab-export")
    assert "azp" not in hospital.claims(client_claim="client_id")
    assert (await auth.authenticate(bearer(token))).client == "lab-export"
    # When both are present azp wins (what OIDC and Keycloak define)
    token = hospital.token(client="gp-frontdesk", client_id="lab-export")
    assert (await auth.authenticate(bearer(token))).client == "gp-frontdesk"
