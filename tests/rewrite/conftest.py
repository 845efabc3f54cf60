"""Two vigies per module: one with `public_url` (and X-Forwarded-* sent upstream), one
that derives its public address per request and trusts 127.0.0.1 as a front proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.harness import Harness, Keys

POLICY = """\
client: app
routes:
  - name: patient
    methods: [GET, POST]
    path: /patients/{id}
    scopes: [patient.read]
    response:
      records: "$"
      fields: {id: keep, name: keep, link: keep, photo: keep}
  - name: patients
    methods: [GET]
    path: /patients
    scopes: [patient.read]
    response:
      records: "$.items[*]"
      fields: {id: keep, practice_id: keep}
      bind: {practice_id: practice_id}
  - name: fhir-search
    methods: [GET]
    path: /fhir/Patient
    scopes: [patient/Patient.rs]
    response:
      records: "$.entry[*].resource"
      fields: {resourceType: keep, id: keep, managingOrganization.identifier.value: keep}
      bind: {managingOrganization.identifier.value: practice_id}
  - name: files
    methods: [GET]
    path: /files/{name}
limits:
  requests: 100000/minute
  records: 1000000/hour
  distinct_patients: 100000/day
  enumeration: false
"""
PUBLIC = "https://vigie.example/legacy"


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("links-public")
    config = f"public_url: {PUBLIC}\nupstream_forwarded_headers: true\n"
    with Harness(tmp, {"app.yaml": POLICY}, config=config, keys=keys) as h:
        yield h


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("links-derived")
    with Harness(tmp, {"app.yaml": POLICY}, config="trusted_proxies: [127.0.0.1/32]\n",
                 keys=keys) as h:
        yield h
