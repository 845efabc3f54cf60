"""Helpers of the SOC suite: synthetic patients, representative traffic, metric parsing.

`drive_traffic(h)` sends, through a running Harness with `SOC_POLICIES`, one of
every kind of request a SOC must see (allowed, denied, throttled, quarantined,
error; NIRs in fields, text and headers; auth failures of several reasons) and
returns the secrets it used, so that scans can prove none of them leaked.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import Response

from support.harness import AUDIENCE, ISSUER, Harness
from vigie.demo.patients import format_nir, nir_key
from vigie.minimize import nir

SOC_POLICY = """\
client: soc-app
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    scopes: [patient.read]
    response:
      records: "$"
      fields:
        id: keep
        last_name: drop
        first_name: {mask: all}
        nir: {mask: last2}
        birth_date: {generalize: year}
        notes: keep
      unlisted: drop
  - name: search-patients
    methods: [GET]
    path: /patients
    scopes: [patient.search]
    query: {allowed: [page, page_size], max: {page_size: 50}}
    response:
      records: "$.items[*]"
      fields: {id: keep, birth_date: {generalize: year}}
      unlisted: drop
  - name: letter
    methods: [GET]
    path: /letters/{id}
    scopes: [patient.read]
limits:
  requests: 100000/minute
  records: 1000000/hour
  distinct_patients: 100000/day
  enumeration: true
"""

TIGHT_POLICY = """\
client: tight-app
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{id}
    scopes: [patient.read]
    response:
      records: "$"
      fields: {id: keep}
limits:
  requests: 2/minute
  enumeration: false
