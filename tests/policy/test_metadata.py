"""Policy metadata: validated whenever present, required by `vigie policy check --strict`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.conftest import REPO, vigie
from vigie.policy.loader import check_policies, load_policies

ROUTES = """\
routes:
  - name: read
    methods: [GET]
    path: /patients/{id}
    response:
      fields:
        id: keep
        nir: NIR_ACTION
        identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value: INS_ACTION
"""
META = """\
metadata:
  owner: Service facturation
  contact: dpo@example.org
  purpose: billing
  legal_basis: {art6: "6(1)(c)", art9: "art. 9(2)(h)", nir: reimbursement}
  retention: 18 months
"""


def folder(tmp_path: Path, meta: str = META, nir: str = "keep", ins: str = "drop") -> Path:
    text = "client: billing\n" + meta + ROUTES.replace("NIR_ACTION", nir).replace(
        "INS_ACTION", ins)
    (tmp_path / "billing.yaml").write_text(text)
    return tmp_path


def test_valid_metadata_is_loaded(tmp_path: Path) -> None:
    policy = load_policies(folder(tmp_path)).clients["billing"]
    assert policy.metadata is not None
    assert policy.metadata.purpose == "billing"
    assert policy.metadata.legal_basis.art6 == "c"
    assert policy.metadata.legal_basis.art9 == "h"
    assert policy.metadata.legal_basis.nir == "reimbursement"
    assert check_policies(tmp_path, strict=True) == []


@pytest.mark.parametrize(("meta", "line", "message"), [
    ("metadata: {owner: x, colour: blue}\n", 2,
     "metadata.colour: unknown key (allowed: owner, contact, purpose"),
    ("metadata:\n  purpose: marketing\n", 3, "metadata.purpose: unknown purpose 'marketing'"),
    ("metadata:\n  legal_basis: {art6: z}\n", 3,
     "metadata.legal_basis.art6: must be a letter of GDPR art. 6(1) (a-f)"),
    ("metadata:\n  legal_basis: {art9: \"9(2)(k)\"}\n", 3,
     "metadata.legal_basis.art9: must be a letter of GDPR art. 9(2) (a-j)"),
    ("metadata:\n  legal_basis: {nir: because}\n", 3,
     "metadata.legal_basis.nir: unknown décret-cadre NIR purpose 'because'"),
    ("metadata:\n  retention: forever\n", 3, "metadata.retention: must be N days"),
    ("metadata:\n  owner: ''\n", 3, "metadata.owner: must be a non-empty string"),
    ("metadata: [owner]\n", 2, "metadata: must be a mapping"),
])
def test_bad_metadata_names_file_line_and_key(tmp_path: Path, meta: str, line: int,
                                              message: str) -> None:
    (error,) = check_policies(folder(tmp_path, meta))
    assert error.startswith(f"{tmp_path / 'billing.yaml'}:{line}: {message}"), error


def test_metadata_is_optional_unless_strict(tmp_path: Path) -> None:
    path = folder(tmp_path, meta="")
    assert check_policies(path) == []
    (error,) = check_policies(path, strict=True)
    assert error.endswith(":1: strict: missing required key 'metadata' (owner, contact, "
                          "purpose, legal_basis, retention)")


def test_strict_requires_every_key(tmp_path: Path) -> None:
    errors = check_policies(folder(tmp_path, meta="metadata: {owner: x}\n", nir="drop"),
                            strict=True)
    assert [e.split(": ", 1)[1] for e in errors] == [
        "metadata: strict: missing required key 'contact'",
        "metadata: strict: missing required key 'purpose'",
        "metadata: strict: missing required key 'retention'",
        "metadata.legal_basis: strict: missing required key 'art6'",
        "metadata.legal_basis: strict: missing required key 'art9' (health data)"]


@pytest.mark.parametrize(("meta", "why"), [
    (META.replace(", nir: reimbursement", ""), "metadata.legal_basis.nir must name the "
                                               "décret-cadre NIR purpose"),
    (META.replace("purpose: billing", "purpose: appointments"),
     "the purpose 'appointments' does not allow the NIR"),
])
def test_strict_a_nir_kept_in_clear_needs_its_legal_basis(tmp_path: Path, meta: str,
                                                          why: str) -> None:
    path = folder(tmp_path, meta, nir="drop", ins="keep")
    assert check_policies(path) == []
    (error,) = check_policies(path, strict=True)
    assert error.startswith(f"{path / 'billing.yaml'}:16: routes[0].response.fields"), error
    assert "identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value keeps a NIR in clear" in error
    assert why in error


def test_strict_on_the_cli(tmp_path: Path) -> None:
    assert vigie("policy", "check", "--strict", REPO / "policies").code == 0
    result = vigie("policy", "check", "--strict", folder(tmp_path, meta=""))
    assert result.code == 1
    assert "strict: missing required key 'metadata'" in result.out
