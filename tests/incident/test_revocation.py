"""Revocation at the proxy (one replica, in-process state): by user, client and jti, the
credential-reset cut-off, lifting, and the refusal's shape (401, audit, metric)."""

from __future__ import annotations

import time

import jwt

from support.guard_e2e import metric, subject_of
from support.harness import AUDIENCE, ISSUER


def _without_iat(s) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "azp": s.client, "sub": "no-iat", "nbf": now,
              "exp": now + 300, "scope": "patient.read"}
    return jwt.encode(claims, s.h.keys.private, algorithm="RS256",
                      headers={"kid": s.h.keys.kid})


def test_a_revoked_user_gets_401_invalid_token_audited_and_counted(stacks) -> None:
    s = stacks()
    assert s.get("/patients/42", sub="dr-mallory").status_code == 200
    principal = subject_of(s.h, s.client, "dr-mallory")
    answer = s.api("POST", "/incident/revocations",
                   {"kind": "user", "client": s.client, "principal": principal,
                    "reason": "INC-42 stolen credentials"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["confirmed"] is True and body["store"] == "memory"
    assert body["revocation"]["by"].startswith("soc-alice (admin token ")

    refused = s.get("/patients/43", sub="dr-mallory")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == ('Bearer realm="vigie", error="invalid_token", '
                                                  'error_description="token revoked"')
    assert s.get("/patients/43", sub="dr-watson").status_code == 200  # other users pass
    act = s.h.audit_lines()[1]
    assert (act["route"], act["method"], act["reason"], act["request_id"]) == (
        "incident", "POST", f"revoke:user:{principal}", body["revocation"]["id"])
    line = s.h.audit_lines()[-2]
    assert (line["status"], line["reason"], line["principal"], line["client"]) == (
        401, "revoked", principal, s.client)
    assert line["patients"] == []
    assert metric(s.h, "vigie_auth_failures_total", reason="revoked") == 1
    assert metric(s.h, "vigie_revocations_active", kind="user") == 1
    upstream_paths = [seen.path for seen in s.h.upstream.requests]
    assert "/patients/43" in upstream_paths and upstream_paths.count("/patients/43") == 1


def test_a_credential_reset_cut_off_spares_tokens_issued_after_it(stacks) -> None:
    s = stacks()
    now = int(time.time())
    cut = now - 100
    answer = s.api("POST", "/incident/revocations",
                   {"kind": "client", "client": s.client, "reason": "INC-7 secret reset",
                    "issued_before": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cut))})
    assert answer.status_code == 201, answer.text
    assert s.get("/patients/1", sub="old", iat=cut - 50).status_code == 401
    assert s.get("/patients/1", sub="skewed", iat=cut + 10).status_code == 401  # IdP clock
    assert s.get("/patients/1", sub="fresh", iat=now).status_code == 200
    assert s.h.get("/patients/1", token=_without_iat(s)).status_code == 401  # cannot prove
    # all three refused as revoked (a token without iat is covered: it cannot prove its age)
    assert metric(s.h, "vigie_auth_failures_total", reason="revoked") == 3
    assert metric(s.h, "vigie_revocations_active", kind="client") == 1


def test_a_jti_revocation_refuses_that_token_only_and_lifting_restores_it(stacks) -> None:
    s = stacks()
    assert s.get("/patients/1", jti="tok-1").status_code == 200
    answer = s.api("POST", "/incident/revocations",
                   {"kind": "jti", "jti": "tok-1", "reason": "leaked in a ticket"})
    assert answer.status_code == 201, answer.text
    ident = answer.json()["revocation"]["id"]
    assert s.get("/patients/1", jti="tok-1").status_code == 401
    assert s.get("/patients/1", jti="tok-2").status_code == 200
    assert metric(s.h, "vigie_revocations_active", kind="jti") == 1
    listed = s.api("GET", "/incident/revocations").json()["revocations"]
    assert [r["id"] for r in listed] == [ident]
    assert s.api("DELETE", f"/incident/revocations/{ident}").status_code == 204
    assert s.get("/patients/1", jti="tok-1").status_code == 200
    assert metric(s.h, "vigie_revocations_active", kind="jti") == 0  # lifted: no longer counted
    again = s.api("DELETE", f"/incident/revocations/{ident}")
    assert again.status_code == 404 and "no revocation in force" in again.json()["detail"]


def test_bad_input_is_refused_with_a_clear_error(stacks) -> None:
    s = stacks()
    cases = [
        ({"kind": "client", "client": "gp-nobody", "reason": "x"}, 404, "no policy names"),
        ({"kind": "client", "client": s.client, "reason": "x", "issued_before": "yesterday"},
         400, "not an ISO 8601 time"),
        ({"kind": "client", "client": s.client}, 400, "reason: required"),
        ({"kind": "client", "client": s.client, "reason": "patient 1 85 05 78 006 084 91"},
         400, "must not contain a NIR"),
        ({"kind": "everyone", "client": s.client, "reason": "x"}, 400, "kind: one of"),
        ({"kind": "user", "client": s.client, "reason": "x"}, 400, "principal"),
    ]
    for body, status, words in cases:
        answer = s.api("POST", "/incident/revocations", body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["detail"], answer.text
    assert s.api("GET", "/incident/revocations", token=None).status_code == 401
    assert s.api("POST", "/incident/revocations", {"kind": "client", "client": s.client,
                                                   "reason": "x"}, token="wrong" * 4
                 ).status_code == 401
    assert s.api("GET", "/incident/revocations").json()["revocations"] == []


def test_revocations_survive_a_restart_with_a_state_file(stacks, tmp_path) -> None:
    state = tmp_path / "incident.json"
    s = stacks(config=f"incident: {{state_file: {state}}}\n")
    answer = s.api("POST", "/incident/revocations",
                   {"kind": "user", "client": s.client, "sub": "dr-mallory",
                    "reason": "INC-9"})
    assert answer.status_code == 201 and answer.json()["persistent"] is True, answer.text
    assert "dr-mallory" not in state.read_text()  # the raw sub is never stored
    auth0_style = s.api("POST", "/incident/revocations",
                        {"kind": "user", "client": s.client, "sub": "auth0|5f2a/x=",
                         "reason": "INC-9"})
    assert auth0_style.status_code == 201, auth0_style.text
    s.h.stop()
    s.h._start()
    assert s.get("/patients/1", sub="dr-mallory").status_code == 401
    assert s.get("/patients/1", sub="dr-watson").status_code == 200
