"""SMART scopes required by a route: v1 and v2 spellings, wildcards, contexts, queries."""

from __future__ import annotations

import pytest

from vigie.policy.smart import parse, satisfied


@pytest.mark.parametrize(("required", "granted"), [
    ("patient/Patient.rs", "patient/Patient.rs"),
    ("patient/Patient.rs", "patient/Patient.read"),  # v1 read = v2 rs
    ("patient/Patient.rs", "patient/*.read"),
    ("patient/Patient.rs", "patient/Patient.cruds"),
    ("patient/Patient.rs", "patient/*.*"),
    ("patient/Patient.r", "patient/Patient.rs"),
    ("patient/Patient.read", "patient/Patient.rs"),
    ("user/Patient.read", "user/Patient.cruds"),
    ("system/*.read", "system/*.rs"),
    ("system/*.read", "system/*.read"),
    ("patient/Patient.c", "patient/Patient.write"),
    ("patient/Observation.rs?category=laboratory", "patient/Observation.rs"),
    ("patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory"),
    ("patient.read", "patient.read"),
])
def test_granted_scopes_that_satisfy(required: str, granted: str) -> None:
    assert satisfied(frozenset({required}), frozenset({"openid", granted}))


@pytest.mark.parametrize(("required", "granted"), [
    ("patient/Patient.rs", "user/Patient.rs"),  # another context
    ("patient/Patient.rs", "system/*.read"),
    ("patient/Patient.rs", "patient/Patient.r"),  # read without search
    ("patient/Patient.rs", "patient/Observation.rs"),
    ("patient/Patient.rs", "patient/Patient.write"),
    ("system/*.read", "system/Patient.read"),  # a required wildcard needs a wildcard
    ("patient/Observation.rs", "patient/Observation.rs?category=laboratory"),  # narrowed
    ("patient/Patient.rs", "patient/Patient.sr"),  # not a v2 spelling: never matches
    ("patient.read", "patient/Patient.read"),  # opaque names match exactly
    ("patient/Patient.rs", "patient.read"),
    ("patient/Patient.rs", "Patient.rs"),
])
def test_granted_scopes_that_do_not(required: str, granted: str) -> None:
    assert not satisfied(frozenset({required}), frozenset({granted}))


def test_every_required_scope_must_be_satisfied() -> None:
    required = frozenset({"patient/Patient.rs", "launch/patient"})
    assert not satisfied(required, frozenset({"patient/Patient.rs"}))
    assert satisfied(required, frozenset({"patient/*.read", "launch/patient"}))


@pytest.mark.parametrize("malformed", ["patient/Patient.x", "patient/Patient.", "patient/.rs",
                                       "patient/Patient.sr", "clinic/Patient.rs",
                                       "patient/patient.rs"])
def test_malformed_smart_scopes_do_not_parse(malformed: str) -> None:
    assert parse(malformed) is None
