"""`vigie audit verify` and `vigie audit exposed` on a small generated audit file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from cli.conftest import vigie
from support.audit import BASE_TIME, make_decision
from vigie.audit import AuditLog
from vigie.config import AuditSettings
from vigie.telemetry.metrics import Metrics


@pytest.fixture
def audit_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditSettings(path=str(path)), Metrics(process_collectors=False))
    rows = [("gp-frontdesk", ["42", "43"], 0), ("gp-frontdesk", ["44"], 3600),
            ("billing", ["42", "99"], 7200), ("gp-frontdesk", ["42"], 86_400 * 2)]
    for index, (client, patients, offset) in enumerate(rows):
        log.record(make_decision(request_id=f"r{index}", client=client, patients=patients,
                                 wall_time=BASE_TIME + offset), "psn-user")
    log.close()
    return path


def test_verify_intact(audit_file: Path) -> None:
    result = vigie("audit", "verify", audit_file)
    assert result.code == 0, result.out + result.err


def test_verify_names_the_first_broken_line(audit_file: Path) -> None:
    lines = audit_file.read_bytes().splitlines(keepends=True)
    record = orjson.loads(lines[2])
    record["patients"] = ["7"]  # someone hides a disclosure
    lines[2] = orjson.dumps(record) + b"\n"
    audit_file.write_bytes(b"".join(lines))
    result = vigie("audit", "verify", audit_file)
    assert result.code == 1
    assert "3" in result.out  # line 3, counted from 1


def test_verify_a_removed_line(audit_file: Path) -> None:
    lines = audit_file.read_bytes().splitlines(keepends=True)
    audit_file.write_bytes(b"".join(lines[:1] + lines[2:]))
    assert vigie("audit", "verify", audit_file).code == 1


def test_verify_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = vigie("audit", "verify", tmp_path / "nope.jsonl")
    assert result.code == 2 and "nope.jsonl" in result.err


def test_exposed_lists_patients_then_a_count(audit_file: Path) -> None:
    result = vigie("audit", "exposed", audit_file, "--client", "gp-frontdesk")
    assert result.code == 0, result.err
    assert result.lines == ["42", "43", "44", "3 patients"]


def test_exposed_in_a_window(audit_file: Path) -> None:
    result = vigie("audit", "exposed", audit_file, "--client", "gp-frontdesk",
                   "--since", "2026-11-28T10:30:00Z", "--until", "2026-11-29")
    assert result.code == 0, result.err
    assert result.lines == ["44", "1 patient"]
    result = vigie("audit", "exposed", audit_file, "--client", "billing")
    assert result.lines == ["42", "99", "2 patients"]
    result = vigie("audit", "exposed", audit_file, "--client", "nobody")
    assert result.code == 0 and result.lines == ["0 patients"]


def test_exposed_bad_date_is_a_usage_error(audit_file: Path) -> None:
    result = vigie("audit", "exposed", audit_file, "--client", "x", "--since", "yesterday")
    assert result.code == 2 and "--since" in result.err
