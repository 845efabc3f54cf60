"""FHIR routes stay valid FHIR: pseudonyms are FHIR ids, and `vigie policy check` warns
about the rules that would break a resource. Each warning is checked against
`fhir.resources` (R4B models, R4's Patient and Observation): what is warned about
does not parse, what is not warned about does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from support.minimize import run
from vigie.demo.patients import patient, to_fhir
from vigie.policy.fhir import fhir_warnings
from vigie.policy.loader import load_policies
from vigie.pseudonym import Pseudonymizer

ROUTES = {
    "patient-ok": ("/fhir/Patient/{id}", "resourceType: keep, id: keep, birthDate: "
                   "{generalize: year}, gender: keep"),
    "patient-without-type": ("/fhir/Patient/{id}/x", "id: keep, gender: keep"),
    "patient-masked-id": ("/fhir/Patient/{id}/y", "resourceType: keep, id: {mask: last2}"),
    "observation-ok": ("/fhir/Observation/{id}", "resourceType: keep, id: keep, status: keep, "
                       "code: keep"),
    "observation-without-code": ("/fhir/Observation/{id}/x", "resourceType: keep, status: keep"),
}
OBSERVATION = {"resourceType": "Observation", "id": "o1", "status": "final",
               "code": {"text": "poids"}, "valueQuantity": {"value": 72, "unit": "kg"}}


def parse_as_a_client(document: dict[str, Any]) -> None:
    """What a FHIR client does: pick the model by resourceType, then validate."""
    kind = document.get("resourceType")
    if not isinstance(kind, str):
        raise ValueError("no resourceType")
    get_fhir_model_class(kind).model_validate(document)


def policy_text() -> str:
    routes = "".join(f"  - name: {name}\n    methods: [GET]\n    path: {path}\n"
                     f"    response:\n      records: \"$\"\n      fields: {{{fields}}}\n"
                     for name, (path, fields) in ROUTES.items())
    return f"client: fhir-app\nroutes:\n{routes}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fhir-policies")
    (path / "fhir-app.yaml").write_text(policy_text())
    return path


def warned_routes(folder: Path) -> set[str]:
    policy = load_policies(folder).clients["fhir-app"]
    return {line.split("route '", 1)[1].split("'", 1)[0] for line in fhir_warnings(policy)}


def test_the_check_warns_exactly_on_the_routes_that_break_fhir(folder: Path) -> None:
    assert warned_routes(folder) == {"patient-without-type", "patient-masked-id",
                                     "observation-without-code"}


async def test_warned_rules_do_not_parse_and_the_others_do(folder: Path) -> None:
    policy = load_policies(folder).clients["fhir-app"]
    warned = warned_routes(folder)
    samples = {"patient": to_fhir(patient(31)), "observation": OBSERVATION}
    for route in policy.routes:
        parse_as_a_client(samples[route.name.split("-")[0]])  # the upstream's is valid
        out, _ = await run(samples[route.name.split("-")[0]], route.response)
        if route.name in warned:
            with pytest.raises((ValidationError, ValueError)):
                parse_as_a_client(out)
        else:
            parse_as_a_client(out)


def test_policy_check_prints_warnings_and_still_passes(folder: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vigie", "policy", "check", str(folder)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if ": warning: " in line]
    assert len(warnings) == 3
    assert all(line.startswith(f"{folder / 'fhir-app.yaml'}:") for line in warnings)
    assert any("resourceType is not kept" in line for line in warnings)
    assert any("Observation.code is required" in line for line in warnings)


def test_pseudonyms_are_valid_fhir_ids() -> None:
    pseudonymizer = Pseudonymizer(b"k" * 32)
    for value in ("1", "31", "990001", "185057800608491"):
        token = pseudonymizer.token("research", value)
        assert token.startswith("psn-")
        Patient.model_validate({"resourceType": "Patient", "id": token})
    with pytest.raises(ValidationError):  # why the prefix changed from psn_
        Patient.model_validate({"resourceType": "Patient", "id": "psn_abc"})
    assert orjson.dumps(token)
