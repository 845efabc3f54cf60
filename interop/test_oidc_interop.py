"""Vigie against oidc-provider: real tokens, real discovery, real rotation and outages.

Realm `care` is trusted by OIDC discovery, realm `lab` by its jwks_url; every policy
names the `care` issuer, so `lab` clients (one is also called `billing`) get nothing.
Timing bounds come from the configuration (REFRESH_SECONDS, MAX_STALE_SECONDS); the
tests wait for conditions and assert how long they took.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import orjson

from interop_support import (
    MAX_STALE_SECONDS,
    REFRESH_SECONDS,
    Config,
    Idp,
    VigieProcess,
    wait_for,
)
from support.harness import ScriptedUpstream
from support.servers import free_port

PATIENT = "/patients/42"
# A refresh runs at most REFRESH_SECONDS (x1.1 jitter) after the last one, and takes time.
WITHDRAWAL_BOUND = REFRESH_SECONDS * 1.1 + 3.0


def claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    result: dict[str, object] = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    return result


def kid(token: str) -> str:
    header = token.split(".")[0]
    value: str = orjson.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    return value


def gp_token(idp: Idp) -> str:
    return idp.client_token("care", "gp-frontdesk", "gp-frontdesk-secret", "patient.read")


def accepted(vigie: VigieProcess, token: str) -> bool:
    return vigie.get(PATIENT, token).status_code == 200


def refused(vigie: VigieProcess, token: str, reason: str) -> bool:
    """401, and the log line of that very request names `reason`."""
    response = vigie.get(PATIENT, token)
    if response.status_code != 401:
        return False
    request_id = response.headers["x-request-id"]
    line = wait_for(lambda: next((text for text in vigie.log.read_text().splitlines()
                                  if f"request_id={request_id}" in text), None), 5,
                    "the refusal's log line")
    return f"reason={reason} " in line


def test_client_credentials_tokens_get_their_own_policy(
        idp: Idp, vigie: VigieProcess, upstream: tuple[ScriptedUpstream, str]) -> None:
    scripted, _ = upstream
    token = gp_token(idp)
    assert "azp" not in claims(token) and claims(token)["client_id"] == "gp-frontdesk"
    response = vigie.get(PATIENT, token)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": "42", "name": "Jeanne Synthétique"}  # no NIR
    assert scripted.requests[-1].headers["x-vigie-client"] == "gp-frontdesk"
    billing = idp.client_token("care", "billing", "care-billing-secret", "billing.read")
    response = vigie.get(PATIENT, billing)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": "42", "nir": "269054958815780"}


def test_a_user_token_maps_azp_and_sub(idp: Idp, vigie: VigieProcess, config: Config) -> None:
    token = idp.user_token("care", "ward-app", "ward-app-secret", "dr-house", "patient.read")
    assert claims(token)["azp"] == "ward-app" and claims(token)["sub"] == "dr-house"
    response = vigie.get(PATIENT, token)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": "42", "name": "Jeanne Synthétique"}
    audit = [orjson.loads(line) for line in (config.path.parent / "audit.log").read_bytes()
             .splitlines()]
    assert audit[-1]["client"] == "ward-app" and audit[-1]["status"] == 200


def test_the_other_realms_client_of_the_same_name_is_refused(idp: Idp,
                                                             vigie: VigieProcess) -> None:
    token = idp.client_token("lab", "billing", "lab-billing-secret", "billing.read")
    before = vigie.metric("vigie_auth_failures_total", reason="unknown_client")
    response = vigie.get(PATIENT, token)
    assert response.status_code == 403, response.text
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert "no policy for this client of this issuer" in challenge
    assert vigie.metric("vigie_auth_failures_total", reason="unknown_client") == before + 1


def test_keycloaks_default_audience_is_refused_with_a_reason(idp: Idp,
                                                             vigie: VigieProcess) -> None:
    token = idp.client_token("care", "legacy-app", "legacy-app-secret", "patient.read")
    assert claims(token)["aud"] == "account"
    response = vigie.get(PATIENT, token)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert 'error_description="the token\'s aud holds none of the audiences' in challenge
    request_id = response.headers["x-request-id"]
    line = wait_for(lambda: next((text for text in vigie.log.read_text().splitlines()
                                  if request_id in text), None), 5, "the refusal log line")
    assert "reason=audience" in line and "INFO" in line
    assert token not in vigie.log.read_text()


def test_a_rotated_key_is_used_without_restart_and_a_withdrawn_one_is_refused(
        idp: Idp, vigie: VigieProcess) -> None:
    old_token = gp_token(idp)
    assert accepted(vigie, old_token)
    rotated = idp.control("care", "rotate")
    new_token = gp_token(idp)
    assert kid(new_token) == rotated["signing"] != kid(old_token)
    # Accepted at once (an unknown kid refreshes) or at the next refresh: within the bound.
    wait_for(lambda: accepted(vigie, new_token), WITHDRAWAL_BOUND, "the new key")
    assert accepted(vigie, old_token)  # still published: still trusted
    withdrawn_at = time.monotonic()
    idp.control("care", "withdraw", kid=kid(old_token))
    wait_for(lambda: vigie.get(PATIENT, old_token).status_code == 401, WITHDRAWAL_BOUND + 1,
             "the withdrawn key to be refused")
    assert time.monotonic() - withdrawn_at <= WITHDRAWAL_BOUND + 1
    assert refused(vigie, old_token, "unknown_kid")
    assert accepted(vigie, new_token)


def test_an_idp_outage_is_served_within_max_staleness_then_fails_closed(
        idp: Idp, vigie: VigieProcess, config: Config) -> None:
    token = gp_token(idp)
    lab_token = idp.client_token("lab", "billing", "lab-billing-secret", "billing.read")
    care = idp.issuer("care")
    failures = vigie.metric("vigie_jwks_refresh_failures_total", issuer=care)
    idp.control("care", "down")
    try:
        down_at = time.monotonic()
        wait_for(lambda: vigie.metric("vigie_jwks_refresh_failures_total", issuer=care)
                 > failures, REFRESH_SECONDS * 3, "a failed refresh")
        assert accepted(vigie, token)  # the last good set, still within jwks_max_stale_seconds
        assert vigie.ready()
        # A replica restarted during the outage starts ready from the last good copy.
        restarted = VigieProcess(_second(config), "restarted")
        try:
            wait_for(restarted.up, 30, "the restarted vigie to listen")
            wait_for(restarted.ready, 10, "the restarted vigie to be ready from its copy")
            assert accepted(restarted, token)
        finally:
            restarted.stop()
        # Beyond jwks_max_stale_seconds the set is no longer trusted: 401 and not ready.
        wait_for(lambda: vigie.get(PATIENT, token).status_code == 401,
                 MAX_STALE_SECONDS + REFRESH_SECONDS * 2, "the stale key set to be refused")
        assert time.monotonic() - down_at <= MAX_STALE_SECONDS + REFRESH_SECONDS * 2 + 1
        assert refused(vigie, token, "keys_stale")
        assert not vigie.ready()
        assert vigie.metric("vigie_jwks_trusted", issuer=care) == 0
        assert vigie.get(PATIENT, lab_token).status_code == 403  # the other realm is unaffected
    finally:
        idp.control("care", "up")
    wait_for(lambda: accepted(vigie, token), REFRESH_SECONDS * 4, "recovery")
    wait_for(vigie.ready, REFRESH_SECONDS * 2, "readiness after recovery")
    assert vigie.metric("vigie_jwks_trusted", issuer=care) == 1


def _second(config: Config) -> Config:
    """The same configuration (and last good copy) on other ports."""
    second = Config(config.path.parent / "vigie-restarted.yaml", free_port(), free_port())
    text = config.path.read_text()
    text = text.replace(f"port: {config.port}}}", f"port: {second.port}}}")
    text = text.replace(f"port: {config.admin_port}}}", f"port: {second.admin_port}}}")
    text = text.replace("./audit.log", "./audit-restarted.log")
    second.path.write_text(text)
    return second


def test_the_last_good_copy_is_on_disk(vigie: VigieProcess, config: Config) -> None:
    copy = orjson.loads(Path(config.path.parent / "state" / "care-jwks.json").read_bytes())
    assert copy["issuer"].endswith("/realms/care")
    assert '"d"' not in copy["jwks"]  # public keys only
