"""Containment switches (one replica): deny, read-only, minimal, global; expiry, lifting,
the metric the alert reads, the security event naming who set it, and bad input."""

from __future__ import annotations

import time

import orjson

from support.guard_e2e import metric


def _events(s) -> list[dict]:
    path = s.h.tmp / "events.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() \
        else []


def test_deny_refuses_everything_with_403_until_lifted(stacks) -> None:
    s = stacks()
    answer = s.api("PUT", f"/incident/containments/{s.client}",
                   {"mode": "deny", "reason": "INC-1 extraction", "for": "2h"})
    assert answer.status_code == 201, answer.text
    refused = s.get("/patients/1")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "access suspended by the security team"
    assert s.h.audit_lines()[-1]["reason"] == "contained"
    assert not s.h.upstream.requests
    assert metric(s.h, "vigie_containment_active", client=s.client, mode="deny") == 1
    event = _events(s)[-1]
    assert (event["event"], event["action"], event["signal"], event["client"]) == (
        "containment", "contain", "deny", s.client)
    assert event["by"].startswith("soc-alice (admin token ") and event["reason"] == \
        "INC-1 extraction"
    admin_line = s.h.audit_lines()[0]  # the act itself, in the hash chain
    assert (admin_line["route"], admin_line["method"], admin_line["status"],
            admin_line["client"], admin_line["reason"], admin_line["patients"]) == (
        "incident", "PUT", 201, s.client, "contain:deny", [])
    assert admin_line["principal"] == event["by"]

    assert s.api("DELETE", f"/incident/containments/{s.client}").status_code == 204
    assert s.get("/patients/1").status_code == 200
    assert metric(s.h, "vigie_containment_active", client=s.client, mode="deny") == 0
    assert _events(s)[-1]["action"] == "release"


def test_read_only_lets_safe_methods_through_only(stacks) -> None:
    s = stacks()
    assert s.h.request("POST", "/patients/1", token=s.token(), json={}).status_code == 200
    assert s.api("PUT", f"/incident/containments/{s.client}",
                 {"mode": "read-only", "reason": "INC-2", "for": "30m"}).status_code == 201
    assert s.get("/patients/1").status_code == 200
    written = s.h.request("POST", "/patients/1", token=s.token(), json={"x": 1})
    assert written.status_code == 403 and "read-only" in written.json()["detail"]


def test_minimal_answers_the_least_form_and_the_audit_says_which(stacks) -> None:
    s = stacks()
    before = s.get("/patients/7").json()
    assert before == {"id": "7", "last_name": "Synthetique"}
    assert s.h.audit_lines()[-1]["forms"] == {"id": "clear", "last_name": "clear"}
    assert s.api("PUT", "/incident/containments/*",  # global: every client
                 {"mode": "minimal", "reason": "INC-3", "for": "1h"}).status_code == 201
    after = s.get("/patients/7").json()
    assert after["id"] == "7" and after["last_name"].startswith("psn-")
    line = s.h.audit_lines()[-1]
    assert line["forms"] == {"id": "clear", "last_name": "pseudonym"}
    assert line["reason"] == "contained:minimal" and line["patients"] == ["7"]
    assert metric(s.h, "vigie_containment_active", client="*", mode="minimal") == 1
    written = s.h.request("POST", "/patients/7", token=s.token(), json={})
    assert written.status_code == 403  # no response rules: no least form, refused
    assert "no response rules" in written.json()["detail"]


def test_a_switch_ends_by_itself_at_its_expiry(stacks) -> None:
    s = stacks()
    ends = time.time() + 1.5
    answer = s.api("PUT", f"/incident/containments/{s.client}",
                   {"mode": "deny", "reason": "INC-4", "expires": ends})
    assert answer.status_code == 201, answer.text
    assert s.get("/patients/1").status_code == 403 or time.time() >= ends
    deadline = ends + 10
    while s.get("/patients/1").status_code != 200:
        assert time.time() < deadline, "the switch did not end"
    assert time.time() >= ends - 0.05
    gone = s.api("DELETE", f"/incident/containments/{s.client}")
    assert gone.status_code == 404 and "expired one ended by itself" in gone.json()["detail"]


def test_bad_switches_are_refused_with_a_clear_error(stacks) -> None:
    s = stacks()
    cases = [
        ("gp-nobody", {"mode": "deny", "reason": "x", "for": "1h"}, 404, "no policy names"),
        (s.client, {"mode": "deny", "reason": "x", "expires": "2020-01-01T00:00:00Z"}, 400,
         "would already be over"),
        (s.client, {"mode": "deny", "reason": "x", "expires": "soon"}, 400,
         "not an ISO 8601 time"),
        (s.client, {"mode": "deny", "reason": "x", "for": "forever"}, 400, "not a duration"),
        (s.client, {"mode": "deny", "reason": "x"}, 400, "exactly one of expires"),
        (s.client, {"mode": "closed", "reason": "x", "for": "1h"}, 400, "mode: one of"),
    ]
    for scope, body, status, words in cases:
        answer = s.api("PUT", f"/incident/containments/{scope}", body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["detail"], answer.text
    assert s.api("GET", "/incident/containments").json()["containments"] == []
    assert s.get("/patients/1").status_code == 200


def test_under_minimal_a_nir_never_leaves_not_even_from_a_kept_field(stacks) -> None:
    s = stacks()
    nir_value = "185057800608491"
    s.h.upstream.reply(json={"id": "8", "last_name": nir_value})
    assert s.get("/patients/8").json()["last_name"] == nir_value  # `keep` of a whole NIR
    assert s.api("PUT", f"/incident/containments/{s.client}",
                 {"mode": "minimal", "reason": "INC-8", "for": "1h"}).status_code == 201
    answer = s.get("/patients/8")
    assert answer.status_code == 200 and nir_value not in answer.text
    assert answer.json()["last_name"].startswith("psn-")
