"""Contract section 3, route keys `reserve: N` and `patient:`: what one admission reserves."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.policies import load_text, minimal_policy, write_policies
from vigie.guard.reservation import plan_route
from vigie.policy.loader import PolicyError, check_policies, load_policies

ROUTES = """\
  - name: export
    methods: [GET]
    path: /exports/{batch}
    scopes: [patient.read]
    patient: false
    reserve: {reserve}
    response:
      records: "$.items[*]"
      fields:
        id: keep
  - name: read
    methods: [GET]
    path: /patients/{id}
    scopes: [patient.read]
    response:
      records: "$"
      fields:
        id: keep
"""


def _policy(reserve: str) -> str:
    return minimal_policy(routes=ROUTES.replace("{reserve}", reserve))


def test_reserve_sets_the_records_held_at_admission(tmp_path: Path) -> None:
    policy = load_text(tmp_path, _policy("25")).get("c1")
    assert policy is not None
    export, read = policy.routes
    plan = plan_route(export)
    assert (plan.records, plan.patients, plan.patient_param) == (25, 25, None)
    inferred = plan_route(read)  # no key: one record, the patient named by `{id}`
    assert (inferred.records, inferred.patients, inferred.patient_param) == (1, 0, "id")


@pytest.mark.parametrize("bad", ["0", "-3", "true", "many"])
def test_a_reserve_that_is_not_a_positive_integer_is_refused(tmp_path: Path,
                                                               bad: str) -> None:
    folder = write_policies(tmp_path, {"policy.yaml": _policy(bad)})
    errors = check_policies(folder)
    assert len(errors) == 1 and "reserve" in errors[0] and "policy.yaml:" in errors[0], errors
    assert "must be a positive integer" in errors[0]
    with pytest.raises(PolicyError):
        load_policies(folder)
