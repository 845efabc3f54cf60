"""What a suggested policy changes against the current one, in words a reviewer reads first.

`vigie policy suggest --diff POLICY` prints these lines, then the unified diff
of the two files. Routes are paired by name, then by path. `deployment_warnings`
says when the audit's route names do not belong to the current policy.
"""

from __future__ import annotations

from typing import Any

from vigie.learn.evidence import Evidence
from vigie.learn.suggest import rule_action
from vigie.policy.model import ClientPolicy, Route
from vigie.proxy import NO_CLIENT, UNMATCHED


def summarize(current: ClientPolicy, suggested: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    new_routes = {route["name"]: route for route in suggested.get("routes", [])}
    by_path = {route["path"]: route for route in new_routes.values()}
    paired: set[str] = set()
    for old in current.routes:
        new = new_routes.get(old.name) or by_path.get(old.path)
        if new is None:
            lines.append(f"route {old.name} ({old.path}): removed, never used")
            continue
        paired.add(new["name"])
        lines += [f"route {old.name}: {change}" for change in _route_changes(old, new)]
    for name, route in new_routes.items():
        if name not in paired:
            lines.append(f"route {name} ({route['path']}): added, used but not in the policy")
    for key in ("requests", "records", "distinct_patients"):
        before = getattr(current.limits, key)
        after = suggested.get("limits", {}).get(key)
        if str(before) != str(after):
            lines.append(f"limits.{key}: {before or 'global'} -> {after}")
    if current.mode is None or str(current.mode) != suggested.get("mode"):
        lines.append(f"mode: {current.mode or 'global'} -> {suggested.get('mode')}")
    return lines


def _route_changes(old: Route, new: dict[str, Any]) -> list[str]:
    changes = []
    if sorted(old.methods) != new["methods"]:
        changes.append(f"methods {sorted(old.methods)} -> {new['methods']}")
    old_query = sorted(old.query.allowed) if old.query is not None else "any"
    new_query = new.get("query", {}).get("allowed", "any")
    if old_query != new_query:
        changes.append(f"query {old_query} -> {new_query}")
    old_fields = {r.selector.text: rule_action(r) for r in old.response.fields} \
        if old.response is not None else {}
    new_fields = new.get("response", {}).get("fields", {})
    for selector in sorted(set(old_fields) | set(new_fields)):
        before, after = old_fields.get(selector, "unlisted"), new_fields.get(selector, "unlisted")
        if before != after:
            changes.append(f"field {selector}: {_text(before)} -> {_text(after)}")
    return changes


def _text(action: Any) -> str:
    if isinstance(action, dict):
        ((kind, argument),) = action.items()
        return f"{kind} {argument}"
    return str(action)


def deployment_warnings(evidence: Evidence, current: ClientPolicy | None) -> list[str]:
    """Route names in the audit that the current policy does not know: another deployment?"""
    if current is None:
        return []
    known = {route.name for route in current.routes}
    used = {name for name in evidence.routes if name not in (UNMATCHED, NO_CLIENT)}
    unknown = sorted(used - known)
    if unknown and not used & known:
        return [f"none of the routes in the audit ({', '.join(unknown[:5])}) is in "
                f"{current.source}: an audit from another deployment?"]
    if unknown:
        return [f"routes in the audit unknown to {current.source}: {', '.join(unknown[:5])} "
                "(an older policy?)"]
    return []
