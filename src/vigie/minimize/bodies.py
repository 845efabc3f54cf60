"""Buffered bodies by kind: JSON documents (records located, envelope scanned), text.

`Job` holds one response's state: the compiled plan (None when only the NIR
rule applies: no response rules, or a non-2xx status), where the records are,
and the Decision that receives every count. The streamed paths (`stream.py`)
reuse `Job.visit` record by record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from vigie.context import Decision, Identity
from vigie.errors import InspectionError
from vigie.minimize import nir
from vigie.minimize.charset import other_readings, sniff
from vigie.minimize.envelope import EnvelopePlan
from vigie.minimize.fields import Node, RecordContext, RecordPlan, as_text
from vigie.minimize.tree import check_depth, count_nir, scan_key, scan_tree
from vigie.policy.model import Each, Key, Step


class _Withheld:
    """Marker: the record failed its object-level binding."""


WITHHELD: Final = _Withheld()


class _Auto:
    """`Job.visit`'s marker: find the envelope node from the step index."""


_AUTO: Final = _Auto()
_UTF8 = ("utf-8", "utf8")


@dataclass(slots=True)
class Job:
    decision: Decision
    identity: Identity
    plan: RecordPlan | None
    steps: tuple[Step, ...]
    ctx: RecordContext
    envelope: EnvelopePlan | None = None  # None: no envelope rules (the old NIR-scan only)

    def record(self, value: Any) -> Any:
        """One record through its binding and field actions, counted."""
        plan = self.plan
        if plan is None:
            return scan_tree(value, self.decision)
        if not isinstance(value, dict):
            raise InspectionError("a record is not a JSON object")
        if not plan.allows(value, self.identity):
            self.decision.withheld += 1
            return WITHHELD
        out = plan.apply(value, self.ctx)
        reference = plan.reference(value, out)
        if reference is not None:
            self.decision.patients.append(reference)
        self.decision.records += 1
        return out

    def visit(self, value: Any, index: int = 0, env: Node | None | _Auto = _AUTO) -> Any:
        """The document (or part) from step `index` on: records found, the rest minimized
        as the envelope (`env`: the envelope plan's node here; found from `index` when
        not given)."""
        if self.plan is None:
            return scan_tree(value, self.decision)
        if index == len(self.steps):
            return self.record(value)
        if isinstance(env, _Auto):
            env = self._env_at(index)
        step = self.steps[index]
        if isinstance(step, Key):
            if not isinstance(value, dict):
                raise InspectionError("records are not where the policy says")
            if step.name not in value:
                if index > 0 and not isinstance(self.steps[index - 1], Key):
                    return self._no_record(value, env, index)
                raise InspectionError("records are not where the policy says")
            out: dict[str, Any] = {}
            for key, item in value.items():
                if key == step.name:
                    item = self.visit(item, index + 1, _child(env, key))
                    if item is WITHHELD:
                        return WITHHELD
                else:
                    present, item = self._outside(item, _child(env, key), index + 1)
                    if not present:
                        continue
                out[scan_key(key, self.decision)] = item
            return out
        if not isinstance(value, list):
            raise InspectionError("records are not where the policy says")
        kept: list[Any] = []
        for element in value:
            child = env.element_child(element) if env is not None else None
            if isinstance(step, Each) or _matches(element, step.key, step.value):
                element = self.visit(element, index + 1, child)
                if element is WITHHELD:
                    continue
            else:
                present, element = self._outside(element, child, index + 1)
                if not present:
                    continue
            kept.append(element)
        return kept

    def _no_record(self, value: dict[str, Any], env: Node | None, index: int) -> Any:
        """An element where a record should be, without one: withheld (counted) when it
        looks like a record, else minimized as envelope (WITHHELD when nothing is left)."""
        envelope = self.envelope
        if envelope is not None and envelope.looks_like_record(value):
            self.decision.withheld += 1
            return WITHHELD
        present, out = self._outside(value, env, index)
        return out if present else WITHHELD

    def _outside(self, value: Any, node: Node | None, depth: int) -> tuple[bool, Any]:
        """A part outside the records, through the envelope rules: (present, value)."""
        envelope = self.envelope
        if envelope is None:
            return True, self._rest(value, depth)
        if node is None:
            if envelope.drops:
                self.decision.masked["drop"] += 1
                return False, None
            return True, self._rest(value, depth)
        return envelope.plan.walk(value, node, self.ctx)

    def _env_at(self, index: int) -> Node | None:
        """The envelope node reached by the first `index` steps of the record location."""
        if self.envelope is None:
            return None
        node: Node | None = self.envelope.plan.root
        for step in self.steps[:index]:
            if node is None:
                return None
            if isinstance(step, Key):
                node = node.keys.get(step.name)
            elif isinstance(step, Each):
                node = node.each
            else:
                node = node.where.get((step.key, step.value), node.each)
        return node

    def _rest(self, value: Any, depth: int) -> Any:
        """A part of the document that holds no record: NIR-scanned (or, in the one-scan
        pass, left for the scan of the output)."""
        if self.ctx.scan:
            return scan_tree(value, self.decision, depth)
        check_depth(value, depth)
        return value


def _child(env: Node | None, key: str) -> Node | None:
    return env.keys.get(key) if env is not None else None


def _matches(element: Any, key: str, wanted: str) -> bool:
    return isinstance(element, dict) and as_text(element.get(key)) == wanted


def parse_json(raw: bytes, charset: str | None) -> Any:
    try:
        if charset is not None and charset not in _UTF8:
            return orjson.loads(raw.decode(charset))
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, UnicodeDecodeError, LookupError) as exc:
        raise InspectionError("response body is not valid JSON") from exc


def dump_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise InspectionError("response body cannot be re-serialized") from exc


def looks_like_json(raw: bytes) -> bool:
    head = raw.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    return head in (b"{", b"[")


def decode_text(raw: bytes, charset: str | None) -> tuple[str, str]:
    """(text, charset to re-encode with). No charset: sniffed (`charset.sniff`)."""
    if charset is None:
        charset = sniff(raw)
    try:
        return raw.decode(charset), charset
    except (UnicodeDecodeError, LookupError) as exc:
        raise InspectionError("response body does not match its charset") from exc


def refuse_other_readings(masked: bytes, codec: str) -> None:
    """A body whose charset was sniffed: no other plausible reading of the masked bytes
    may show a NIR (fail closed: the sniffing could have been wrong)."""
    for reading in other_readings(masked, codec):
        if nir.contains(reading):
            raise InspectionError("response text without charset reads as a NIR")


def scan_text(text: str, decision: Decision, *, where: str = "text") -> str:
    """Free text with every NIR masked, plain or behind escapes (masked in place)."""
    masked, found = nir.mask_text(text)
    if found:
        count_nir(decision, where, found)
    return masked


def encode_text(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset)
    except (UnicodeEncodeError, LookupError) as exc:
        raise InspectionError("response body cannot be re-encoded") from exc
