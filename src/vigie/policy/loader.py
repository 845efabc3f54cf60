"""Load and validate a folder of policy files into one immutable `PolicySet`.

Every `*.yaml` / `*.yml` file in the folder is one client's policy, except policy
tests (`*.test.yaml`) and files whose name starts with `_` or `.`. Validation
collects every problem, not just the first, as `FILE:LINE: key.path: message`
lines: `check_policies` returns them, `load_policies` raises them in a
`PolicyError`. Unknown keys are errors at every level (a typo must never
silently disable a rule), and so is a route that an earlier route shadows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from vigie import yamlsrc
from vigie.errors import ConfigError
from vigie.limits_config import LIMIT_KEYS, parse_limits
from vigie.policy import smart
from vigie.policy.authorize import method_allowed
from vigie.policy.metadata import read_metadata, strict_problems
from vigie.policy.model import (
    Action,
    ClientPolicy,
    Mode,
    PolicySet,
    QueryRule,
    Route,
    Selector,
)
from vigie.policy.page_size import parse_page_size
from vigie.policy.request_rule import parse_request_rule
from vigie.policy.response_reader import ResponseReader
from vigie.policy.smart import looks_smart
from vigie.policy.templates import Segments, covers, parse_template
from vigie.rates import Limits

API_VERSION = "vigie/v1"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TOP_KEYS = ("apiVersion", "client", "description", "mode", "routes", "limits",
             "client_limits", "issuer",
             "metadata")  # metadata: policy/metadata.py
_ROUTE_KEYS = ("name", "methods", "path", "scopes", "query", "response", "request",
               "patient", "reserve", "page_size")
_QUERY_KEYS = ("allowed", "max")
_ROUTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class PolicyError(ConfigError):
    """The policies are invalid; `errors` holds every `FILE:LINE: message` line."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


def policy_files(folder: Path) -> list[Path]:
    """The policy files of `folder`, sorted by name (tests and `_`/`.` files left out)."""
    return sorted(
        path for path in folder.iterdir()
        if path.suffix in (".yaml", ".yml") and path.is_file()
        and not path.name.startswith(("_", "."))
        and not path.name.endswith((".test.yaml", ".test.yml"))
    )


def check_policies(folder: Path, *, strict: bool = False) -> list[str]:
    """Every error in the folder's policies as `FILE:LINE: message`; empty when valid.

    `strict` also requires the policy metadata (policy/metadata.py).
    """
    return _load(Path(folder), strict=strict)[1]


def load_policies(folder: Path) -> PolicySet:
    """The folder's policies, or PolicyError carrying every error line."""
    policies, errors = _load(Path(folder))
    if errors:
        raise PolicyError(errors)
    return policies


def load_policy_file(path: Path) -> ClientPolicy:
    """One policy file on its own (`vigie policy suggest --diff`); PolicyError when invalid."""
    reader = _FileReader(Path(path))
    policy = reader.read()
    if policy is None or reader.errors:
        raise PolicyError(reader.lines_out() or [f"{path}: not a policy"])
    return policy


def _load(folder: Path, *, strict: bool = False) -> tuple[PolicySet, list[str]]:
    if not folder.is_dir():
        return PolicySet({}), [f"{folder}: not a folder of policies"]
    files = policy_files(folder)
    if not files:
        return PolicySet({}), [f"{folder}: no policy files (*.yaml)"]
    clients: dict[str, ClientPolicy] = {}
    defined_at: dict[str, str] = {}
    errors: list[str] = []
    for path in files:
        reader = _FileReader(path)
        policy = reader.read()
        if strict and policy is not None:
            reader.strict(policy)
        if reader.client is not None:
            name, line = reader.client
            if name in defined_at:
                reader.error(("client",), f"client {name!r} is already defined in "
                                          f"{defined_at[name]}")
                policy = None
            else:
                defined_at[name] = f"{path}:{line}"
        errors.extend(reader.lines_out())
        if policy is not None:
            clients[policy.client] = policy
    return PolicySet(clients), errors


def _key_path(path: yamlsrc.Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)!r}]"
    return text


