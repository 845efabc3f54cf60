"""`vigie policy explain`: say in plain words what the policies do with one request.

Uses the same normalization and matching code as the proxy (`paths`,
`policy.authorize`), so the explanation cannot drift from the decision. Token
claims are not known here: scopes and bindings are listed as requirements.
"""

from __future__ import annotations

from pathlib import Path

from vigie.errors import BadRequest
from vigie.paths import check_query, normalize
from vigie.policy.authorize import (
    check_query_rule,
    match_route,
    method_allowed,
    path_matches,
    path_params,
    split_path,
)
from vigie.policy.loader import load_policies
from vigie.policy.model import (
    DEFAULT_ENVELOPE_KEEP,
    Action,
    ClientPolicy,
    FieldRule,
    ResponseRule,
    Route,
    Unlisted,
)

_EXAMPLES = {
    "year": '"1985-05-17" -> "1985"',
    "month": '"1985-05-17" -> "1985-05"',
    "department": '"75012" -> "75"',
    "last2": '"185057800608491" -> "*************91"',
    "last4": '"185057800608491" -> "***********8491"',
    "all": '"185057800608491" -> "***************"',
}
NIR_RULE = ("NIR rule: any other string or number containing a valid NIR, anywhere in the body "
            "(JSON keys, free text, non-JSON bodies) or in a header, is masked; only a field "
            "whose action is `keep` and whose whole value is one NIR passes unchanged.")


def explain(folder: Path | str, client: str, method: str, path: str) -> str:
    """A readable account of how the policies in `folder` treat one request."""
    policies = load_policies(Path(folder))
    method = method.upper()
    raw_path, _, query = path.partition("?")
    out = [f"request: {method} {path}", f"client: {client}"]
    policy = policies.get(client)
    if policy is None:
        known = ", ".join(sorted(policies.clients)) or "none"
        out.append(f"no policy for client {client!r}: every request is refused (403 "
                   f"unknown_client). Clients with a policy: {known}.")
        return "\n".join(out)
    out.append(f"policy: {policy.source}" + (f" — {policy.description}"
                                              if policy.description else ""))
    out.append(f"mode: {policy.mode} (set by this policy)" if policy.mode
               else "mode: the global setting (vigie.yaml `mode`)")
    try:
        normal = normalize(raw_path)
    except BadRequest as exc:
        out.append(f"path refused before matching (400): {exc.detail}")
        return "\n".join(out)
    if normal != raw_path:
        out.append(f"normalized path: {normal} (the upstream would receive this)")
    segments = split_path(normal)
    route = match_route(policy, method, segments)
    if route is None:
        out.append("no route matched: refused (403 no_route). Routes tried, in file order:")
        out.extend(f"  - {r.name} (line {r.line}): {_mismatch(r, method, segments)}"
                   for r in policy.routes)
        return "\n".join(out)
    out.extend(_tried_before(policy, route, method, segments))
    params = ", ".join(f"{k}={v!r}" for k, v in path_params(route, segments).items())
    out.append(f"route: {route.name} (line {route.line}) {sorted(route.methods)} {route.path}"
               + (f"  params: {params}" if params else ""))
    scopes = " ".join(sorted(route.scopes))
    out.append(f"scopes required (all): {scopes}" if scopes else "scopes required: none")
    out.extend(_query(route, query))
    out.extend(_response(route))
    return "\n".join(out)


def _mismatch(route: Route, method: str, segments: list[str]) -> str:
    if not method_allowed(route, method):
        return f"method {method} not in {sorted(route.methods)}"
    if len(route.segments) != len(segments):
        return (f"path {route.path} has {len(route.segments)} segment(s), "
                f"the request has {len(segments)}")
    for position, (expected, actual) in enumerate(zip(route.segments, segments, strict=True)):
        if expected is None and not actual:
            return f"segment {position + 1}: a parameter never matches an empty segment"
        if expected is not None and expected != actual:
            return f"segment {position + 1}: {actual!r} is not {expected!r}"
    return "matches"  # unreachable for a route that did not match, kept for safety


def _tried_before(policy: ClientPolicy, chosen: Route, method: str,
                  segments: list[str]) -> list[str]:
    earlier = []
    for route in policy.routes:
        if route is chosen:
            break
        if not (method_allowed(route, method) and path_matches(route, segments)):
            earlier.append(f"  - {route.name} (line {route.line}): "
                           f"{_mismatch(route, method, segments)}")
    return ["routes tried before it:", *earlier] if earlier else []


def _query(route: Route, query: str) -> list[str]:
    rule = route.query
    lines = []
    if rule is None:
        lines.append("query: no rule on this route; a well-formed query is forwarded as is")
    else:
        lines.append(f"query: only {', '.join(sorted(rule.allowed)) or 'no parameters'}; "
                     "each at most once; others refused (400)")
        for name, limit in sorted(rule.max.items()):
            lines.append(f"  {name}: integer, at most {limit}")
    if query:
        try:
            check_query(query)
            if rule is not None:
                check_query_rule(rule, query)
            lines.append(f"  this query ({query}) is accepted")
        except BadRequest as exc:
            lines.append(f"  this query is refused (400): {exc.detail}")
    return lines


def _response(route: Route) -> list[str]:
    rule = route.response
    if rule is None:
        return ["response: no field rules on this route; the body passes unchanged except "
                "for the NIR rule below", NIR_RULE]
    lines = [f"response: records at {rule.records.text}"]
    width = max((len(f.selector.text) for f in rule.fields), default=0)
    lines.append("fields:" if rule.fields else "fields: none listed")
    lines.extend(f"  {f.selector.text.ljust(width)}  {_describe(f)}" for f in rule.fields)
    if rule.unlisted is Unlisted.DROP:
        lines.append("unlisted fields: dropped (removed from every record)")
    else:
        lines.append("unlisted fields: kept (NIR rule still applies)")
    lines.extend(_envelope(rule))
    for binding in rule.bind:
        lines.append(f"bind: record field {binding.field.text} must equal token claim "
                     f"{binding.claim!r}; otherwise the record is withheld (single record: "
                     "404); a missing claim or field never matches")
    lines.append(NIR_RULE)
    return lines


def _envelope(rule: ResponseRule) -> list[str]:
    if not rule.records.steps:
        return ["envelope: none (the whole body is the record)"]
    envelope = rule.envelope
    if envelope is None:
        kept, unlisted, origin = DEFAULT_ENVELOPE_KEEP, Unlisted.DROP, " (default)"
    else:
        kept = tuple(selector.text for selector in envelope.keep)
        unlisted, origin = envelope.unlisted, ""
    fate = "dropped" if unlisted is Unlisted.DROP else "kept (NIR rule still applies)"
    return [f"envelope{origin}: outside the records, kept: {', '.join(kept) or 'nothing'}",
            f"  anything else outside the records: {fate}; an element where a record "
            "should be that looks like a patient record but has none is withheld"]


def _describe(rule: FieldRule) -> str:
    if rule.action is Action.MASK and rule.mask is not None:
        return f"mask {rule.mask.value}   ({_EXAMPLES[rule.mask.value]})"
    if rule.action is Action.GENERALIZE and rule.generalize is not None:
        return f"generalize {rule.generalize.value}   ({_EXAMPLES[rule.generalize.value]})"
    if rule.action is Action.PSEUDONYMIZE:
        return "pseudonymize   (keyed token psn-..., stable for this client only)"
    if rule.action is Action.KEEP:
        return "keep"
    return "drop"
