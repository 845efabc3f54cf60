"""Several issuers: every policy names its issuer, or start-up stops naming file and line.

A `billing` client of another realm must never borrow this realm's `billing`
policy; with one issuer, a policy without `issuer` belongs to that issuer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vigie.app import Vigie
from vigie.config import Settings, load_settings
from vigie.errors import ConfigError

CARE = "https://idp.chu.example/realms/care"
LAB = "https://idp.chu.example/realms/lab"
POLICY = """\
# billing service
client: billing
{issuer}routes:
  - name: read
    methods: [GET]
    path: /patients/{{id}}
"""


def settings(tmp_path: Path, issuers: list[str], policies: dict[str, str]) -> Settings:
    folder = tmp_path / "policies"
    folder.mkdir(exist_ok=True)
    for name, text in policies.items():
        (folder / name).write_text(text)
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    entries = "".join(f"  - issuer: {issuer}\n    audiences: [patient-api]\n"
                      f"    jwks_file: ./jwks.json\n" for issuer in issuers)
    config = tmp_path / "vigie.yaml"
    config.write_text("upstream: http://127.0.0.1:9\npolicies: ./policies\n"
                      f"audit: {{path: {tmp_path / 'audit.jsonl'}}}\nissuers:\n{entries}")
    return load_settings(config, {})


def policy(issuer: str | None) -> str:
    return POLICY.format(issuer="" if issuer is None else f"issuer: {issuer}\n")


def test_a_policy_without_issuer_is_refused_when_several_issuers_are_trusted(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        Vigie.build(settings(tmp_path, [CARE, LAB], {"billing.yaml": policy(None)}))
    message = str(refused.value)
    assert f"{tmp_path / 'policies' / 'billing.yaml'}:2: issuer:" in message  # file:line
    assert "names no issuer" in message and CARE in message and LAB in message


def test_a_policy_naming_an_unconfigured_issuer_is_refused_at_its_line(tmp_path: Path) -> None:
    typo = CARE.replace("care", "cares")
    with pytest.raises(ConfigError) as refused:
        Vigie.build(settings(tmp_path, [CARE], {"billing.yaml": policy(typo)}))
    assert f"billing.yaml:3: issuer: '{typo}' is not a configured issuer" in str(refused.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        Vigie.build(settings(tmp_path, [CARE, LAB], {
            "a.yaml": policy(None), "b.yaml": policy(None).replace("billing", "other")}))
    assert "a.yaml:2" in str(refused.value) and "b.yaml:2" in str(refused.value)


@pytest.mark.parametrize(("issuers", "pinned"), [([CARE], None), ([CARE], CARE),
                                                 ([CARE, LAB], LAB)])
def test_unambiguous_policies_load(tmp_path: Path, issuers: list[str],
                                   pinned: str | None) -> None:
    vigie = Vigie.build(settings(tmp_path, issuers, {"billing.yaml": policy(pinned)}))
    assert vigie.policies.current.get("billing") is not None
    vigie.audit.close()


def test_a_reload_that_makes_a_policy_ambiguous_keeps_the_old_policies(tmp_path: Path) -> None:
    vigie = Vigie.build(settings(tmp_path, [CARE, LAB], {"billing.yaml": policy(CARE)}))
    before = vigie.policies.current
    (tmp_path / "policies" / "billing.yaml").write_text(policy(None))
    assert vigie.policies.reload() is False
    assert vigie.policies.current is before
    vigie.audit.close()
