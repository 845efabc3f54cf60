"""Fixtures for end-to-end proxy tests: one harness per test, real HTTP everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import Harness

POLICY = """\
client: app
routes:
  - name: items
    methods: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]
    path: /items/{id}
    scopes: [items]
    request: {body: allowed}  # a body on any method, GET included: declared, so forwarded
  - name: item-list
    methods: [GET, POST]
    path: /items
    scopes: [items]
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    scopes: [patient.read]
    response:
      records: "$"
      fields:
        id: keep
        last_name: keep
        nir: {mask: last2}
        birth_date: {generalize: year}
  - name: slow
    methods: [GET]
    path: /slow
limits:
  requests: 100000/minute
  records: 1000000/hour
  distinct_patients: 100000/day
  enumeration: false
"""


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path, {"app.yaml": POLICY}) as h:
        yield h


@pytest.fixture
def token(harness: Harness) -> str:
    return harness.token("app", scope="items patient.read")
