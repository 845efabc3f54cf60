"""Several trusted issuers at once, through the proxy: each client reaches only its routes.

- the hospital's Keycloak-like IdP (RS256, client in `azp`): the harness's default issuer;
- a Pro Santé Connect-like IdP (ES256, client in `client_id`, practitioner claims such
  as `SubjectNameID`, scopes as an `scp` list);
- a machine-to-machine IdP whose tokens name the client in `sub`.
Client names are chosen by each issuer, so with several issuers every policy
names its issuer (`issuer:`, start-up refuses a policy without one: see
tests/policy/test_policy_issuers.py); a token from another issuer naming that
client is then an unknown client.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from authz.conftest import NO_GUARD
from support.authz import refusal
from support.harness import ISSUER, Harness, Keys
from support.tokens import FakeIssuer, KeyPair, claims

PSC = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"
M2M = "https://sso.batch.example/oauth2"

GP = f"""\
client: gp-frontdesk
issuer: {ISSUER}
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{{id}}
    scopes: [patient.read]
""" + NO_GUARD
TELECONSULT = f"""\
client: psc-teleconsult
issuer: {PSC}
routes:
  - name: own-agenda
    methods: [GET]
    path: /practitioners/{{rpps}}/agenda
    scopes: [agenda.read]
    response:
      records: "$.slots[*]"
      fields: {{start: keep, rpps: keep}}
      bind: {{rpps: SubjectNameID}}
""" + NO_GUARD
BATCH = f"""\
client: nightly-export
issuer: {M2M}
routes:
  - name: exports
    methods: [GET]
    path: /exports/{{id}}
