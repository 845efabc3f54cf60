"""Factories for minimizer tests: rules, grants, identities, upstream responses, NIR vectors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from vigie.context import Decision, Grant, Identity
from vigie.messages import OutgoingResponse, UpstreamResponse
from vigie.minimize import Minimizer
from vigie.policy.model import (
    Action,
    Binding,
    ClientPolicy,
    Envelope,
    FieldRule,
    Generalization,
    MaskStyle,
    Mode,
    ResponseRule,
    Route,
    Unlisted,
)
from vigie.policy.selectors import parse_location, parse_selector
from vigie.pseudonym import Pseudonymizer
from vigie.telemetry.metrics import Metrics

# A copy of shared/data/nir_vectors.json: the tests need nothing outside the repository.
VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "nir_vectors.json"
CLIENT = "test-client"
ROUTE = "read-patient"
PSEUDONYM_KEY = b"k" * 32
MAX = 1_000_000


def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
    return data


def valid_forms() -> list[tuple[str, str, str]]:
    """(vector id, format name, written form) for every valid vector and format."""
    return [(v["id"], name, form) for v in vectors()["valid"]
            for name, form in v["formats"].items()]


def invalid_numbers(ids: Iterable[str] | None = None) -> list[tuple[str, str]]:
    wanted = set(ids) if ids is not None else None
    return [(v["id"], v["nir"]) for v in vectors()["invalid"]
            if wanted is None or v["id"] in wanted]


WRONG_KEY_IDS = ["I01", "I02", "I03", "I04", "I14", "I15", "I16", "I17", "I18", "I19", "I20"]


def field_rule(selector: str, spec: str | Mapping[str, str]) -> FieldRule:
    """`spec` as in a policy: "keep", "drop", "pseudonymize", {"mask": "last2"}, ..."""
    sel = parse_selector(selector)
    if isinstance(spec, str):
        return FieldRule(sel, Action(spec))
    if "mask" in spec:
        return FieldRule(sel, Action.MASK, mask=MaskStyle(spec["mask"]))
    return FieldRule(sel, Action.GENERALIZE, generalize=Generalization(spec["generalize"]))


def response_rule(records: str = "$", fields: Mapping[str, Any] | None = None,
                  unlisted: str = "drop",
                  bind: Mapping[str, str] | None = None,
                  envelope: Iterable[str] | None = None,
                  envelope_unlisted: str = "drop") -> ResponseRule:
    """`envelope`: the kept envelope selectors (None: the defaults)."""
    return ResponseRule(
        records=parse_location(records),
        fields=tuple(field_rule(s, a) for s, a in (fields or {}).items()),
        unlisted=Unlisted(unlisted),
        bind=tuple(Binding(parse_selector(f), claim) for f, claim in (bind or {}).items()),
        envelope=None if envelope is None else Envelope(
            tuple(parse_selector(s) for s in envelope), Unlisted(envelope_unlisted)),
    )


def grant(response: ResponseRule | None = None, *, mode: Mode = Mode.ENFORCE,
          route_name: str = ROUTE) -> Grant:
    route = Route(name=route_name, methods=frozenset({"GET"}), path="/patients/{id}",
                  segments=("patients", None), params=("id",), response=response)
    policy = ClientPolicy(client=CLIENT, routes=(route,))
    return Grant(policy=policy, route=route, path="/patients/42", query="", params={"id": "42"},
                 mode=mode)


def identity(**claims: Any) -> Identity:
    return Identity(issuer="https://issuer.test", client=CLIENT, subject="doctor-1",
                    scopes=frozenset({"patient.read"}), claims=claims)


def decision(method: str = "GET") -> Decision:
    return Decision(request_id="req-1", method=method)


def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), process_collectors=False)


def minimizer(max_bytes: int = MAX, *, with_pseudonyms: bool = True,
              registry: Metrics | None = None) -> Minimizer:
    pseudonymizer = Pseudonymizer(PSEUDONYM_KEY) if with_pseudonyms else None
    return Minimizer(registry or metrics(), pseudonymizer, max_bytes)


async def chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def upstream(body: bytes | Iterable[bytes] | AsyncIterator[bytes] = b"", *, status: int = 200,
             content_type: str | None = "application/json",
             headers: Iterable[tuple[str, str]] = ()) -> UpstreamResponse:
    all_headers = [(k.lower(), v) for k, v in headers]
    if content_type is not None:
        all_headers.append(("content-type", content_type))
    if isinstance(body, bytes):
        source: AsyncIterator[bytes] = chunks([body])
    elif hasattr(body, "__anext__"):
        source = body  # type: ignore[assignment]
    else:
        source = chunks(body)  # type: ignore[arg-type]
    return UpstreamResponse(status=status, headers=all_headers, body=source)


def json_upstream(document: Any, **kwargs: Any) -> UpstreamResponse:
    return upstream(orjson.dumps(document), **kwargs)


async def body_of(response: OutgoingResponse) -> bytes:
    if isinstance(response.body, bytes | bytearray):
        return bytes(response.body)
    return b"".join([piece async for piece in response.body])


async def run(document: Any, rule: ResponseRule | None = None, *, mode: Mode = Mode.ENFORCE,
              claims: Mapping[str, Any] | None = None, decision_: Decision | None = None,
              **kwargs: Any) -> tuple[Any, Decision]:
    """Minimize one JSON document; (parsed output, decision)."""
    dec = decision_ or decision()
    response = await minimizer().minimize(json_upstream(document, **kwargs), grant(rule, mode=mode),
                                          identity(**(claims or {})), dec)
    return orjson.loads(await body_of(response)), dec


def header(response: OutgoingResponse, name: str) -> str | None:
    for key, value in response.headers:
        if key == name:
            return value
    return None


def disguised_forms() -> list[tuple[str, str, str, str]]:
    """(vector id, NIR, disguise name, written form) for every disguised vector."""
    return [(v["vector"], v["nir"], name, form) for v in vectors()["disguised"]
            for name, form in v["forms"].items()]


def disguised_wrong_keys() -> list[tuple[str, str, str]]:
    """(disguise name, number with a wrong key, written form): never a NIR."""
    return [(name, v["number"], form) for v in vectors()["disguised_wrong_key"]
            for name, form in v["forms"].items()]
