"""`vigie policy test DIR` and `vigie policy explain DIR ...`, run as a user runs them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cli.conftest import REPO, vigie

SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def summary(lines: list[str]) -> tuple[int, int]:
    match = SUMMARY.match(lines[-1])
    assert match, lines
    return int(match[1]), int(match[2])


@pytest.mark.parametrize("folder", ["policies", "src/vigie/demo/policies"])
def test_shipped_policy_tests_pass(folder: str) -> None:
    result = vigie("policy", "test", REPO / folder)
    assert result.code == 0, result.out + result.err
    passed, failed = summary(result.lines)
    assert failed == 0 and passed >= 8
    assert len(result.lines) == 1  # nothing but the summary when all pass


def test_every_shipped_policy_has_tests() -> None:
    for folder in (REPO / "policies", REPO / "src/vigie/demo/policies"):
        policies = {p.name.removesuffix(".yaml") for p in folder.glob("*.yaml")
                    if not p.name.endswith(".test.yaml")}
        tested = {p.name.removesuffix(".test.yaml") for p in folder.glob("*.test.yaml")}
        assert policies <= tested, f"{folder}: untested {policies - tested}"


FAILING = """\
client: gp-frontdesk
cases:
  - name: this one passes
    request: {method: GET, path: /patients/42, claims: {scope: patient.read, practice_id: P1}}
    upstream: {status: 200, json: {id: 42, practice_id: P1}}
    expect:   {status: 200, json: {id: 42}}
  - name: wrongly expects the whole NIR
    request: {method: GET, path: /patients/42, claims: {scope: patient.read, practice_id: P1}}
    upstream: {status: 200, json: {id: 42, nir: "185057800608491", practice_id: P1}}
    expect:   {status: 200, json: {id: 42, nir: "185057800608491"}}
  - name: wrongly expects a 200 without scope
    request: {method: GET, path: /patients/42, claims: {scope: nothing, practice_id: P1}}
    expect:   {status: 200}
  - name: wrongly expects the NIR in a header
    request: {method: GET, path: /patients/42, claims: {scope: patient.read, practice_id: P1}}
    upstream: {status: 200, json: {id: 42, practice_id: P1}, headers: {x-nir: "185057800608491"}}
    expect:
      status: 200
      headers: {x-nir: "185057800608491"}
      contains: ['"id":42']
      not_contains: ['"id"']
"""


def test_a_failing_case_gives_exit_1_and_names_it(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    shutil.copytree(REPO / "policies", folder)
    (folder / "zz-broken.test.yaml").write_text(FAILING)
    result = vigie("policy", "test", folder)
    assert result.code == 1
    passed, failed = summary(result.lines)
    assert failed == 3 and passed >= 17
    failures = result.lines[:-1]
    assert any("wrongly expects the whole NIR" in line and "zz-broken.test.yaml:7" in line
               and "*************91" in line for line in failures), failures
    assert any("wrongly expects a 200 without scope" in line and "got 403" in line
               for line in failures)
    header_case = [line for line in failures if "NIR in a header" in line]
    assert len(header_case) == 2  # the header, and not_contains
    assert not any("this one passes" in line for line in failures)
    assert all("185057800608491" not in line or "expected" in line for line in failures)


def test_a_broken_test_file_is_a_usage_error(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    shutil.copytree(REPO / "policies", folder)
    (folder / "bad.test.yaml").write_text("cases: []\n")
    result = vigie("policy", "test", folder)
    assert result.code == 2
    assert "bad.test.yaml" in result.out + result.err


def explain(*args: str) -> str:
    result = vigie("policy", "explain", REPO / "policies", *args)
    assert result.code == 0, result.err
    return result.out


def test_explain_a_matched_route() -> None:
    out = explain("--client", "gp-frontdesk", "--method", "GET", "--path", "/patients/42")
    assert "route: read-patient" in out
    assert "scopes required (all): patient.read" in out
    fields = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "mask last2" in fields["nir"]
    assert "generalize year" in fields["birth_date"]
    assert "generalize department" in fields["address.postcode"]
    assert "keep" in fields["last_name"]
    assert "drop" in fields["telecom[*].value"]
    assert "pseudonymize" in fields["identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value"]
    assert "unlisted fields: dropped" in out
    assert "practice_id" in out and "NIR rule" in out


def test_explain_why_no_route_matched() -> None:
    out = explain("--client", "gp-frontdesk", "--method", "DELETE", "--path", "/patients/42")
    assert "no route matched" in out and "403" in out
    assert "method DELETE not in ['GET']" in out
    out = explain("--client", "gp-frontdesk", "--path", "/export.ndjson")
    assert "no route matched" in out and "segment 1" in out


def test_explain_unknown_client_and_refused_paths() -> None:
    out = explain("--client", "nobody", "--path", "/patients/42")
    assert "no policy for client 'nobody'" in out and "gp-frontdesk" in out
    out = explain("--client", "gp-frontdesk", "--path", "/patients/42%2F..%2F43")
    assert "refused" in out and "400" in out
    out = explain("--client", "gp-frontdesk", "--path", "/patients?last_name=X&page_size=500")
    assert "route: search-patients" in out and "refused (400)" in out


def test_explain_normalizes_like_the_proxy() -> None:
    out = explain("--client", "billing", "--path", "//patients/./42")
    assert "normalized path: /patients/42" in out
    assert "route: patient-record" in out
    assert "keep" in [line for line in out.splitlines() if line.strip().startswith("nir ")][0]
