"""The editor JSON Schema agrees with the loader on the examples and on common mistakes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from support.policies import EXAMPLE_POLICIES, SCHEMA
from vigie.policy.loader import check_policies, policy_files

INVALID = Path(__file__).parent / "fixtures" / "invalid"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_example_policy_validates(validator: jsonschema.Draft202012Validator) -> None:
    files = policy_files(EXAMPLE_POLICIES)
    assert len(files) == 4
    for path in files:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], path
    for path in files:
        assert path.read_text().startswith("# yaml-language-server: $schema=")


@pytest.mark.parametrize("case", ["unknown-keys", "bad-actions", "bad-routes", "bad-limits"])
def test_invalid_fixtures_fail_the_schema_too(validator: jsonschema.Draft202012Validator,
                                             case: str) -> None:
    assert check_policies(INVALID / case)
    for path in policy_files(INVALID / case):
        document: Any = yaml.safe_load(path.read_text())
        assert not validator.is_valid(document), path


@pytest.mark.parametrize("action", [
    "keep", "drop", "pseudonymize", {"mask": "last4"}, {"generalize": "department"}])
def test_actions(validator: jsonschema.Draft202012Validator, action: object) -> None:
    policy = {"client": "c", "routes": [{"name": "r", "methods": ["GET"], "path": "/p/{id}",
                                         "response": {"fields": {"a.b[*]": action}}}]}
    assert validator.is_valid(policy)
    policy["routes"][0]["response"]["fields"] = {"a": {"mask": "last3"}}  # type: ignore[index]
    assert not validator.is_valid(policy)
