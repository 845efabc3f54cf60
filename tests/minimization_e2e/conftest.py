"""Shared fixtures of the minimization end-to-end tests: one vigie per module, real HTTP.

The policies below exercise every field action and record location of contract
section 3. Tests only read state, or assert deltas (upstream requests, counters,
audit lines), so a module shares one running `Harness`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import Harness, Keys

NO_GUARD = """\
limits:
  requests: 1000000/minute
  records: 100000000/hour
  distinct_patients: 10000000/day
  enumeration: false
"""

# Small, so that the over-limit case costs nothing.
MAX_BYTES = 300_000

PATIENT_FIELDS = """\
        id: keep
        last_name: keep
        nir: {mask: last2}
        phone: {mask: last4}
        secret: {mask: all}
        ins: pseudonymize
        birth_date: {generalize: year}
        admitted: {generalize: month}
        address.postcode: {generalize: department}
        address.city: keep
        telecom[*].value: drop
        telecom[*].system: keep
        identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value: pseudonymize
        identifier[?system=urn:oid:1.2.250.1.213.1.4.8].system: keep
        billing_nir: keep
        notes: keep
        measures: keep
"""


def client_policy(client: str, mode: str = "enforce") -> str:
    return f"""\
client: {client}
mode: {mode}
routes:
  - name: patient
    methods: [GET]
    path: /patients/{{id}}
    scopes: [r]
    response:
      records: "$"
      fields:
{PATIENT_FIELDS}      unlisted: drop
  - name: list
    methods: [GET]
    path: /list
    scopes: [r]
    response:
      records: "$[*]"
      fields:
{PATIENT_FIELDS}      unlisted: drop
  - name: search
    methods: [GET]
    path: /search
    scopes: [r]
    response:
      records: "$.items[*]"
      fields:
{PATIENT_FIELDS}      unlisted: drop
      envelope:
        keep: [total, count, next, meta, envelope]
  - name: bundle
    methods: [GET]
    path: /fhir/Patient
    scopes: [r]
    response:
      records: "$.entry[*].resource"
      fields:
        resourceType: keep
        id: keep
        birthDate: {{generalize: year}}
        identifier[*].value: {{mask: last2}}
      unlisted: drop
  - name: export
    methods: [GET]
    path: /export.ndjson
    scopes: [r]
    response:
      records: "$"
      fields:
{PATIENT_FIELDS}      unlisted: drop
  - name: loose
    methods: [GET]
    path: /loose/{{id}}
    scopes: [r]
    response:
      records: "$"
      fields:
        nir: {{mask: last2}}
      unlisted: keep
  - name: raw
    methods: [GET]
    path: /raw/{{name}}
    scopes: [r]
{NO_GUARD}"""


POLICIES = {
    "mini.yaml": client_policy("mini"),
    "other.yaml": client_policy("other"),
    "watcher.yaml": client_policy("watcher", "report-only"),
}


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[Harness]:
    tmp: Path = tmp_path_factory.mktemp("mini")
    with Harness(tmp, POLICIES, keys=keys,
                 config=f"max_response_bytes: {MAX_BYTES}\n" + NO_GUARD) as harness:
        yield harness


@pytest.fixture(scope="module")
def token(h: Harness) -> str:
    return h.token("mini", scope="r")
