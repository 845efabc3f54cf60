"""Fixtures for the auth tests: two issuers (a hospital Keycloak, a Pro Santé Connect-like
IdP) serving real JWKS over loopback, session-scoped keys, and a movable clock.

`hospital` and `psc` live for the session: tests must not change their servers
(tests about rotation and outages build their own JwksServer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from support.tokens import FakeClock, FakeIssuer, KeyPair
from vigie.auth import Authenticator
from vigie.telemetry.metrics import Metrics

HOSPITAL = "https://idp.chu-exemple.fr/realms/soins"
PSC = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"


@pytest.fixture(scope="session")
def hospital_key() -> KeyPair:
    return KeyPair.rsa("chu-rs256-2025")


@pytest.fixture(scope="session")
def hospital_next_key() -> KeyPair:
    return KeyPair.rsa("chu-rs256-2026")


@pytest.fixture(scope="session")
def psc_key() -> KeyPair:
    return KeyPair.ec("psc-es256", alg="ES256")


@pytest.fixture(scope="session")
def attacker_rsa() -> KeyPair:
    return KeyPair.rsa("chu-rs256-2025")  # same kid as the hospital's real key


@pytest.fixture(scope="session")
def attacker_ec() -> KeyPair:
    return KeyPair.ec("chu-rs256-2025", alg="ES256")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(process_collectors=False)


@pytest.fixture(scope="session")
def hospital(hospital_key: KeyPair) -> Iterator[FakeIssuer]:
    with FakeIssuer(HOSPITAL, hospital_key, audience="patient-api",
                    algorithms=("RS256",)) as issuer:
        yield issuer


@pytest.fixture(scope="session")
def psc(psc_key: KeyPair) -> Iterator[FakeIssuer]:
    with FakeIssuer(PSC, psc_key, audience="dpi-connect", client_claim="azp",
                    algorithms=("ES256",)) as issuer:
        yield issuer


@pytest.fixture
async def auth(hospital: FakeIssuer, psc: FakeIssuer, metrics: Metrics,
               clock: FakeClock) -> AsyncIterator[Authenticator]:
    authenticator = Authenticator([hospital.settings(), psc.settings()], metrics, clock=clock)
    await authenticator.start()
    yield authenticator
    await authenticator.close()
