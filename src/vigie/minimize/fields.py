"""Field actions on one record: keep, drop, mask, pseudonymize, generalize.

A `ResponseRule` is compiled once into a `RecordPlan`: a trie of its selectors.
Applying the plan builds a new record. A rule applies to the value its selector
names and, when that value is an object or list, to every part of it that no
more specific selector names (so `address: drop` with `address.city: keep`
keeps only the city). Parts no rule reaches follow `unlisted`. Every value that
leaves is NIR-scanned; the only exception is a scalar that a `keep` rule names
directly and whose whole text is one NIR (contract section 3).

Non-scalar values under mask/pseudonymize/generalize are transformed leaf by
leaf; null stays null. A value that cannot be generalized (not a date, not a
postcode) becomes null: the safe side.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vigie.context import Decision, Identity
from vigie.errors import InspectionError
from vigie.minimize import nir
from vigie.minimize.tree import MAX_DEPTH, scan_key, scan_scalar, scan_tree
from vigie.policy.model import (
    Action,
    Each,
    FieldRule,
    Generalization,
    Key,
    MaskStyle,
    ResponseRule,
    Selector,
    Step,
    Unlisted,
)
from vigie.pseudonym import Pseudonymizer

_YEAR = re.compile(r"(\d{4})(?:$|[-/T ])")
_MONTH = re.compile(r"(\d{4})-(\d{2})(?:$|[-T ])")
_POSTCODE = re.compile(r"\d{5}")
_UNLISTED = Selector(text="", steps=())
_KEEP_ALL = FieldRule(selector=_UNLISTED, action=Action.KEEP)
_DROP_ALL = FieldRule(selector=_UNLISTED, action=Action.DROP)


@dataclass(slots=True)
class RecordContext:
    """What applying a plan needs beyond the record; counts go to `decision`."""

    decision: Decision
    client: str
    pseudonymizer: Pseudonymizer | None


@dataclass(slots=True)
class _Node:
    rule: FieldRule | None = None
    keys: dict[str, _Node] = field(default_factory=dict)
    each: _Node | None = None
    where: dict[tuple[str, str], _Node] = field(default_factory=dict)

    def child(self, step: Step) -> _Node:
        if isinstance(step, Key):
            return self.keys.setdefault(step.name, _Node())
        if isinstance(step, Each):
            if self.each is None:
                self.each = _Node()
            return self.each
        return self.where.setdefault((step.key, step.value), _Node())

    def is_leaf(self) -> bool:
        return not self.keys and self.each is None and not self.where

    def element_child(self, element: Any) -> _Node | None:
        if self.where and isinstance(element, dict):
            for (key, wanted), node in self.where.items():
                if key in element and as_text(element[key]) == wanted:
                    return node
        return self.each


def as_text(value: Any) -> str | None:
    """A JSON scalar as text (JSON spelling for booleans); None for null and containers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return None


def select_first(record: Any, steps: tuple[Step, ...]) -> Any:
    """The first value a selector reaches in a record, or None."""
    value = record
    for step in steps:
        if isinstance(step, Key):
            if not isinstance(value, dict) or step.name not in value:
                return None
            value = value[step.name]
            continue
        if not isinstance(value, list):
            return None
        if isinstance(step, Each):
            if not value:
                return None
            value = value[0]
        else:
            matches = [e for e in value if isinstance(e, dict)
                       and as_text(e.get(step.key)) == step.value]
            if not matches:
                return None
            value = matches[0]
    return value


def department(value: str) -> str | None:
    text = value.strip()
    if not _POSTCODE.fullmatch(text):
        return None
    if text.startswith("20"):
        return "2A" if text[2] in "01" else "2B" if text[2] in "26" else "20"
    if text.startswith(("97", "98")):
        return text[:3]
    return text[:2]


def generalize(value: Any, how: Generalization | None) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and how is Generalization.DEPARTMENT:
        text: str | None = f"{value:05d}"
    else:
        text = as_text(value)
    if text is None:
        return None
    if how is Generalization.YEAR:
        year = _YEAR.match(text)
        return year.group(1) if year else None
    if how is Generalization.MONTH:
        month = _MONTH.match(text)
        return f"{month.group(1)}-{month.group(2)}" if month else None
    if how is Generalization.DEPARTMENT:
        return department(text)
    return None


def mask(text: str, style: MaskStyle | None) -> str:
    shown = 2 if style is MaskStyle.LAST2 else 4 if style is MaskStyle.LAST4 else 0
    if shown == 0 or len(text) <= shown:
        return "*" * len(text)
    return "*" * (len(text) - shown) + text[-shown:]


