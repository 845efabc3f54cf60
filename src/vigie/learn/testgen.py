"""Policy tests for a suggested policy: what the client used still works, nothing more.

For each route: a request with synthetic values (one distinct value per field,
so that each check is exact) whose answer must show kept fields as they are and
no trace of dropped, masked, generalized or pseudonymized values; a method the
client never used, a query parameter it never sent and a page larger than it
asked for are refused; and a path it never used is refused. The file runs with
`vigie policy test`.
"""

from __future__ import annotations

from typing import Any

import orjson

from vigie.policy.model import Each, Key, Where
from vigie.policy.purposes import Category, categorize
from vigie.policy.selectors import parse_selector

SYNTHETIC_NIR = "185057800608491"  # the synthetic NIR of the shipped examples
_BIRTH_DATE = "1985-05-17"
_POSTCODE = "75012"
_OTHER_METHOD = {"GET": "DELETE"}
_NEVER_USED = "/vigie-suggest/never-used"


def policy_tests(policy: dict[str, Any]) -> dict[str, Any]:
    routes = policy.get("routes", [])
    cases: list[dict[str, Any]] = []
    issuer = policy.get("issuer")
    for route in routes:
        cases.extend(_route_cases(route, routes, issuer))
    if not _allowed(routes, "GET", _NEVER_USED):
        claims = {"iss": issuer} if issuer is not None else {}
        cases.append({"name": "a path the client never used is refused",
                      "request": {"method": "GET", "path": _NEVER_USED, "claims": claims},
                      "expect": {"status": 403}})
    return {"client": policy["client"], "cases": cases}


def _allowed(routes: list[dict[str, Any]], method: str, path: str) -> bool:
    """Whether some route takes this request (a refusal test must not pick one that is)."""
    wanted = path.split("?")[0].split("/")
    for route in routes:
        methods = set(route["methods"]) | ({"HEAD"} if "GET" in route["methods"] else set())
        template = route["path"].split("/")
        if method in methods and len(template) == len(wanted) and all(
                (t.startswith("{") and w) or t == w for t, w in zip(template, wanted,
                                                                     strict=True)):
            return True
    return False


def _route_cases(route: dict[str, Any], routes: list[dict[str, Any]],
                 issuer: str | None) -> list[dict[str, Any]]:
    name = route["name"]
    path = _concrete(route["path"])
    claims: dict[str, Any] = {"scope": " ".join(route.get("scopes", []))}
    if issuer is not None:
        claims["iss"] = issuer  # a policy pinned to its issuer only serves that issuer's tokens
    method = "GET" if "GET" in route["methods"] else route["methods"][0]
    cases = []
    response = route.get("response")
    if method in ("GET", "HEAD") and response is not None:
        record: dict[str, Any] = {}
        expect: dict[str, Any] = {"status": 200, "contains": [], "not_contains": []}
        for counter, (selector, action) in enumerate(response["fields"].items(), 1):
            value = _value(selector, counter)
            if _place(record, selector, value):  # not where a field is a dict here, a list there
                _expectation(expect, action, value)
        for field_name, claim in (response.get("bind") or {}).items():
            claims[claim] = "Bound001z"
            _place(record, field_name, "Bound001z")
        upstream = _wrap(record, response.get("records", "$"), route)
        if not expect["contains"]:
            del expect["contains"]
        if not expect["not_contains"]:
            del expect["not_contains"]
        cases.append({"name": f"{name}: what the client used is served, in its least form",
                      "request": {"method": method, "path": path, "claims": claims},
                      "upstream": upstream, "expect": expect})
    other = _OTHER_METHOD.get(method, "GET")
    if not _allowed(routes, other, path):
        cases.append({"name": f"{name}: a method the client never used is refused",
                      "request": {"method": other, "path": path, "claims": claims},
                      "expect": {"status": 403}})
    query = route.get("query")
    if query is not None:
        cases.append({"name": f"{name}: a query parameter the client never sent is refused",
                      "request": {"method": method, "path": f"{path}?vigie_unused=1",
                                  "claims": claims},
                      "expect": {"status": 400}})
        for param, maximum in (query.get("max") or {}).items():
            cases.append({"name": f"{name}: a page larger than the client asked for is refused",
                          "request": {"method": method, "path": f"{path}?{param}={maximum + 1}",
                                      "claims": claims},
                          "expect": {"status": 400}})
    return cases


def _concrete(template: str) -> str:
    parts = template.split("/")
    return "/".join("1001" if p.startswith("{") else p for p in parts)


def _value(selector: str, counter: int) -> str:
    steps = parse_selector(selector).steps
    if len(steps) >= 2 and isinstance(steps[-1], Key) and isinstance(steps[-2], Where) \
            and steps[-2].key == steps[-1].name:
        return steps[-2].value  # `identifier[?system=X].system` is X
    category = categorize(selector)
    if category is Category.NIR:
        return SYNTHETIC_NIR
    if category is Category.BIRTH_DATE:
        return _BIRTH_DATE
    if category is Category.POSTCODE:
        return _POSTCODE
    return f"Synth{counter:03d}z"


def _expectation(expect: dict[str, Any], action: Any, value: str) -> None:
    quoted = orjson.dumps(value).decode()
    if action == "keep":
        expect["contains"].append(quoted)
        return
    expect["not_contains"].append(value)
    if action == "pseudonymize":
        expect["contains"].append('"psn-')
    elif isinstance(action, dict) and action.get("generalize") == "year":
        expect["contains"].append(f'"{value[:4]}"')
    elif isinstance(action, dict) and action.get("generalize") == "month":
        expect["contains"].append(f'"{value[:7]}"')
    elif isinstance(action, dict) and action.get("generalize") == "department":
        expect["contains"].append(f'"{value[:2]}"')


def _place(record: dict[str, Any], selector: str, value: str) -> bool:
    """Put `value` where `selector` points, creating the dicts and lists on the way.

    False when an earlier field made that place a value of another kind.
    """
    steps = parse_selector(selector).steps
    node: Any = record
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        if isinstance(step, Key):
            if not isinstance(node, dict):
                return False
            if last:  # `identifier[?system=X].system` finds X already there
                return bool(node.setdefault(step.name, value) == value)
            default: Any = [] if isinstance(steps[index + 1], Each | Where) else {}
            node = node.setdefault(step.name, default)
            if type(node) is not type(default):
                return False
        else:
            if not isinstance(node, list):
                return False
            match = next((element for element in node if isinstance(element, dict) and (
                isinstance(step, Each) or element.get(step.key) == step.value)), None)
            if match is None:
                match = {} if isinstance(step, Each) else {step.key: step.value}
                node.append(match)
            if last:
                return False
            node = match
    return False


def _wrap(record: dict[str, Any], records: str, route: dict[str, Any]) -> dict[str, Any]:
    if records == "$[*]":
        return {"status": 200, "json": [record]}
    if records == "$.items[*]":
        return {"status": 200, "json": {"items": [record]}}
    if records == "$.entry[*].resource":
        return {"status": 200, "content_type": "application/fhir+json",
                "json": {"resourceType": "Bundle", "entry": [{"resource": record}]}}
    if route["path"].endswith(".ndjson"):
        return {"status": 200, "content_type": "application/x-ndjson",
                "body": orjson.dumps(record).decode() + "\n"}
    return {"status": 200, "json": record}