class _FileReader(ResponseReader):
    """Validates one policy file, collecting (line, message) pairs instead of stopping."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = yamlsrc.Lines(str(path))
        self.errors: list[tuple[int, str]] = []
        self.client: tuple[str, int] | None = None

    def error(self, path: yamlsrc.Path, message: str) -> None:
        where = _key_path(path)
        self.errors.append((self.lines.line(path), f"{where}: {message}" if where else message))

    def lines_out(self) -> list[str]:
        ordered = sorted(self.errors, key=lambda item: item[0])
        return [f"{self.path}:{line}: {message}" for line, message in ordered]

    def read(self) -> ClientPolicy | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.errors.append((1, f"cannot read the file: {exc}"))
            return None
        try:
            raw, self.lines = yamlsrc.load(text, str(self.path))
        except ConfigError as exc:
            message = str(exc).removeprefix(f"{self.path}:{exc.line}: ")
            self.errors.append((exc.line or 1, message.removeprefix(f"{self.path}: ")))
            return None
        if raw is None:
            self.errors.append((1, "empty policy file"))
            return None
        return self.policy(raw)

    def mapping(self, raw: Any, path: yamlsrc.Path, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.error(path, "must be a mapping")
            return None
        for key in raw:
            if key not in allowed:
                self.error((*path, key), f"unknown key (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in raw:
                self.error(path, f"missing required key {key!r}")
        return raw

    def text(self, raw: Any, path: yamlsrc.Path, what: str) -> str | None:
        if not isinstance(raw, str) or not raw.strip():
            self.error(path, f"must be {what}")
            return None
        return raw

    def parse(self, fn: Callable[[str], Selector], raw: Any,
              path: yamlsrc.Path) -> Selector | None:
        if not isinstance(raw, str):
            self.error(path, "a selector must be a string")
            return None
        try:
            return fn(raw)
        except ValueError as exc:
            self.error(path, str(exc))
            return None

    def policy(self, raw: Any) -> ClientPolicy | None:
        top = self.mapping(raw, (), _TOP_KEYS, ("client", "routes"))
        if top is None:
            return None
        if "apiVersion" in top and top["apiVersion"] != API_VERSION:
            self.error(("apiVersion",), f"unsupported version {top['apiVersion']!r} "
                                        f"(expected {API_VERSION})")
        client = self.text(top.get("client"), ("client",), "a non-empty client name") \
            if "client" in top else None
        if client is not None:
            self.client = (client, self.lines.line(("client",)))
        issuer = self.text(top.get("issuer"), ("issuer",), "the issuer's exact `iss` value") \
            if "issuer" in top else None
        description = top.get("description", "")
        if not isinstance(description, str):
            self.error(("description",), "must be a string")
        mode = None
        if top.get("mode") is not None:
            try:
                mode = Mode(top["mode"])
            except ValueError:
                self.error(("mode",), "must be enforce or report-only")
        limits = self.limits(top.get("limits"), ("limits",))
        client_limits = self.limits(top.get("client_limits"), ("client_limits",)) \
            if "client_limits" in top else None
        routes = self.routes(top.get("routes"), ("routes",)) if "routes" in top else ()
        metadata = read_metadata(top.get("metadata"), self.error)
        if self.errors or client is None:
            return None
        return ClientPolicy(client=client, routes=routes, description=description, mode=mode,
                            limits=limits, client_limits=client_limits, source=self.path,
                            issuer=issuer, metadata=metadata,
                            issuer_line=self.lines.line(("issuer",) if "issuer" in top
                                                        else ("client",)))

    def strict(self, policy: ClientPolicy) -> None:
        """`check --strict`: the metadata is required (policy/metadata.py)."""
        kept = [(("routes", index, "response", "fields", rule.selector.text), rule.selector.text)
                for index, route in enumerate(policy.routes) if route.response is not None
                for rule in route.response.fields if rule.action is Action.KEEP]
        for path, message in strict_problems(policy.metadata, kept):
            self.error(path, message)

    def limits(self, raw: Any, path: yamlsrc.Path) -> Limits:
        if raw is None:
            return Limits()
        if not isinstance(raw, dict):
            self.error(path, f"must be a mapping of {', '.join(sorted(LIMIT_KEYS))}")
            return Limits()
        values: dict[str, Any] = {}
        for key, value in raw.items():
            # One key at a time so that every bad key is reported, not just the first.
            problems: list[tuple[yamlsrc.Path, str]] = []
            try:
                parsed = parse_limits({key: value}, path, partial(_collect, problems))
            except ValueError:
                for where, message in problems:
                    self.error(where, message)
                continue
            values[key] = getattr(parsed, str(key))
        return Limits(**values)

    def routes(self, raw: Any, path: yamlsrc.Path) -> tuple[Route, ...]:
        if not isinstance(raw, list) or not raw:
            self.error(path, "must be a non-empty list of routes")
            return ()
        routes: list[Route] = []
        names: dict[str, int] = {}
        for index, item in enumerate(raw):
            route = self.route(item, (*path, index))
            if route is None:
                continue
            if route.name in names:
                self.error((*path, index, "name"), f"duplicate route name {route.name!r} "
                                                   f"(first at line {names[route.name]})")
            names.setdefault(route.name, route.line)
            self.shadowing(route, routes, (*path, index))
            routes.append(route)
        return tuple(routes)

    def shadowing(self, route: Route, earlier: list[Route], path: yamlsrc.Path) -> None:
        shadowed: dict[str, Route] = {}
        for method in sorted(route.methods):
            for previous in earlier:
                if method_allowed(previous, method) and covers(previous.segments, route.segments):
                    shadowed[method] = previous
                    break
        if not shadowed:
            return
        first = next(iter(shadowed.values()))
        if len(shadowed) == len(route.methods):
            self.error(path, f"route {route.name!r} is unreachable: route {first.name!r} "
                             f"(line {first.line}) matches every request it matches; "
                             "routes match in file order, put the narrower one first")
        else:
            for method, previous in shadowed.items():
                self.error(path, f"method {method} of route {route.name!r} is unreachable: "
                                 f"route {previous.name!r} (line {previous.line}) takes it first")

    def route(self, raw: Any, path: yamlsrc.Path) -> Route | None:
        item = self.mapping(raw, path, _ROUTE_KEYS, ("name", "methods", "path"))
        if item is None:
            return None
        before = len(self.errors)
        name = self.text(item.get("name"), (*path, "name"), "a route name") \
            if "name" in item else None
        if name is not None and not _ROUTE_NAME.fullmatch(name):
            self.error((*path, "name"), "a route name is 1-64 letters, digits, '.', '_' or "
                                        "'-' (it labels metrics)")
        methods = self.methods(item.get("methods"), (*path, "methods")) \
            if "methods" in item else frozenset()
        template = self.template(item.get("path"), (*path, "path")) if "path" in item else None
        scopes = self.scopes(item.get("scopes", []), (*path, "scopes"))
        query = self.query(item["query"], (*path, "query")) if "query" in item else None
        response = self.response(item["response"], (*path, "response")) \
            if "response" in item else None
        request = parse_request_rule(item["request"], (*path, "request"), self.error) \
            if "request" in item else None
        patient = self.patient(item, path, template[1] if template else ())
        reserve = item.get("reserve")
        if reserve is not None and (not isinstance(reserve, int) or isinstance(reserve, bool)
                                    or reserve < 1):
            self.error((*path, "reserve"), "must be a positive integer (the most records "
                                           "one response can hold)")
        page_size = parse_page_size(item.get("page_size"), (*path, "page_size"), query, self.error)
        if len(self.errors) > before or name is None or template is None:
            return None
        return Route(name=name, methods=methods, path=item["path"], segments=template[0],
                     params=template[1], scopes=scopes, query=query, response=response,
                     line=self.lines.line(path), patient=patient, reserve=reserve,
                     request=request, page_size=page_size)

    def patient(self, item: dict[str, Any], path: yamlsrc.Path,
                params: tuple[str, ...]) -> str | None:
        if "patient" not in item:
            return None
        raw = item["patient"]
        if raw is False:
            return ""
        if not isinstance(raw, str) or raw not in params:
            self.error((*path, "patient"), "must name a path parameter of this route "
                                           f"({', '.join(params) or 'none'}) or be false")
            return None
        return raw

    def methods(self, raw: Any, path: yamlsrc.Path) -> frozenset[str]:
        if not isinstance(raw, list) or not raw:
            self.error(path, "must be a non-empty list of HTTP methods")
            return frozenset()
        seen: set[str] = set()
        for index, method in enumerate(raw):
            if method not in METHODS:
                self.error((*path, index), f"unknown method {method!r} (expected one of: "
                                           f"{', '.join(sorted(METHODS))}, in upper case)")
            elif method in seen:
                self.error((*path, index), f"duplicate method {method}")
            seen.add(str(method))
        return frozenset(seen)

    def template(self, raw: Any, path: yamlsrc.Path) -> tuple[Segments, tuple[str, ...]] | None:
        try:
            return parse_template(raw)
        except ValueError as exc:
            self.error(path, str(exc))
            return None

    def scopes(self, raw: Any, path: yamlsrc.Path) -> frozenset[str]:
        if not isinstance(raw, list):
            self.error(path, "must be a list of scope names")
            return frozenset()
        for index, scope in enumerate(raw):
            if not isinstance(scope, str) or not scope or any(c.isspace() for c in scope):
                self.error((*path, index), "a scope is a non-empty string without spaces")
            elif looks_smart(scope) and smart.parse(scope) is None:
                self.error((*path, index), "not a SMART scope: context/Type.permissions "
                           "(e.g. patient/Patient.rs, user/*.read)")
        return frozenset(str(scope) for scope in raw)

    def query(self, raw: Any, path: yamlsrc.Path) -> QueryRule | None:
        item = self.mapping(raw, path, _QUERY_KEYS, ("allowed",))
        if item is None:
            return None
        allowed = item.get("allowed", [])
        if not isinstance(allowed, list) or not all(isinstance(a, str) and a for a in allowed):
            self.error((*path, "allowed"), "must be a list of parameter names")
            allowed = []
        maxima: dict[str, int] = {}
        raw_max = item.get("max", {})
        if not isinstance(raw_max, dict):
            self.error((*path, "max"), "must be a mapping of parameter name to integer")
            raw_max = {}
        for key, value in raw_max.items():
            if key not in allowed:
                self.error((*path, "max", key), f"{key!r} is not in query.allowed")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                self.error((*path, "max", key), "must be a non-negative integer")
            else:
                maxima[str(key)] = value
        return QueryRule(allowed=frozenset(allowed), max=maxima)


def _collect(problems: list[tuple[yamlsrc.Path, str]], where: yamlsrc.Path,
             message: str) -> Exception:
    problems.append((where, message))
    return ValueError(message)
