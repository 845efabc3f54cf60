"""From report-only to an enforced least-privilege policy, through the real proxy and CLI.

A report-only client takes everything from a legacy API; vigie writes the audit
and the usage log; `vigie policy suggest` learns a policy from them that
`vigie policy check --strict` accepts and whose generated tests `vigie policy
test` runs green. The usage log holds shapes, never a value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cli.conftest import vigie
from support.harness import ISSUER, Harness, Keys

NIR = "185057800608491"
PILOT = """\
client: pilot
mode: report-only
metadata:
  owner: Laboratoire Exemple
  contact: dpo@labo.example
  purpose: lab-results
  legal_basis: {art6: "6(1)(e)", art9: "9(2)(h)", nir: ins-referencing}
  retention: 1 year
routes:
  - name: fhir-patient
    methods: [GET]
    path: /fhir/Patient/{id}
    scopes: [lab.read]
    response:
      records: "$"
      fields:
        identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value: keep
      unlisted: keep
  - name: never-used
    methods: [GET, DELETE]
    path: /admin/purge
limits:
  requests: 1000000/minute
  records: 100000000/hour
  distinct_patients: 10000000/day
  enumeration: false
"""
FHIR_PATIENT = {
    "resourceType": "Patient", "id": "7",
    "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": NIR},
                   {"system": "https://hopital.example/ipp", "value": "IPP-556677"}],
    "name": [{"family": "Durandeau", "given": ["Annabelle"]}],
    "gender": "female", "birthDate": "1990-02-03",
    "address": [{"city": "Perpignan", "postalCode": "66000"}],
    "telecom": [{"system": "phone", "value": "0611223344"}],
}
PAGE = {"items": [{"id": 41, "last_name": "Marchetti", "nir": "290127505645657",
                   "birth_date": "1990-12-01", "notes": "allergique"}], "total": 1}
PATIENT_VALUES = ("Durandeau", "Annabelle", "Perpignan", "0611223344", "IPP-556677",
                  "Marchetti", "290127505645657", NIR, "allergique", "1990-02-03", "66000")


def _answer(path: str) -> object:
    if path.startswith("/fhir/"):
        return FHIR_PATIENT
    if path.startswith("/patients") and path.count("/") == 1:
        return PAGE
    return PAGE["items"][0]  # type: ignore[index]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """The audit, usage log and policy of a report-only client after a few requests."""
    tmp = tmp_path_factory.mktemp("learn")
    usage = tmp / "usage.jsonl"
    with Harness(tmp, {"pilot.yaml": PILOT}, keys=Keys(),
                 env={"VIGIE_AUDIT__USAGE_PATH": str(usage)}) as h:
        async def handler(request: Request) -> Response:
            return JSONResponse(_answer(request.url.path))
        h.upstream.handler = handler
        token = h.token("pilot", scope="lab.read")
        for target in ("/fhir/Patient/7", "/fhir/Patient/8", "/patients/41", "/patients/42",
                       "/patients?last_name=Marchetti&page_size=20",
                       "/patients?last_name=Durandeau&page_size=50", "/patients/41/results",
                       "/patients/by-name/Durandeau?Annabelle=1"):  # names where words go
            assert h.get(target, token).status_code == 200
        audit = h.audit_path
    return_value = (audit, usage, tmp / "policies" / "pilot.yaml")
    yield return_value


def test_the_usage_log_holds_shapes_never_values(observed: tuple[Path, Path, Path]) -> None:
    _, usage, _ = observed
    text = usage.read_text()
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert lines and all(line["client"] == "pilot" for line in lines)
    shapes = {(s["method"], s["path"]) for line in lines for s in line["shapes"]}
    assert ("GET", "/patients/{}") in shapes
    assert ("GET", "/fhir/Patient/{id}") in shapes
    assert ("GET", "/patients/by-name/{}") in shapes  # one principal: the name is not written
    shapes_text = orjson.dumps([line["shapes"] for line in lines]).decode()
    for value in PATIENT_VALUES + ("/41", "/42", "Patient/7", "Patient/8", "page_size=", "20"):
        assert value not in shapes_text


def test_suggest_learns_a_policy_that_checks_and_tests_green(
        observed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The two commands of the issue: suggest (with --out), then check and test it."""
    audit, usage, policy = observed
    out = tmp_path / "suggested"
    result = vigie("policy", "suggest", "--audit", audit, "--usage", usage, "--client", "pilot",
                   "--diff", policy, "--out", out)
    assert result.code == 0, result.err
    check = vigie("policy", "check", "--strict", out)
    assert check.code == 0, check.out
    tested = vigie("policy", "test", out)
    assert tested.code == 0, tested.out
    assert tested.lines[-1].endswith(" passed, 0 failed")
    suggested = yaml.safe_load((out / "pilot.yaml").read_text())
    routes = {route["path"]: route for route in suggested["routes"]}
    assert set(routes) == {"/fhir/Patient/{id}", "/patients", "/patients/{id}",
                           "/patients/{id}/results", "/patients/by-name/{id}"}
    # /admin/purge was never used; the name sent as a query name was withheld: not allowed
    assert routes["/patients/by-name/{id}"]["query"] == {"allowed": []}
    assert "withheld as possible names" in result.err
    assert suggested["mode"] == "enforce"
    assert suggested["issuer"] == ISSUER  # the one issuer its tokens came from
    search = routes["/patients"]
    assert search["methods"] == ["GET"]
    assert search["query"] == {"allowed": ["last_name", "page_size"], "max": {"page_size": 50}}
    assert search["response"]["records"] == "$.items[*]"
    assert routes["/fhir/Patient/{id}"]["scopes"] == ["lab.read"]  # carried over
    assert search["scopes"] == ["lab.read"]  # what every token on it carried (usage log)
    assert "no scope known" not in result.err
    assert routes["/fhir/Patient/{id}"]["query"] == {"allowed": []}
    fields = routes["/fhir/Patient/{id}"]["response"]["fields"]
    # lab-results with the décret-cadre INS purpose, and the INS already in clear: kept.
    assert fields["identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value"] == "keep"
    assert fields["name[*].family"] == "keep" and fields["birthDate"] == "keep"
    assert fields["address[*].postalCode"] == {"generalize": "department"}
    assert fields["address[*].city"] == "drop" and fields["telecom[*].value"] == "drop"
    assert "address" not in fields and "telecom" not in fields  # no subtree rule over leaves
    assert routes["/patients/{id}"]["response"]["fields"]["notes"] == "drop"
    # seen in clear in report-only, but never granted by a policy: not kept
    assert routes["/patients/{id}"]["response"]["fields"]["nir"] == "drop"
    assert suggested["metadata"]["legal_basis"]["nir"] == "ins-referencing"
    assert suggested["limits"]["requests"].endswith("/minute")
    # diff mode: the summary, then the unified diff against the current file
    assert "# route never-used (/admin/purge): removed, never used" in result.lines
    assert "# route patients-item (/patients/{id}): added, used but not in the policy" \
        in result.lines
    assert "# mode: report-only -> enforce" in result.lines
    assert any(line.startswith("--- ") and line.endswith("pilot.yaml") for line in result.lines)
    text = (out / "pilot.yaml").read_text() + (out / "pilot.test.yaml").read_text()
    for value in PATIENT_VALUES:
        assert value not in text or value == NIR  # the synthetic test NIR is the examples' one


def test_a_purpose_without_the_nir_gets_no_nir(observed: tuple[Path, Path, Path],
                                               tmp_path: Path) -> None:
    audit, usage, policy = observed
    out = tmp_path / "appointments"
    result = vigie("policy", "suggest", "--audit", audit, "--usage", usage, "--client", "pilot",
                   "--purpose", "appointments", "--diff", policy, "--out", out)
    assert result.code == 0, result.err
    suggested = yaml.safe_load((out / "pilot.yaml").read_text())
    for route in suggested["routes"]:
        for selector, action in route["response"]["fields"].items():
            if selector == "nir" or "1.2.250.1.213.1.4.8].value" in selector:
                assert action == "drop", selector
    assert "the NIR is dropped" in result.err  # the policy gave it, the purpose does not
    assert "# route fhir-patient: field identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value:" \
        " keep -> drop" in result.lines
    bare = vigie("policy", "suggest", "--audit", audit, "--usage", usage, "--client", "pilot")
    assert bare.code == 0 and "metadata" not in yaml.safe_load(bare.out)
    assert "no purpose declared" in bare.err