""" + NO_GUARD


@pytest.fixture(scope="module")
def psc(psc_key: KeyPair) -> Iterator[FakeIssuer]:
    with FakeIssuer(PSC, psc_key, client_claim="client_id") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def m2m() -> Iterator[FakeIssuer]:
    with FakeIssuer(M2M, KeyPair.ec("m2m-1", alg="ES256"), client_claim="sub") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, hospital_keys: Keys, psc: FakeIssuer,
      m2m: FakeIssuer) -> Iterator[Harness]:
    policies = {"gp.yaml": GP, "teleconsult.yaml": TELECONSULT, "batch.yaml": BATCH}
    with Harness(tmp_path_factory.mktemp("issuers"), policies, keys=hospital_keys,
                 issuers=[psc, m2m]) as harness:
        harness.upstream.reply(json={"slots": []})
        yield harness


def psc_token(psc: FakeIssuer, **extra: object) -> str:
    claims = {"client": "psc-teleconsult", "subject": "f:550dc1c8-d97b:899700218896",
              "scope": "openid", "scp": ["agenda.read"], "SubjectNameID": "899700218896",
              "SubjectRefPro": {"codeCivilite": "DR"}, **extra}
    return psc.token(**claims)


def gp_token(h: Harness, **extra: object) -> str:
    return h.token("gp-frontdesk", scope="patient.read", **extra)  # type: ignore[arg-type]


def passes(h: Harness, path: str, token: str) -> None:
    forwarded = len(h.upstream.requests)
    response = h.get(path, token)
    assert response.status_code == 200, (path, response.text)
    assert len(h.upstream.requests) == forwarded + 1
    assert h.upstream.requests[-1].path == path


def test_each_client_reaches_its_own_routes(h: Harness, psc: FakeIssuer,
                                            m2m: FakeIssuer) -> None:
    passes(h, "/patients/42", gp_token(h))
    passes(h, "/practitioners/899700218896/agenda", psc_token(psc))
    passes(h, "/exports/2025-01", m2m.token(subject="nightly-export", scope=None))
    assert h.upstream.requests[-1].headers["x-vigie-client"] == "nightly-export"


@pytest.mark.parametrize("path", ["/practitioners/899700218896/agenda", "/exports/1"])
def test_the_hospital_client_reaches_no_other_route(h: Harness, path: str) -> None:
    refusal(h, lambda: h.get(path, gp_token(h, scp=["agenda.read"])), 403)


@pytest.mark.parametrize("path", ["/patients/42", "/exports/1"])
def test_the_psc_client_reaches_no_other_route(h: Harness, psc: FakeIssuer, path: str) -> None:
    token = psc_token(psc, scp=["agenda.read", "patient.read"])
    refusal(h, lambda: h.get(path, token), 403)


@pytest.mark.parametrize("path", ["/patients/42", "/practitioners/899700218896/agenda"])
def test_the_batch_client_reaches_no_other_route(h: Harness, m2m: FakeIssuer,
                                                 path: str) -> None:
    token = m2m.token(subject="nightly-export", scope="patient.read agenda.read")
    refusal(h, lambda: h.get(path, token), 403)


def test_a_client_name_from_another_issuer_is_an_unknown_client(
        h: Harness, psc: FakeIssuer, m2m: FakeIssuer) -> None:
    # The hospital's IdP mints a token naming the PSC client (and the other way round).
    forged = h.token("psc-teleconsult", scope="", scp=["agenda.read"],
                     SubjectNameID="899700218896")
    refusal(h, lambda: h.get("/practitioners/899700218896/agenda", forged), 403,
            reason="unknown_client")
    forged = psc.token(client="gp-frontdesk", scope="patient.read")
    refusal(h, lambda: h.get("/patients/42", forged), 403, reason="unknown_client")
    # A machine account that happens to be called like a pinned client.
    forged = m2m.token(subject="gp-frontdesk", scope="patient.read")
    refusal(h, lambda: h.get("/patients/42", forged), 403, reason="unknown_client")
    # The other realm's `nightly-export` is not this one's.
    forged = psc.token(client="nightly-export", scope="")
    refusal(h, lambda: h.get("/exports/1", forged), 403, reason="unknown_client")


def test_each_issuer_reads_only_its_own_client_claim(h: Harness, psc: FakeIssuer) -> None:
    # A PSC token naming its client in `azp` only: PSC's client claim is client_id.
    token = psc.token(client_claim="azp", client="psc-teleconsult", scp=["agenda.read"])
    refusal(h, lambda: h.get("/practitioners/899700218896/agenda", token), 401,
            reason="claim_missing")
    # A hospital token with client_id but another azp: azp is what counts there.
    token = h.token("gp-frontdesk", scope="patient.read", client_id="psc-teleconsult")
    passes(h, "/patients/42", token)
    assert h.upstream.requests[-1].headers["x-vigie-client"] == "gp-frontdesk"


def test_an_issuers_key_is_not_accepted_for_another_issuer(h: Harness, psc: FakeIssuer) -> None:
    # Signed by PSC's key, claiming the hospital issuer: ES256 is not in its allowlist.
    token = psc.key.mint(claims(issuer=ISSUER, client="gp-frontdesk"))
    refusal(h, lambda: h.get("/patients/42", token), 401, reason="algorithm")
    # The PSC issuer with the hospital's kid: PSC's key set has no such key.
    token = psc.token(key=KeyPair.ec("k1", alg="ES256"), client="psc-teleconsult")
    refusal(h, lambda: h.get("/practitioners/899700218896/agenda", token), 401,
            reason="unknown_kid")


def test_psc_object_binding_uses_its_practitioner_claim(h: Harness, psc: FakeIssuer) -> None:
    h.upstream.reply(json={"slots": [{"start": "09:00", "rpps": "899700218896"},
                                     {"start": "10:00", "rpps": "810000000000"}]})
    try:
        response = h.get("/practitioners/899700218896/agenda", psc_token(psc))
    finally:
        h.upstream.reply(json={"slots": []})
    assert response.status_code == 200
    assert response.json() == {"slots": [{"start": "09:00", "rpps": "899700218896"}]}
