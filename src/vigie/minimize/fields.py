"""Field actions on one record: keep, drop, mask, pseudonymize, generalize.

A `ResponseRule` is compiled once into a `RecordPlan`: a trie of its selectors.
Applying the plan builds a new record. A rule applies to the value its selector
names and, when that value is an object or list, to every part of it that no
more specific selector names (so `address: drop` with `address.city: keep`
keeps only the city). Parts no rule reaches follow `unlisted`. Every value that
leaves is NIR-scanned; the only exception is a scalar that a `keep` rule names
directly and whose whole text is one NIR (contract section 3).

Applying a plan with `RecordContext.scan` off (the one-scan pass, `onescan.py`)
applies the same actions but leaves the NIR scan to the serialized output.
Speed: node flags are computed at compile time, transform closures once per
response, audit paths only when a rule without selector text needs them, and
the keys to visit once per key sequence of the records (`_Node.shape`).

Non-scalar values under mask/pseudonymize/generalize are transformed leaf by
leaf; null stays null. A value that cannot be generalized (not a date, not a
postcode) becomes null: the safe side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from vigie.context import Decision, Identity
from vigie.errors import InspectionError
from vigie.minimize import nir
from vigie.minimize.tree import (
    MAX_DEPTH,
    Fallback,
    check_depth,
    mask_adjacent,
    scan_key,
    scan_scalar,
    scan_tree,
)
from vigie.minimize.values import as_text as as_text
from vigie.minimize.values import department as department
from vigie.minimize.values import generalize, mask, select_first
from vigie.policy.model import (
    Action,
    Each,
    FieldRule,
    Key,
    ResponseRule,
    Selector,
    Step,
    Unlisted,
)
from vigie.pseudonym import Pseudonymizer

_UNLISTED = Selector(text="", steps=())
_KEEP_ALL = FieldRule(selector=_UNLISTED, action=Action.KEEP)
_DROP_ALL = FieldRule(selector=_UNLISTED, action=Action.DROP)


@dataclass(slots=True)
class RecordContext:
    """What applying a plan needs beyond the record; counts go to `decision`."""

    decision: Decision
    client: str
    pseudonymizer: Pseudonymizer | None
    # The closures `_transform` builds, once per field rule per response (by rule id).
    transforms: dict[int, Callable[[Any], Any]] = field(default_factory=dict)
    # False in the one-scan pass (`onescan.py`): kept values are not scanned here, the
    # serialized output is; anything that pass cannot mirror exactly raises Fallback.
    scan: bool = True


_Shape = tuple[tuple[tuple[str, "_Node | None", int], ...], int]
_MAX_SHAPE_KEYS = 64
_MAX_SHAPES = 256


@dataclass(slots=True)
class _Node:
    rule: FieldRule | None = None
    keys: dict[str, _Node] = field(default_factory=dict)
    each: _Node | None = None
    where: dict[tuple[str, str], _Node] = field(default_factory=dict)
    # Set by `finish` once the trie is built: the rule of a leaf node (applied without
    # walking), and whether a rule without selector text (whose audit name is the
    # path) may apply at or under this node.
    leaf_rule: FieldRule | None = None
    textless: bool = False
    # The selector text of a leaf `keep` rule (the common case, handled inline).
    keep_text: str | None = None
    # Key sequences of records met at this node, with what `shape` computed for them.
    shapes: dict[tuple[str, ...], tuple[bool, _Shape]] = field(default_factory=dict)

    def finish(self) -> bool:
        """Precompute `leaf_rule` and `textless` for this subtree; returns `textless`."""
        self.leaf_rule = self.rule if self.is_leaf() else None
        leaf = self.leaf_rule
        self.keep_text = leaf.selector.text or None \
            if leaf is not None and leaf.action is Action.KEEP else None
        textless = self.rule is not None and not self.rule.selector.text
        for child in (*self.keys.values(), *self.where.values(),
                      *((self.each,) if self.each is not None else ())):
            textless = child.finish() or textless
        self.textless = textless
        return textless

    def shape(self, value: dict[str, Any], dropping: bool) -> _Shape:
        """The keys of `value` to visit, in order, each with its child node (None when
        unlisted) and how many dropped keys precede it; and the number dropped. Records
        of one response share a few key sequences: they are computed once per sequence."""
        keys = tuple(value) if len(value) <= _MAX_SHAPE_KEYS else None
        cached = self.shapes.get(keys) if keys is not None else None
        if cached is not None and cached[0] is dropping:
            return cached[1]
        entries: list[tuple[str, _Node | None, int]] = []
        dropped = 0
        children = self.keys
        for key in value:
            child = children.get(key)
            if child is None and dropping:  # the common case: an unlisted field
                dropped += 1
            else:
                entries.append((key, child, dropped))
        shape = (tuple(entries), dropped)
        if keys is not None:
            if len(self.shapes) >= _MAX_SHAPES:
                self.shapes.clear()
            self.shapes[keys] = (dropping, shape)
        return shape

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


Node = _Node


class RecordPlan:
    """One compiled ResponseRule, applied to many records."""

    def __init__(self, rule: ResponseRule, *, whole_nir_kept: bool = True) -> None:
        self.rule = rule
        # The contract's one exception (a named keep whose whole value is one NIR): for
        # records only; the envelope's plan (envelope.py) masks those too.
        self.whole_nir_kept = whole_nir_kept
        self.root = _Node()
        for field_rule in rule.fields:
            node = self.root
            for step in field_rule.selector.steps:
                node = node.child(step)
            node.rule = field_rule
        self.root.finish()
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

    def walk(self, value: Any, node: _Node, ctx: RecordContext) -> tuple[bool, Any]:
        """(present, value) for a part of a document reached at `node` of this plan."""
        return self._walk(value, node, self.default, "", ctx)

    def _walk(self, value: Any, node: _Node, inherited: FieldRule, path: str,
              ctx: RecordContext) -> tuple[bool, Any]:
        rule = node.rule or inherited
        if node.keys and isinstance(value, dict):
            out: dict[str, Any] = {}
            dropping = rule.action is Action.DROP
            rule_textless = not rule.selector.text
            act = self._act
            scanning = ctx.scan
            fields_add = ctx.decision.fields.add
            entries, total_drops = node.shape(value, dropping)
            drops = 0
            try:
                for key, child, dropped_before in entries:
                    drops = dropped_before
                    item = value[key]
                    if child is None:
                        sub = (f"{path}.{key}" if path else key) if rule_textless else ""
                        present, new = act(item, rule, False, sub, ctx)
                    elif child.keep_text is not None and (
                            not scanning or (type(item) is str and len(item) < nir.MIN_LENGTH)):
                        # `_act` for a named keep, inline: nothing to scan here
                        fields_add(child.keep_text)
                        if type(item) is dict or type(item) is list:
                            check_depth(item)
                        present, new = True, item
                    else:
                        needs_path = child.textless or (child.rule is None and rule_textless)
                        sub = (f"{path}.{key}" if path else key) if needs_path else ""
                        if child.leaf_rule is not None:
                            present, new = act(item, child.leaf_rule, True, sub, ctx)
                        else:
                            present, new = self._walk(item, child, rule, sub, ctx)
                    if present:
                        out[key if len(key) < nir.MIN_LENGTH else scan_key(key, ctx.decision)] = new
                drops = total_drops
            finally:  # drops before a failing field are counted, as the metrics see them
                if drops:
                    ctx.decision.masked["drop"] += drops
            return True, out
        if isinstance(value, list) and (node.each is not None or node.where):
            items: list[Any] = []
            element_path = path + "[*]" if path else ""
            if not element_path and (node.textless or not rule.selector.text):
                element_path = "[*]"
            for element in value:
                child = node.element_child(element)
                if child is not None:
                    present, new = self._walk(element, child, rule, element_path, ctx)
                else:
                    present, new = self._act(element, rule, False, element_path, ctx)
                if present:
                    items.append(new)
            if ctx.scan and len(items) > 1:
                mask_adjacent(items, ctx.decision)
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
            if not ctx.scan:
                check_depth(value)
                return True, value
            kind = type(value)
            if kind is str:
                if len(value) < nir.MIN_LENGTH:  # too short to hold a NIR: nothing to scan
                    return True, value
                if named and self.whole_nir_kept and nir.is_whole_nir(value):
                    return True, value
                return True, scan_scalar(value, decision)
            if named and self.whole_nir_kept and kind is int and nir.is_whole_nir(str(value)):
                return True, value
            return True, scan_tree(value, decision)
        transform = ctx.transforms.get(id(rule))
        if transform is None:
            transform = ctx.transforms[id(rule)] = self._transform(rule, ctx)
        if not ctx.scan and isinstance(value, dict | list):
            raise Fallback  # _map_leaves changes containers in place: not in this pass
        return True, _map_leaves(value, transform, action.value, decision)

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


_T = TypeVar("_T")


class PerRule(Generic[_T]):
    """What is compiled from a ResponseRule, once per rule object (a policy reload makes
    new rule objects; past `limit` entries the cache starts afresh)."""

    def __init__(self, build: Callable[[ResponseRule], _T], limit: int = 4096) -> None:
        self._build = build
        self._limit = limit
        self._cache: dict[int, tuple[ResponseRule, _T]] = {}

    def __call__(self, rule: ResponseRule) -> _T:
        cached = self._cache.get(id(rule))
        if cached is not None and cached[0] is rule:
            return cached[1]
        if len(self._cache) >= self._limit:
            self._cache.clear()
        built = self._build(rule)
        self._cache[id(rule)] = (rule, built)
        return built


# The compiled plan of a rule, compiled once per rule object.
plan_for: PerRule[RecordPlan] = PerRule(RecordPlan)
