"""Shared, expensive fixtures of the end-to-end authorization tests.

RSA keys are generated once per session; a module shares one running vigie
(`Harness`) when its tests only read state, and tests assert deltas (upstream
requests, counters) rather than absolute values.
"""

from __future__ import annotations

import pytest

from support.harness import Keys
from support.tokens import KeyPair

# Generous limits and no enumeration signal: these suites test authorization, not the guard.
NO_GUARD = """\
limits:
  requests: 1000000/minute
  records: 100000000/hour
  distinct_patients: 10000000/day
  enumeration: false
"""


@pytest.fixture(scope="session")
def hospital_keys() -> Keys:
    """The harness's default issuer key (kid k1): a Keycloak-like hospital IdP."""
    return Keys()


@pytest.fixture(scope="session")
def attacker_key() -> KeyPair:
    return KeyPair.rsa("attacker-1")


@pytest.fixture(scope="session")
def impostor_key() -> KeyPair:
    """An attacker's RSA key published under the hospital's own kid."""
    return KeyPair.rsa("k1")


@pytest.fixture(scope="session")
def psc_key() -> KeyPair:
    return KeyPair.ec("psc-es256-1", alg="ES256")


@pytest.fixture(scope="session")
def rotation_keys() -> tuple[KeyPair, KeyPair]:
    return KeyPair.rsa("rot-2025"), KeyPair.rsa("rot-2026")
