"""`vigie policy suggest` on evidence it must not trust or cannot use: it says so and stops.

A tampered, truncated or reordered audit is reported as `vigie audit verify` does
(file and line); a usage log whose audit heads are not in the audit comes from
another deployment; a client the audit never saw is named with those it did
see; a huge log is streamed with progress on stderr.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from cli.conftest import REPO, vigie
from learn.conftest import write_audit
from vigie.learn.usage import KIND

FRONT_DESK = [{"client": "gp-frontdesk", "route": "read-patient", "patients": [str(n)],
               "fields": {"id", "last_name"}} for n in range(5)]
OTHERS = [{"client": "billing", "route": "patient-record"}]


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    return write_audit(tmp_path / "audit.jsonl", FRONT_DESK + OTHERS)


def suggest(*args: str | Path) -> object:
    return vigie("policy", "suggest", *args)


def test_a_sound_audit_gives_a_policy(audit: Path) -> None:
    result = suggest("--audit", audit, "--client", "gp-frontdesk",
                     "--diff", REPO / "policies" / "gp-frontdesk.yaml")
    assert result.code == 0, result.err
    assert "6 audit lines read" in result.err and "chain intact (from genesis" in result.err
    assert "# route search-patients (/patients): removed, never used" in result.lines
    removed = [line for line in result.lines if "search-patients" in line
               and not line.startswith("#")]
    assert removed and all(line.startswith("-") for line in removed)  # never used: gone
    assert "+    path: /patients/{id}" in result.out or "+  path: /patients/{id}" in result.out


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda lines: lines[:2] + [lines[2].replace(b'"req-2"', b'"req-X"')] + lines[3:],
     ":3: hash mismatch: the line was altered"),
    (lambda lines: lines[:1] + lines[2:], ":2: prev does not match"),
    (lambda lines: lines[:-1] + [lines[-1][:40]], ":6: truncated line"),
])
def test_a_broken_audit_is_refused_as_audit_verify_reports_it(audit: Path, damage: object,
                                                              reason: str) -> None:
    lines = audit.read_bytes().splitlines(keepends=True)
    audit.write_bytes(b"".join(damage(lines)))  # type: ignore[operator]
    result = suggest("--audit", audit, "--client", "gp-frontdesk")
    assert result.code == 1
    assert f"{audit}{reason}" in result.err
    assert "no policy is learnt from a broken audit" in result.err
    assert result.out == ""


def test_a_client_never_seen_is_named_with_those_seen(audit: Path) -> None:
    result = suggest("--audit", audit, "--client", "radiology")
    assert result.code == 1
    assert "client 'radiology' never appears in the audit" in result.err
    assert "(clients seen: gp-frontdesk, billing)" in result.err
    since = suggest("--audit", audit, "--client", "gp-frontdesk", "--since", "2027-01-01")
    assert since.code == 1 and "never appears in the audit since 2027-01-01" in since.err


def test_a_usage_log_from_another_deployment_is_refused(audit: Path, tmp_path: Path) -> None:
    usage = tmp_path / "usage.jsonl"
    usage.write_bytes(orjson.dumps({"kind": KIND, "ts": "2026-11-28T10:00:00Z",
                                    "audit_head": "ab" * 32, "client": "gp-frontdesk",
                                    "dropped": 0, "shapes": []}) + b"\n")
    result = suggest("--audit", audit, "--usage", usage, "--client", "gp-frontdesk")
    assert result.code == 1
    assert "usage log from another deployment" in result.err
    usage.write_bytes(usage.read_bytes()[:-20])  # a torn last line is skipped, said so
    torn = suggest("--audit", audit, "--usage", usage, "--client", "gp-frontdesk",
                   "--diff", REPO / "policies" / "gp-frontdesk.yaml")
    assert torn.code == 0 and f"{usage}:1: truncated last line skipped" in torn.err
    usage.write_text("not json\n")
    garbage = suggest("--audit", audit, "--usage", usage, "--client", "gp-frontdesk")
    assert garbage.code == 1 and f"{usage}:1: not a usage log line" in garbage.err


def test_an_audit_from_another_deployment_is_flagged(tmp_path: Path) -> None:
    audit = write_audit(tmp_path / "audit.jsonl", [
        {"client": "gp-frontdesk", "route": "dossier-lecture"}])
    result = suggest("--audit", audit, "--client", "gp-frontdesk",
                     "--diff", REPO / "policies" / "gp-frontdesk.yaml")
    assert "an audit from another deployment?" in result.err
    assert result.code == 1 and "nothing to suggest" in result.err  # no route it knows


def test_unmatched_requests_without_the_usage_log_teach_nothing(tmp_path: Path) -> None:
    audit = write_audit(tmp_path / "audit.jsonl", [
        {"client": "pilot", "route": "unmatched", "would_block": "denied:no_route"}] * 3)
    result = suggest("--audit", audit, "--client", "pilot")
    assert result.code == 1 and result.out == ""
    assert "3 requests matched no route: their paths are in the usage log only" in result.err
    assert "nothing to suggest" in result.err


def test_a_policy_of_another_client_is_a_usage_error(audit: Path) -> None:
    result = suggest("--audit", audit, "--client", "gp-frontdesk",
                     "--diff", REPO / "policies" / "billing.yaml")
    assert result.code == 2 and "is the policy of 'billing'" in result.err


def test_missing_files_and_bad_dates_are_usage_errors(audit: Path, tmp_path: Path) -> None:
    missing = suggest("--audit", tmp_path / "nope.jsonl", "--client", "x")
    assert missing.code == 2 and "nope.jsonl: cannot read" in missing.err
    bad = suggest("--audit", audit, "--client", "gp-frontdesk", "--since", "yesterday")
    assert bad.code == 2 and "--since: not ISO 8601" in bad.err


def test_a_large_audit_is_streamed_with_progress(tmp_path: Path) -> None:
    audit = write_audit(tmp_path / "big.jsonl", (
        {"client": "billing" if n % 2 else "gp-frontdesk", "route": "read-patient",
         "patients": [str(n % 500)], "wall_time": 1_795_860_000.0 + n / 50}
        for n in range(70_000)))
    result = suggest("--audit", audit, "--client", "gp-frontdesk",
                     "--diff", REPO / "policies" / "gp-frontdesk.yaml")
    assert result.code == 0, result.err
    assert "vigie: reading the audit: " in result.err and "65536 lines" in result.err
    assert "70000 audit lines read" in result.err
