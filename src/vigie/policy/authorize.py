"""Decide whether one verified request is allowed by its client's policy, and how.

`authorize` runs, in order: client policy lookup (403 unknown_client, also when
the policy names another `issuer`), path
normalization (400), route match (403 no_route), scopes (403 scope; SMART scopes
matched as SMART clients expect, `smart.py`), query
rules (400). It returns the `Grant` the rest of the pipeline works from: the
route, the normalized path the upstream receives, the validated raw query and
the decoded path parameters.

Matching rules (also what `policy explain` reports):
- routes are tried in file order and the first match wins; the loader refuses
  a route that an earlier route fully shadows, so order never hides a route;
- a `{param}` matches exactly one non-empty segment, literals match exactly
  (case-sensitive, after normalization);
- HEAD matches a route that lists HEAD or GET (HEAD is GET without the body);
  every other method must be listed;
- a route without `query` forwards any (well-formed) query; with `query`,
  every parameter must be in `allowed`, may appear only once, and a parameter
  under `max` must be a plain decimal integer not over the maximum.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from vigie.context import Grant, Identity
from vigie.errors import BadRequest, Forbidden
from vigie.paths import check_query, normalize, segment_value
from vigie.policy.model import ClientPolicy, Mode, PolicySet, QueryRule, Route
from vigie.policy.smart import satisfied

MAX_QUERY_FIELDS = 64
_INTEGER = re.compile(r"[0-9]{1,18}")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

RouteIndex = Mapping[int, tuple[Route, ...]]
_INDEXES: dict[int, tuple[ClientPolicy, RouteIndex]] = {}


def authorize(policies: PolicySet, identity: Identity, method: str, raw_path: bytes,
              query_string: bytes, default_mode: Mode) -> Grant:
    """The Grant for this request, or Forbidden / BadRequest saying why not."""
    policy = client_policy(policies, identity)
    if policy is None:
        raise Forbidden("unknown_client")
    path = normalize(raw_path)
    segments = split_path(path)
    route = match_route(policy, method, segments)
    if route is None:
        raise Forbidden("no_route")
    if not satisfied(route.scopes, identity.scopes):
        raise Forbidden("scope", "missing scope")
    query = check_query(query_string)
    if route.query is not None:
        check_query_rule(route.query, query)
    return Grant(
        policy=policy,
        route=route,
        path=path,
        query=query,
        params=path_params(route, segments),
        mode=policy.mode or default_mode,
    )


def client_policy(policies: PolicySet, identity: Identity) -> ClientPolicy | None:
    """The identity's policy; a policy pinned to an issuer ignores every other issuer."""
    policy = policies.get(identity.client)
    if policy is None or (policy.issuer is not None and policy.issuer != identity.issuer):
        return None
    return policy


def split_path(path: str) -> list[str]:
    """The segments of a normalized path: "/" -> [""], "/a/b/" -> ["a", "b", ""]."""
    return path[1:].split("/")


def method_allowed(route: Route, method: str) -> bool:
    return method in route.methods or (method == "HEAD" and "GET" in route.methods)


def path_matches(route: Route, segments: Sequence[str]) -> bool:
    if len(route.segments) != len(segments):
        return False
    for expected, actual in zip(route.segments, segments, strict=True):
        if expected is None:
            if not actual:
                return False
        elif expected != actual:
            return False
    return True


def match_route(policy: ClientPolicy, method: str, segments: Sequence[str]) -> Route | None:
    """The first route of `policy`, in file order, that matches method and path."""
    for route in route_index(policy).get(len(segments), ()):
        if method_allowed(route, method) and path_matches(route, segments):
            return route
    return None


def path_params(route: Route, segments: Sequence[str]) -> dict[str, str]:
    """The decoded values of the route's `{param}` segments."""
    names = iter(route.params)
    return {
        next(names): segment_value(actual)
        for expected, actual in zip(route.segments, segments, strict=True)
        if expected is None
    }


def check_query_rule(rule: QueryRule, query: str) -> None:
    """Raise BadRequest unless every parameter is allowed, single and within its max."""
    if not query:
        return
    if ";" in query:
        raise BadRequest("';' is not a query separator here")
    if query.count("%") != len(_ESCAPE.findall(query)):
        # parse_qsl keeps "%ZZ" as text; another parser may not: refuse, as for paths.
        raise BadRequest("malformed percent-escape in the query string")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True,
                          errors="strict", max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:  # UnicodeDecodeError included
        raise BadRequest("malformed query string") from None
    seen: set[str] = set()
    for name, value in pairs:
        if name not in rule.allowed:
            raise BadRequest(f"query parameter {name!r} is not allowed")
        if name in seen:
            raise BadRequest(f"query parameter {name!r} is repeated")
        seen.add(name)
        limit = rule.max.get(name)
        if limit is not None:
            if not _INTEGER.fullmatch(value):
                raise BadRequest(f"query parameter {name!r} must be an integer")
            if int(value) > limit:
                raise BadRequest(f"query parameter {name!r} is over its maximum {limit}")


def route_index(policy: ClientPolicy) -> RouteIndex:
    """The policy's routes grouped by segment count, in file order; built once per policy."""
    cached = _INDEXES.get(id(policy))
    if cached is not None and cached[0] is policy:
        return cached[1]
    index: dict[int, list[Route]] = {}
    for route in policy.routes:
        index.setdefault(len(route.segments), []).append(route)
    frozen = {length: tuple(routes) for length, routes in index.items()}
    if len(_INDEXES) >= 4096:  # policy reloads create new objects: never grow without bound
        _INDEXES.clear()
    _INDEXES[id(policy)] = (policy, frozen)
    return frozen