"""

SOC_POLICIES = {"soc-app.yaml": SOC_POLICY, "tight-app.yaml": TIGHT_POLICY}
ROUTES = {"read-patient", "search-patients", "letter"}
DECOY = "990001"
# The harness writes `guard:` itself; the environment adds to it (VIGIE_* wins over the file).
GUARD_ENV = {"VIGIE_GUARD__DECOY_IDS": f"['{DECOY}']"}

NIR_STYLES = ("compact", "spaced", "dotted", "dashed", "key_separated")
LAST_NAMES = ("Quennec", "Morvandiau", "Belcastel", "Trouvelot", "Aubrignac", "Ferrandou")
FIRST_NAMES = ("Anaïs", "Gwenaël", "Maëlys", "Théophane", "Clervie", "Ambroise")


def synthetic_nir(index: int) -> str:
    """A valid 15-character NIR for `index` (mainland, or Corsica 2A/2B for some)."""
    place = ("75", "2A", "2B", "69", "13")[index % 5]
    nir13 = (f"{1 + index % 2}{(60 + index) % 100:02d}{1 + index % 12:02d}{place}"
             f"{100 + index % 800:03d}{1 + index % 998:03d}")
    return nir13 + nir_key(nir13)


def synthetic_patient(index: int) -> dict[str, Any]:
    """A record with its NIR whole, another NIR formatted inside the notes, and names."""
    other = synthetic_nir(index + 1000)
    return {
        "id": str(index),
        "nir": synthetic_nir(index),
        "last_name": LAST_NAMES[index % len(LAST_NAMES)],
        "first_name": FIRST_NAMES[index % len(FIRST_NAMES)],
        "birth_date": f"19{60 + index % 40}-0{1 + index % 9}-1{index % 10}",
        "notes": f"Assuré {format_nir(other, NIR_STYLES[index % 5])}, rappel mardi",
        "phone": "06 12 34 56 78",
    }


async def patient_upstream(request: Request) -> Response:
    """The legacy API of the suite: patients by id, searches, letters; NIRs everywhere."""
    path = request.url.path
    tail = path.rsplit("/", 1)[-1]
    index = int(tail) if tail.isdigit() and len(tail) < 9 else 7
    headers = {"x-insured": format_nir(synthetic_nir(index + 2000), "spaced")}
    if path.startswith("/letters/"):
        text = f"Madame {LAST_NAMES[index % 6]}, n° {format_nir(synthetic_nir(index), 'dotted')}"
        return Response(text.encode(), media_type="text/plain", headers=headers)
    if path == "/patients":
        items = [synthetic_patient(i) for i in range(index, index + 3)]
        return Response(orjson.dumps({"items": items}), media_type="application/json")
    if tail == "broken":
        return Response(b'{"id": "1", "nir": ', media_type="application/json")
    if tail == "gone":
        return Response(b'{"detail": "no such patient"}', status_code=404,
                        media_type="application/json")
    record = synthetic_patient(index)
    record["id"] = tail
    return Response(orjson.dumps(record), media_type="application/json", headers=headers)


@dataclass
class Traffic:
    """What a traffic run used (to scan for) and what each client actually received."""

    nirs: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    subjects: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    statuses: list[int] = field(default_factory=list)


def foreign_token(client: str, **overrides: Any) -> str:
    """A well-formed token signed by a key the proxy does not trust."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "azp": client, "sub": "intruder", "iat": now,
              "nbf": now, "exp": now + 300, "scope": "patient.read", **overrides}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def drive_traffic(h: Harness, *, users: int = 6, reads: int = 36, seed: int = 7) -> Traffic:
    """One of every kind of request through the proxy; returns the secrets it used."""
    h.upstream.handler = patient_upstream
    rng = random.Random(seed)  # noqa: S311 - test traffic
    seen = Traffic(names=set(LAST_NAMES) | set(FIRST_NAMES))
    for index in range(3000):
        seen.nirs.add(synthetic_nir(index))
    ids = rng.sample(range(10_000, 100_000), reads)  # far apart: no sequential walk

    def send(path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        if token is not None:
            seen.tokens.add(token)
        response = h.get(path, token, **kwargs)
        seen.statuses.append(response.status_code)
        return response

    scopes = "patient.read patient.search"
    for n, patient_id in enumerate(ids):
        subject = f"dr-{rng.randrange(10**6):06d}-{n % users}"
        seen.subjects.add(subject)
        seen.ids.add(str(patient_id))
        token = h.token("soc-app", sub=subject, scope=scopes)
        nir_header = format_nir(synthetic_nir(patient_id), NIR_STYLES[n % 5])
        send(f"/patients/{patient_id}", token, headers={"x-patient-nir": nir_header,
                                                         "x-request-id": f"soc-{n}"})
    token = h.token("soc-app", sub="dr-letters", scope=scopes)
    seen.subjects.add("dr-letters")
    send("/letters/12", token)
    send("/patients?page=2&page_size=3", token)
    send("/patients/gone", token)  # upstream 404
    send("/patients/broken", token)  # uninspectable body: 502, decision error
    send(f"/patients?page=1&last_name={LAST_NAMES[0]}&nir={synthetic_nir(5)}", token)  # 400
    send("/patients/1", h.token("soc-app", sub="dr-noscope", scope="other"))  # 403
    send("/patients/2", h.token("ghost-app", sub="dr-ghost", scope=scopes))  # unknown client
    send(f"/patients/{synthetic_nir(9)}", None)  # 401 missing
    send("/patients/3", h.token("soc-app", sub="dr-late", scope=scopes, lifetime=-120))
    send("/patients/4", foreign_token("soc-app"))  # signature
    send("/patients/5", h.token("soc-app", sub="dr-aud", scope=scopes, aud="elsewhere"))
    send("/patients/6", h.token("soc-app", sub="dr-iss", scope=scopes, iss="https://evil"))
    seen.subjects |= {"dr-noscope", "dr-ghost", "dr-late", "dr-aud", "dr-iss"}
    tight = h.token("tight-app", sub="dr-tight", scope="patient.read")
    seen.subjects.add("dr-tight")
    for _ in range(3):
        send("/patients/8", tight)  # the third one is throttled
    decoy_token = h.token("soc-app", sub="dr-decoy", scope=scopes)
    seen.subjects.add("dr-decoy")
    send(f"/patients/{DECOY}", decoy_token)  # quarantined at once
    send("/patients/9", decoy_token)  # still quarantined
    return seen


@dataclass(frozen=True)
class Series:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> list[Series]:
    return [Series(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when none)."""
    return sum(s.value for s in parse(text)
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def label_values(text: str, prefix: str = "vigie_") -> dict[str, set[str]]:
    """Every value each label name takes over the series starting with `prefix`."""
    found: dict[str, set[str]] = {}
    for s in parse(text):
        if s.name.startswith(prefix):
            for key, val in s.labels.items():
                found.setdefault(key, set()).add(val)
    return found


def leaks(text: str, traffic: Traffic, *, ids: bool = False) -> list[str]:
    """Every NIR (any format), name, token or subject of `traffic` found in `text`."""
    found = [text[a:b] for a, b in nir.find(text)]
    secrets: Iterable[str] = (*traffic.names, *traffic.tokens, *traffic.subjects)
    found += [secret for secret in secrets if secret in text]
    if ids:
        found += [i for i in traffic.ids if f'"{i}"' in text or f"/{i}" in text]
    return found
