"""`vigie policy test DIR`: run `*.test.yaml` cases through the real pipeline.

Each case builds the proxy's own stages — authorize, guard, minimize, audit —
around two stand-ins at the I/O seams: the identity comes from the case's
`claims` (policy tests test policies, not token signatures) and the upstream
answers with the case's `upstream` response. Pseudonyms use a fixed test key,
so expected `psn-` values are stable.

Case format (contract section 3, with optional extras):

    request:  {method, path, claims, headers?}   (claims.iss: the token's issuer)
    upstream: {status, json | body, content_type?, headers?}
    expect:   {status, json?, headers?, contains?, not_contains?}
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vigie import yamlsrc
from vigie.config import Settings
from vigie.context import Decision, Identity
from vigie.errors import ConfigError
from vigie.guard import Guard
from vigie.messages import Headers, UpstreamResponse
from vigie.minimize import Minimizer
from vigie.policy.loader import load_policies
from vigie.policy.model import PolicySet
from vigie.proxy import Proxy, Stages
from vigie.pseudonym import Pseudonymizer
from vigie.telemetry.metrics import Metrics
from vigie.telemetry.tracing import Tracing

TEST_PSEUDONYM_KEY = b"vigie-policy-tests-fixed-key-not-a-secret!"
_CASE_KEYS = {"name", "request", "upstream", "expect"}


@dataclass
class Outcome:
    file: str
    name: str
    failures: list[str] = field(default_factory=list)


class _ClaimsIdentity:
    def __init__(self, client: str, claims: Mapping[str, Any]) -> None:
        self._client = client
        self._claims = dict(claims)

    async def authenticate(self, authorization: str | None, *,
                           request_id: str = "-") -> Identity:
        raw_scope = self._claims.get("scope", self._claims.get("scp", ""))
        scopes = raw_scope.split() if isinstance(raw_scope, str) else list(raw_scope)
        # `iss` in the claims selects the issuer (a policy pinned with `issuer:` needs it)
        return Identity(issuer=str(self._claims.get("iss", "policy-test")), client=self._client,
                        subject=str(self._claims.get("sub", "policy-test-user")),
                        scopes=frozenset(scopes), claims=self._claims)


class _CannedUpstream:
    def __init__(self, spec: Mapping[str, Any] | None) -> None:
        self.spec = spec or {"status": 200, "json": {}}
        self.called = False

    async def send(self, method: str, path: str, query: str, headers: Headers,
                   body: bytes | None) -> UpstreamResponse:
        self.called = True
        spec = self.spec
        if "json" in spec:
            payload = orjson.dumps(spec["json"])
            content_type = spec.get("content_type", "application/json")
        else:
            payload = str(spec.get("body", "")).encode()
            content_type = spec.get("content_type", "text/plain; charset=utf-8")
        response_headers = [("content-type", content_type)] + [
            (str(k).lower(), str(v)) for k, v in (spec.get("headers") or {}).items()]

        async def chunks() -> AsyncIterator[bytes]:
            yield payload

        return UpstreamResponse(int(spec.get("status", 200)), response_headers, chunks())

    async def close(self) -> None:
        return None


class _NoAudit:
    def record(self, decision: Decision, principal: str | None) -> None:
        return None

    def close(self) -> None:
        return None


async def _run_case(policies: PolicySet, client: str, case: Mapping[str, Any]) -> dict[str, Any]:
    request = case.get("request") or {}
    metrics = Metrics(process_collectors=False)
    settings = Settings(upstream="http://policy-test.invalid")
    pseudonymizer = Pseudonymizer(TEST_PSEUDONYM_KEY)
    upstream = _CannedUpstream(case.get("upstream"))
    store = _StaticPolicies(policies)
    stages = Stages(
        authenticator=_ClaimsIdentity(client, request.get("claims") or {}),
        policies=store,
        guard=Guard(settings, metrics, pseudonymizer),
        forwarder=upstream,
        minimizer=Minimizer(metrics, pseudonymizer, settings.max_response_bytes),
        audit=_NoAudit(),
        metrics=metrics,
        tracing=Tracing.from_environment({}),
        pseudonymizer=pseudonymizer,
        default_mode=settings.mode,
    )
    path, _, query = str(request.get("path", "/")).partition("?")
    headers = [(b"authorization", b"Bearer policy-test")] + [
        (str(k).lower().encode(), str(v).encode())
        for k, v in (request.get("headers") or {}).items()]
    scope = {"type": "http", "method": str(request.get("method", "GET")).upper(),
             "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "headers": headers, "http_version": "1.1", "scheme": "http"}
    sent: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
            sent["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    await stages.guard.start()
    try:
        await Proxy(stages)(scope, receive, send)
    finally:
        await stages.guard.close()
    sent["upstream_called"] = upstream.called
    return sent


@dataclass
class _StaticPolicies:
    current: PolicySet


def _compare(case: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    expect = case.get("expect") or {}
    failures = []
    if "status" in expect and got.get("status") != expect["status"]:
        failures.append(f"status: expected {expect['status']}, got {got.get('status')}")
    body: bytes = got.get("body", b"")
    if "json" in expect:
        try:
            actual = orjson.loads(body)
        except orjson.JSONDecodeError:
            failures.append("json: the response body is not JSON")
        else:
            if actual != expect["json"]:
                failures.append("json: expected "
                                f"{orjson.dumps(expect['json']).decode()}, got "
                                f"{orjson.dumps(actual).decode()}")
    for name, value in (expect.get("headers") or {}).items():
        actual_header = got.get("headers", {}).get(str(name).lower())
        if actual_header != str(value):
            failures.append(f"header {name}: expected {value!r}, got {actual_header!r}")
    for text in expect.get("contains") or []:
        if str(text).encode() not in body:
            failures.append(f"body does not contain {text!r}")
    for text in expect.get("not_contains") or []:
        if str(text).encode() in body:
            failures.append(f"body contains {text!r}")
    return failures


def run_tests(folder: Path) -> list[Outcome]:
    policies = load_policies(folder)
    outcomes: list[Outcome] = []
    for test_file in sorted(folder.glob("*.test.yaml")):
        data, lines = yamlsrc.load(test_file.read_text(encoding="utf-8"), str(test_file))
        if not isinstance(data, dict) or not isinstance(data.get("client"), str):
            raise lines.error(("client",), "a policy test file needs a 'client'")
        cases = data.get("cases")
        if not isinstance(cases, list):
            raise lines.error(("cases",), "'cases' must be a list")
        for index, case in enumerate(cases):
            if not isinstance(case, dict):
                raise lines.error(("cases", index), "a case must be a mapping")
            for key in case:
                if key not in _CASE_KEYS:
                    raise lines.error(("cases", index, key), f"unknown key {key!r}")
            name = str(case.get("name", f"case {index + 1}"))
            got = asyncio.run(_run_case(policies, data["client"], case))
            where = f"{test_file}:{lines.line(('cases', index))}"
            outcomes.append(Outcome(where, name, _compare(case, got)))
    return outcomes


def run_policy_tests(folder: Path) -> int:
    """Print one line per failure and `N passed, M failed`; exit code 1 on any failure."""
    try:
        outcomes = run_tests(folder)
    except ConfigError as exc:
        print(f"vigie: {exc}")
        return 2
    failed = [o for o in outcomes if o.failures]
    for outcome in failed:
        for failure in outcome.failures:
            print(f"{outcome.file}: {outcome.name}: {failure}")
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
