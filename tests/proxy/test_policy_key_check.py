"""A pseudonymizing policy needs pseudonym_key_file: refused at start-up and on reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigie.app import Vigie
from vigie.config import load_settings
from vigie.errors import ConfigError

PLAIN = """\
client: app
routes:
  - name: read
    methods: [GET]
    path: /patients/{id}
    response: {records: "$", fields: {id: keep}}
"""
PSEUDONYMIZING = PLAIN.replace("{id: keep}", "{id: pseudonymize}")


def _settings(tmp_path: Path, policy: str):  # type: ignore[no-untyped-def]
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "app.yaml").write_text(policy)
    config = tmp_path / "vigie.yaml"
    config.write_text("upstream: http://127.0.0.1:9\npolicies: ./policies\n"
                      f"audit: {{path: {tmp_path / 'audit.jsonl'}}}\n")
    return load_settings(config, {})


def test_start_up_refuses_a_pseudonymizing_policy_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        Vigie.build(_settings(tmp_path, PSEUDONYMIZING))
    assert refused.value.key == "pseudonym_key_file"
    assert "vigie.yaml" in str(refused.value)


def test_a_reload_that_needs_a_missing_key_keeps_the_old_policies(tmp_path: Path) -> None:
    vigie = Vigie.build(_settings(tmp_path, PLAIN))
    before = vigie.policies.current
    (tmp_path / "policies" / "app.yaml").write_text(PSEUDONYMIZING)
    assert vigie.policies.reload() is False
    assert vigie.policies.current is before
    failures = vigie.stages.metrics.registry.get_sample_value(
        "vigie_policy_reload_failures_total")
    assert failures == 1.0
    vigie.audit.close()
