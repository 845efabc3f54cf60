"""Decoys quarantine at once; operators list and lift quarantines on the admin API;
report-only records every decision and blocks nothing."""

from __future__ import annotations

from support.guard_e2e import admin, events, metric, subject_of, wait_for


def test_decoy_in_the_path_quarantines_at_once(stacks) -> None:
    s = stacks()
    refused = s.get("/patients/990001", sub="dr-mallory")
    assert refused.status_code == 429
    assert refused.headers["vigie-decision"] == "quarantined;signal=decoy"
    assert s.h.upstream.requests == []  # the decoy never reached the upstream
    assert s.get("/patients/42", sub="dr-mallory").status_code == 429
    assert s.get("/patients/42", sub="dr-watson").status_code == 200
    assert metric(s.h, "vigie_enumeration_detections_total", client=s.client,
                  signal="decoy") == 1  # what VigieDecoyTouched reads
    found = [e for e in events(s.h) if e["event"] == "decoy_accessed"]
    assert len(found) == 1
    assert found[0]["principal"] == subject_of(s.h, s.client, "dr-mallory")
    assert found[0]["signal"] == "decoy" and found[0]["action"] == "quarantine"
    raw = (s.h.tmp / "events.jsonl").read_text()
    assert "dr-mallory" not in raw and "990001" not in raw


def test_a_disclosed_decoy_quarantines_after_that_response(stacks) -> None:
    s = stacks()
    first = s.get("/patients?last_name=Delorme", sub="dr-mallory")
    assert first.status_code == 200 and "990002" in first.text  # already built: it leaves
    refused = s.get("/patients/42", sub="dr-mallory")
    assert refused.headers["vigie-decision"] == "quarantined;signal=decoy"
    assert [e["event"] for e in events(s.h)] == ["decoy_disclosed"]


def test_operators_list_and_lift_quarantines(stacks, backend) -> None:
    s = stacks()
    subject = subject_of(s.h, s.client, "dr-mallory")
    assert s.get("/patients/990002", sub="dr-mallory").status_code == 429

    assert admin(s.h, "GET", "/quarantine", token=None).status_code == 401
    assert admin(s.h, "GET", "/quarantine", token="wrong-token-0123456789").status_code == 401

    def listed() -> list[dict[str, object]]:
        return [q for q in admin(s.h, "GET", "/quarantine").json() if q["client"] == s.client]

    assert wait_for(lambda: len(listed()) == 1)
    entry = listed()[0]
    assert entry["subject"] == subject and entry["reason"] == "decoy"
    assert entry["mode"] == "enforce" and str(entry["until"]).endswith("Z")
    assert "dr-mallory" not in admin(s.h, "GET", "/quarantine").text
    assert wait_for(lambda: metric(s.h, "vigie_quarantined_clients") == 1)

    assert admin(s.h, "DELETE", f"/quarantine/{s.client}/{subject}",
                 token=None).status_code == 401
    assert s.get("/patients/42", sub="dr-mallory").status_code == 429  # still quarantined
    assert admin(s.h, "DELETE", f"/quarantine/{s.client}/{subject}").status_code == 204
    assert s.get("/patients/42", sub="dr-mallory").status_code == 200
    assert listed() == []
    assert metric(s.h, "vigie_quarantined_clients") == 0
    assert admin(s.h, "DELETE", f"/quarantine/{s.client}/{subject}").status_code == 404
    assert "quarantine_lifted" in [e["event"] for e in events(s.h)]


def test_without_an_admin_token_file_the_api_is_disabled(stacks) -> None:
    s = stacks(admin=False)
    assert s.get("/patients/990001").status_code == 429
    assert admin(s.h, "GET", "/quarantine").status_code == 404
    subject = subject_of(s.h, s.client, "dr-house")
    assert admin(s.h, "DELETE", f"/quarantine/{s.client}/{subject}").status_code == 404
    assert s.get("/patients/42").status_code == 429  # nothing was lifted
    assert httpx_ok(s)


def httpx_ok(s) -> bool:
    import httpx

    return httpx.get(f"{s.h.admin_url}/readyz", timeout=5).status_code == 200


def test_report_only_records_every_decision_and_blocks_nothing(stacks) -> None:
    s = stacks(mode="report-only", requests="60/minute")
    statuses = [s.get(f"/patients/{pid}").status_code for pid in range(1, 25)]  # walk + rate
    statuses.append(s.get("/patients/990001").status_code)  # decoy
    statuses.append(s.get("/patients/7").status_code)
    assert statuses == [200] * 26
    assert len(s.h.upstream.requests) == 26  # every request forwarded, the decoy included
    lines = s.h.audit_lines()
    blocked = [(line["would_block"], line["reason"]) for line in lines if line["would_block"]]
    assert ("throttled", "requests") in blocked
    assert ("quarantined", "decoy") in blocked
    assert ("quarantined", "quarantined") in blocked  # a principal quarantined meanwhile
    assert all(line["status"] == 200 and line["decision"] == "allowed" for line in lines)
    assert metric(s.h, "vigie_requests_total", client=s.client, route="read-patient",
                  status="429") is None
    assert metric(s.h, "vigie_enumeration_detections_total", client=s.client,
                  signal="sequential_ids") == 1
    assert metric(s.h, "vigie_enumeration_detections_total", client=s.client,
                  signal="decoy") == 1
    assert {e["mode"] for e in events(s.h)} == {"report-only"}
    assert wait_for(lambda: [q["mode"] for q in admin(s.h, "GET", "/quarantine").json()
                             if q["client"] == s.client] == ["report-only"])
