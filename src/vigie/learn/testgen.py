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


def policy_tests(policy: dict[str, Any]) -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    for route in policy.get("routes", []):
        cases.extend(_route_cases(route))
    cases.append({"name": "a path the client never used is refused",
                  "request": {"method": "GET", "path": "/vigie-suggest/never-used"},
                  "expect": {"status": 403}})
    return {"client": policy["client"], "cases": cases}


def _route_cases(route: dict[str, Any]) -> list[dict[str, Any]]:
    name = route["name"]
    path = _concrete(route["path"])
    claims: dict[str, Any] = {"scope": " ".join(route.get("scopes", []))}
    method = "GET" if "GET" in route["methods"] else route["methods"][0]
    cases = []
    response = route.get("response")
    if method in ("GET", "HEAD") and response is not None:
        record: dict[str, Any] = {}
        expect: dict[str, Any] = {"status": 200, "contains": [], "not_contains": []}
        for counter, (selector, action) in enumerate(response["fields"].items(), 1):
            value = _value(selector, counter)
            _place(record, selector, value)
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
    if other not in route["methods"] and not (other == "GET" and "HEAD" in route["methods"]):
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
        expect["contains"].append('"psn_')
    elif isinstance(action, dict) and action.get("generalize") == "year":
        expect["contains"].append(f'"{value[:4]}"')
    elif isinstance(action, dict) and action.get("generalize") == "month":
        expect["contains"].append(f'"{value[:7]}"')
    elif isinstance(action, dict) and action.get("generalize") == "department":
        expect["contains"].append(f'"{value[:2]}"')


def _place(record: dict[str, Any], selector: str, value: str) -> None:
    """Put `value` where `selector` points, creating the dicts and lists on the way."""
    steps = parse_selector(selector).steps
    node: Any = record
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        if isinstance(step, Key):
            if last:
                node[step.name] = value
            else:
                nxt = steps[index + 1]
                default: Any = [] if isinstance(nxt, Each | Where) else {}
                node = node.setdefault(step.name, default)
                if not isinstance(node, dict | list):
                    return
        elif isinstance(node, list):
            match = None
            for element in node:
                if isinstance(step, Each) or (isinstance(element, dict)
                                              and element.get(step.key) == step.value):
                    match = element
                    break
            if match is None:
                match = {} if isinstance(step, Each) else {step.key: step.value}
                node.append(match)
            if last:
                return
            node = match


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
