"""Reading a route's `response` rule from a policy file: records, field actions, bind and
envelope. A part of the policy file reader (loader.py), which provides `error`,
`mapping`, `parse` and `lines`; kept apart so that each reads alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vigie import yamlsrc
from vigie.policy.envelope import parse_envelope
from vigie.policy.model import (
    Action,
    Binding,
    FieldRule,
    Generalization,
    Key,
    MaskStyle,
    ResponseRule,
    Selector,
    Unlisted,
)
from vigie.policy.selectors import parse_location, parse_selector

RESPONSE_KEYS = ("records", "fields", "unlisted", "bind", "envelope")
ACTIONS_HELP = ("keep, drop, pseudonymize, {mask: last2|last4|all} "
                "or {generalize: year|month|department}")


class ResponseReader:
    lines: yamlsrc.Lines

    def error(self, path: yamlsrc.Path, message: str) -> None:
        raise NotImplementedError

    def mapping(self, raw: Any, path: yamlsrc.Path, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> dict[str, Any] | None:
        raise NotImplementedError

    def parse(self, fn: Callable[[str], Selector], raw: Any,
              path: yamlsrc.Path) -> Selector | None:
        raise NotImplementedError

    def response(self, raw: Any, path: yamlsrc.Path) -> ResponseRule | None:
        item = self.mapping(raw, path, RESPONSE_KEYS)
        if item is None:
            return None
        records = self.parse(parse_location, item.get("records", "$"), (*path, "records"))
        unlisted = Unlisted.DROP
        if "unlisted" in item:
            try:
                unlisted = Unlisted(item["unlisted"])
            except ValueError:
                self.error((*path, "unlisted"), "must be drop or keep")
        raw_fields = item.get("fields", {})
        rules: list[FieldRule] = []
        if not isinstance(raw_fields, dict):
            self.error((*path, "fields"), "must be a mapping of selector to action")
            raw_fields = {}
        seen: dict[object, str] = {}
        for key, value in raw_fields.items():
            where = (*path, "fields", key)
            selector = self.parse(parse_selector, key, where)
            rule = self.action(value, where, selector)
            if selector is not None and selector.steps in seen:
                self.error(where, f"selects the same field as {seen[selector.steps]!r}")
            elif selector is not None:
                seen[selector.steps] = selector.text
            if rule is not None:
                rules.append(rule)
        bindings = self.bindings(item.get("bind", {}), (*path, "bind"))
        envelope = parse_envelope(item["envelope"], (*path, "envelope"), self.error,
                                  self.parse) if "envelope" in item else None
        if records is None:
            return None
        return ResponseRule(records=records, fields=tuple(rules), unlisted=unlisted,
                            bind=bindings, envelope=envelope)

    def action(self, raw: Any, path: yamlsrc.Path, selector: Selector | None) -> FieldRule | None:
        line = self.lines.line(path)
        if isinstance(raw, str) and raw in ("keep", "drop", "pseudonymize"):
            return FieldRule(selector, Action(raw), line=line) if selector else None
        if raw in ("mask", "generalize"):
            self.error(path, f"{raw} needs an argument: " + (
                "{mask: last2|last4|all}" if raw == "mask"
                else "{generalize: year|month|department}"))
            return None
        if isinstance(raw, dict) and len(raw) == 1:
            kind, argument = next(iter(raw.items()))
            if kind == "mask":
                try:
                    style = MaskStyle(argument)
                except ValueError:
                    self.error((*path, kind), f"unknown mask {argument!r} "
                                              "(expected last2, last4 or all)")
                    return None
                return FieldRule(selector, Action.MASK, mask=style, line=line) \
                    if selector else None
            if kind == "generalize":
                try:
                    level = Generalization(argument)
                except ValueError:
                    self.error((*path, kind), f"unknown generalization {argument!r} "
                                              "(expected year, month or department)")
                    return None
                return FieldRule(selector, Action.GENERALIZE, generalize=level, line=line) \
                    if selector else None
        self.error(path, f"unknown action {raw!r} (expected {ACTIONS_HELP})")
        return None

    def bindings(self, raw: Any, path: yamlsrc.Path) -> tuple[Binding, ...]:
        if not isinstance(raw, dict):
            self.error(path, "must be a mapping of record field to token claim")
            return ()
        result: list[Binding] = []
        for key, claim in raw.items():
            selector = self.parse(parse_selector, key, (*path, key))
            if selector is not None and not all(isinstance(s, Key) for s in selector.steps):
                self.error((*path, key), "a bound field is a plain path of keys "
                                         "(no [*] or filters)")
                selector = None
            if not isinstance(claim, str) or not claim:
                self.error((*path, key), "the claim name must be a non-empty string")
                continue
            if selector is not None:
                result.append(Binding(selector, claim))
        return tuple(result)
