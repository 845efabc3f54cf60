"""What the register says for each field and client, read from the built register and the
Markdown (the HTML has its own browser test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigie.policy.loader import load_policies
from vigie.register import render
from vigie.register.build import build_register

REPO = Path(__file__).resolve().parents[2]

POLICY = """\
client: {client}
metadata:
  owner: Owner of {client}
  contact: dpo@example.org
  purpose: care
  legal_basis: {{art6: e, art9: "9(2)(h)", nir: care}}
  retention: P1Y
routes:
  - name: read
    methods: [GET]
    path: /patients/{{id}}
    response:
      fields:
        id: keep
        nir: {nir}
        birth_date: {{generalize: month}}
        token: pseudonymize
        notes: drop
      unlisted: {unlisted}
  - name: raw
    methods: [GET]
    path: /raw
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "a.yaml").write_text(
        POLICY.format(client="a", nir="keep", unlisted="drop").split("  - name: raw")[0])
    (tmp_path / "b.yaml").write_text(POLICY.format(client="b", nir="{mask: last2}",
                                                   unlisted="drop"))
    return tmp_path


def test_each_field_has_its_disclosure_form_per_client(folder: Path) -> None:
    register = build_register(load_policies(folder))
    a, b = register.clients
    assert [(f.selector, f.form, f.detail) for f in a.fields] == [
        ("id", "clear", ""), ("nir", "clear", ""), ("birth_date", "generalized", "month"),
        ("token", "pseudonym", ""), ("notes", "never", "")]
    assert register.cell("nir", a) == "clear"
    assert register.cell("notes", a) == "never"
    # b has a route without response rules: what it does not name passes unfiltered.
    assert register.cell("nir", b) == "unfiltered"
    assert b.routes[1].unlisted == "unfiltered (no response rules)"


def test_purpose_and_legal_basis_are_spelled_out(folder: Path) -> None:
    text = render(load_policies(folder), "md", title_source="x")
    assert "care: Direct care of the patient" in text
    assert "GDPR art. 6(1)(e): public interest or official authority" in text
    assert "GDPR art. 9(2)(h)" in text
    assert "décret-cadre NIR: Health or medico-social care of the person" in text
    assert "| retention | P1Y |" in text
    assert "| `nir` | NIR / INS | clear | unfiltered |" in text


def test_a_policy_without_metadata_says_so(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("client: c\nroutes: [{name: r, methods: [GET], path: /x}]\n")
    text = render(load_policies(tmp_path), "md", title_source="x")
    assert "| owner | not declared |" in text
    assert "| purpose | not declared |" in text


def test_the_example_register_matrix(tmp_path: Path) -> None:
    register = build_register(load_policies(REPO / "policies"))
    clients = {c.client: c for c in register.clients}
    assert set(clients) == {"billing", "gp-frontdesk", "lab-results", "research-export"}
    ins = "identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value"
    assert [register.cell(ins, clients[n]) for n in sorted(clients)] == [
        "clear", "pseudonym", "clear", "never"]
    assert [register.cell("nir", clients[n]) for n in sorted(clients)] == [
        "clear", "masked", "never", "never"]