class RecordPlan:
    """One compiled ResponseRule, applied to many records."""

    def __init__(self, rule: ResponseRule) -> None:
        self.rule = rule
        self.root = _Node()
        for field_rule in rule.fields:
            node = self.root
            for step in field_rule.selector.steps:
                node = node.child(step)
            node.rule = field_rule
        self.default = _KEEP_ALL if rule.unlisted is Unlisted.KEEP else _DROP_ALL
        id_node = self.root.keys.get("id")
        self.id_pseudonymized = (id_node is not None and id_node.rule is not None
                                 and id_node.rule.action is Action.PSEUDONYMIZE)

    def allows(self, record: dict[str, Any], identity: Identity) -> bool:
        """Object-level bindings: every bound field equals its claim; missing never matches."""
        for binding in self.rule.bind:
            claim = identity.claim_text(binding.claim)
            field = select_first(record, binding.field.steps)
            # Booleans and empty values are never identifiers: they never match.
            value = None if isinstance(field, bool) else as_text(field)
            if not claim or not value or value != claim:
                return False
        return True

    def reference(self, original: dict[str, Any], output: dict[str, Any]) -> str | None:
        """The patient reference for the audit: the id, or its pseudonym."""
        if self.id_pseudonymized:
            token = output.get("id")
            return token if isinstance(token, str) else None
        text = as_text(original.get("id"))
        return None if text is None else nir.mask_text(text)[0]

    def apply(self, record: dict[str, Any], ctx: RecordContext) -> dict[str, Any]:
        present, value = self._walk(record, self.root, self.default, "", ctx)
        return value if present and isinstance(value, dict) else {}

    def _walk(self, value: Any, node: _Node, inherited: FieldRule, path: str,
              ctx: RecordContext) -> tuple[bool, Any]:
        rule = node.rule or inherited
        if isinstance(value, dict) and node.keys:
            out: dict[str, Any] = {}
            children = node.keys
            dropping = rule.action is Action.DROP
            for key, item in value.items():
                child = children.get(key)
                if child is None and dropping:  # the common case: an unlisted field
                    ctx.decision.masked["drop"] += 1
                    continue
                sub = f"{path}.{key}" if path else key
                if child is not None and child.rule is not None and child.is_leaf():
                    present, new = self._act(item, child.rule, True, sub, ctx)
                elif child is not None:
                    present, new = self._walk(item, child, rule, sub, ctx)
                else:
                    present, new = self._act(item, rule, False, sub, ctx)
                if present:
                    out[key if len(key) < nir.MIN_LENGTH else scan_key(key, ctx.decision)] = new
            return True, out
        if isinstance(value, list) and (node.each is not None or node.where):
            items: list[Any] = []
            for element in value:
                child = node.element_child(element)
                if child is not None:
                    present, new = self._walk(element, child, rule, path + "[*]", ctx)
                else:
                    present, new = self._act(element, rule, False, path + "[*]", ctx)
                if present:
                    items.append(new)
            return True, items
        return self._act(value, rule, node.rule is not None, path, ctx)

    def _act(self, value: Any, rule: FieldRule, named: bool, path: str,
             ctx: RecordContext) -> tuple[bool, Any]:
        action = rule.action
        decision = ctx.decision
        if action is Action.DROP:
            decision.masked["drop"] += 1
            return False, None
        if action is Action.KEEP:
            decision.fields.add(rule.selector.text or path)
            if named and isinstance(value, str | int) and not isinstance(value, bool) \
                    and nir.is_whole_nir(str(value)):
                return True, value
            return True, scan_tree(value, decision)
        transform = self._transform(rule, ctx)
        return True, _map_leaves(value, transform, action.value, ctx.decision)

    def _transform(self, rule: FieldRule, ctx: RecordContext) -> Callable[[Any], Any]:
        if rule.action is Action.MASK:
            style = rule.mask

            def masked(value: Any) -> Any:
                text = as_text(value)
                return None if text is None else mask(text, style)
            return masked
        if rule.action is Action.GENERALIZE:
            how = rule.generalize

            def general(value: Any) -> Any:
                return scan_scalar(generalize(value, how), ctx.decision)
            return general
        pseudonymizer = ctx.pseudonymizer
        if pseudonymizer is None:
            raise InspectionError("a policy pseudonymizes but no pseudonym key is configured")
        client = ctx.client

        def pseudonym(value: Any) -> Any:
            text = as_text(value)
            return None if text is None else pseudonymizer.token(client, text)
        return pseudonym


def _map_leaves(value: Any, transform: Callable[[Any], Any], action: str,
                decision: Decision) -> Any:
    """Apply `transform` to every non-null scalar under `value`, counting each."""
    if not isinstance(value, dict | list):
        if value is None:
            return None
        decision.masked[action] += 1
        return transform(value)
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 0)]
    while stack:
        container, level = stack.pop()
        if level > MAX_DEPTH:
            raise InspectionError("response nested too deeply to inspect")
        pairs = list(container.items()) if isinstance(container, dict) else \
            list(enumerate(container))
        for slot, item in pairs:
            if isinstance(item, dict | list):
                stack.append((item, level + 1))
            elif item is not None:
                decision.masked[action] += 1
                container[slot] = transform(item)  # type: ignore[index]
        if isinstance(container, dict) and any(len(k) >= nir.MIN_LENGTH for k in container):
            renamed = {scan_key(k, decision): v for k, v in container.items()}
            container.clear()
            container.update(renamed)
    return value


_PLANS: dict[int, tuple[ResponseRule, RecordPlan]] = {}
_MAX_PLANS = 4096


def plan_for(rule: ResponseRule) -> RecordPlan:
    """The compiled plan of a rule, compiled once per rule object."""
    cached = _PLANS.get(id(rule))
    if cached is not None and cached[0] is rule:
        return cached[1]
    if len(_PLANS) >= _MAX_PLANS:  # policies reloaded many times: start afresh
        _PLANS.clear()
    plan = RecordPlan(rule)
    _PLANS[id(rule)] = (rule, plan)
    return plan


