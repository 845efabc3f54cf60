"""The audit trail end to end: one line per authenticated request, before the response,
verifiable, answering "which patients did this client get", and failing as configured."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from support.harness import Harness, Keys
from support.legacy import DemoStack
from support.soc import (
    GUARD_ENV,
    SOC_POLICIES,
    drive_traffic,
    patient_upstream,
    synthetic_patient,
    value,
)


def vigie_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_one_line_per_authenticated_request_none_for_401(soc: Harness) -> None:
    soc.upstream.handler = patient_upstream
    token = soc.token("soc-app", sub="dr-audit", scope="patient.read patient.search")
    tight = soc.token("tight-app", sub="dr-tight", scope="patient.read")
    sent = {  # request id -> (path, token), expected status
        "ok": (("/patients/12", token), 200),
        "upstream-404": (("/patients/gone", token), 404),
        "bad-query": (("/patients?nir=1", token), 400),
        "scope": (("/letters/4", soc.token("soc-app", scope="patient.search")), 403),
        "unknown-client": (("/patients/1", soc.token("ghost-app", scope="patient.read")), 403),
        "uninspectable": (("/patients/broken", token), 502),
        "tight-1": (("/patients/8", tight), 200),
        "tight-2": (("/patients/8", tight), 429),
        "missing": (("/patients/12", None), 401),
        "expired": (("/patients/12", soc.token("soc-app", scope="patient.read",
                                               lifetime=-300)), 401),
        "garbage": (("/patients/12", "not.a.jwt"), 401),
    }
    for request_id, ((path, credential), status) in sent.items():
        response = soc.get(path, credential, headers={"x-request-id": request_id})
        assert response.status_code == status, request_id
        assert response.headers["x-request-id"] == request_id
    lines = {line["request_id"]: line for line in soc.audit_lines()}
    assert set(lines) == {rid for rid, (_, status) in sent.items() if status != 401}
    assert lines["ok"]["patients"] == ["12"] and lines["ok"]["decision"] == "allowed"
    assert lines["ok"]["fields"] == ["id", "notes"] and lines["ok"]["masked"] >= 4
    assert lines["tight-2"]["decision"] == "throttled" and lines["tight-2"]["status"] == 429
    assert lines["uninspectable"]["decision"] == "error"
    assert lines["uninspectable"]["patients"] == []  # refused: nothing disclosed
    assert lines["scope"]["decision"] == "denied" and lines["scope"]["route"] is None
    assert lines["ok"]["principal"].startswith("psn-")
    assert "dr-audit" not in soc.audit_path.read_text()


def test_the_line_is_written_before_the_response_leaves(soc: Harness) -> None:
    soc.upstream.reply(json={"id": "31", "nir": "185057800608491"}, delay=0.3)
    token = soc.token("soc-app", scope="patient.read")
    for n in range(3):
        request_id = f"slow-{n}"
        with soc.client.stream("GET", "/patients/31", headers={
                "Authorization": f"Bearer {token}", "x-request-id": request_id}) as response:
            # Read at the very first byte of the answer, before the body is even taken.
            written = [line["request_id"] for line in soc.audit_lines()]
            assert request_id in written
            assert response.status_code == 200
            response.read()


def test_verify_passes_on_real_traffic_and_names_the_tampered_line(soc: Harness,
                                                                    tmp_path: Path) -> None:
    drive_traffic(soc, reads=8)
    path = soc.audit_path
    result = vigie_cli("audit", "verify", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(path.read_bytes().splitlines())
    assert f"OK: {count} lines" in result.stdout
    lines = path.read_bytes().splitlines(keepends=True)
    # An altered status on line 4.
    altered = tmp_path / "altered.jsonl"
    altered.write_bytes(b"".join(lines[:3] + [lines[3].replace(b'"status":200',
                                                              b'"status":403')] + lines[4:]))
    assert lines[3] != altered.read_bytes().splitlines(keepends=True)[3]
    result = vigie_cli("audit", "verify", str(altered))
    assert result.returncode == 1
    assert f"{altered}:4: hash mismatch" in result.stdout
    # A line removed: the next one no longer links.
    removed = tmp_path / "removed.jsonl"
    removed.write_bytes(b"".join(lines[:5] + lines[6:]))
    result = vigie_cli("audit", "verify", str(removed))
    assert result.returncode == 1 and f"{removed}:6: prev does not match" in result.stdout
    assert vigie_cli("audit", "verify", str(tmp_path / "nowhere.jsonl")).returncode == 2


def returned_ids(response: httpx.Response) -> set[str]:
    if response.status_code != 200:
        return set()
    body = response.json()
    items = body["items"] if isinstance(body, dict) and "items" in body else [body]
    return {str(item["id"]) for item in items}


def exposed_list(audit: Path, client: str, *window: str) -> list[str]:
    result = vigie_cli("audit", "exposed", str(audit), "--client", client, *window)
    assert result.returncode == 0, result.stderr
    *refs, count = result.stdout.splitlines()
    assert count == f"{len(refs)} patient" + ("" if len(refs) == 1 else "s")
    return refs


def test_exposed_lists_exactly_what_each_client_received(tmp_path: Path) -> None:
    with DemoStack(tmp_path, count=400) as stack:
        desk = stack.issuer.mint("gp-frontdesk", "dr-a", ["patient.read", "patient.search"],
                                 practice_id="P1")
        other = stack.issuer.mint("gp-frontdesk", "dr-b", ["patient.read"], practice_id="P2")
        research = stack.issuer.mint("research", "lab-1", ["export.read", "patient.search"])
        first: set[str] = set()
        for patient_id in (7, 93, 151, 38, 260, 17, 333, 120):  # not a sequential walk
            first |= returned_ids(stack.get(f"/patients/{patient_id}", desk))
        first |= returned_ids(stack.get("/patients?page=1&page_size=20", desk))
        assert 0 < len(first) < 8 + 20  # other practices' patients were withheld
        time.sleep(0.05)
        boundary = datetime.now(UTC)
        time.sleep(0.05)
        second: set[str] = set()
        for patient_id in (211, 45, 378, 99):
            second |= returned_ids(stack.get(f"/patients/{patient_id}", other))
        second |= returned_ids(stack.get("/patients?page=3&page_size=10", desk))
        export = stack.get("/export.ndjson", research)
        assert export.status_code == 200
        pseudonyms = {orjson.loads(line)["id"] for line in export.text.splitlines() if line}
        assert len(pseudonyms) == 400 and all(p.startswith("psn-") for p in pseudonyms)

        audit = stack.audit_path
        assert vigie_cli("audit", "verify", str(audit)).returncode == 0
        everything = exposed_list(audit, "gp-frontdesk")
        assert set(everything) == first | second
        assert everything == sorted(everything, key=int)
        since = boundary.isoformat()
        assert set(exposed_list(audit, "gp-frontdesk", "--since", since)) == second
        assert set(exposed_list(audit, "gp-frontdesk", "--until", since)) == first
        assert set(exposed_list(audit, "research")) == pseudonyms
        assert exposed_list(audit, "billing") == []
        withheld = [line for line in map(orjson.loads, audit.read_bytes().splitlines())
                    if line["status"] == 404]
        assert withheld and all(line["patients"] == [] for line in withheld)


def test_fail_closed_audit_refuses_with_503_and_returns_nothing(tmp_path: Path,
                                                                keys: Keys) -> None:
    """/dev/full accepts the open and fails every write with ENOSPC: a full disk."""
    env = {**GUARD_ENV, "VIGIE_AUDIT__PATH": "/dev/full"}
    with Harness(tmp_path, SOC_POLICIES, env=env, keys=keys) as h:
        h.upstream.handler = patient_upstream
        token = h.token("soc-app", scope="patient.read")
        for path in ("/patients/21", "/letters/21", "/patients?x=1"):
            response = h.get(path, token)
            assert response.status_code == 503, path
            assert response.headers["content-type"] == "application/problem+json"
            body = response.json()
            assert set(body) == {"type", "title", "status", "detail", "request_id"}
            assert body["status"] == 503 and body["detail"] == "the audit log is unavailable"
            patient = synthetic_patient(21)
            for secret in (patient["nir"], patient["nir"][-2:] + '"', patient["first_name"],
                           patient["birth_date"][:4], "Madame", "*"):
                assert secret not in response.text, secret
        assert h.get("/patients/21").status_code == 401  # no token: no audit line needed
        text = h.metrics_text()
        assert value(text, "vigie_audit_write_failures_total") == 3
        assert value(text, "vigie_requests_total", status="503", decision="error") == 3


def test_fail_open_audit_serves_and_counts(tmp_path: Path, keys: Keys) -> None:
    env = {**GUARD_ENV, "VIGIE_AUDIT__PATH": "/dev/full", "VIGIE_AUDIT__ON_FAILURE": "open"}
    with Harness(tmp_path, SOC_POLICIES, env=env, keys=keys) as h:
        h.upstream.handler = patient_upstream
        token = h.token("soc-app", scope="patient.read")
        assert h.get("/patients/21", token).json()["id"] == "21"
        assert h.get("/letters/21", token).status_code == 200
        assert h.get("/patients/21", h.token("soc-app", scope="x")).status_code == 403
        assert value(h.metrics_text(), "vigie_audit_write_failures_total") == 3
