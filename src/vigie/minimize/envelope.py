"""The envelope: everything in a body that is not a record, minimized too.

A route's `envelope` (or the defaults, `model.DEFAULT_ENVELOPE_KEEP`) is
compiled like a record's field rules: a plan of `keep` rules from the body root
whose `unlisted` (drop by default) applies to every other part that is not a
record. So an element the record selector does not reach (a FHIR entry without
`resource`) can never carry a patient through whole: its declared parts (a
`fullUrl`, a `search`) are kept and NIR-scanned, the rest is dropped.

An element where a record should be, that has no record but looks like one
(an object with an identity field: a name, a birth date, an identifier, a
field the route's rules or bindings name...), is withheld and counted as a
withheld record instead: the safe side when the upstream's shape is not the
one the policy expects.
"""

from __future__ import annotations

from typing import Any

from vigie.minimize.fields import PerRule, RecordPlan
from vigie.policy.model import (
    DEFAULT_ENVELOPE_KEEP,
    Action,
    FieldRule,
    Key,
    ResponseRule,
    Unlisted,
)
from vigie.policy.selectors import parse_location, parse_selector

IDENTITY_KEYS = frozenset({
    "name", "names", "family", "given", "first_name", "firstname", "last_name", "lastname",
    "surname", "birth_name", "birthname", "birth_date", "birthdate", "dob", "nir", "ins",
    "ssn", "address", "telecom", "phone", "mobile", "email", "patient", "subject",
    "identifier", "gender", "sex",
})
_GENERIC_KEYS = frozenset({"id", "resourcetype", "type", "meta", "fullurl", "search"})
_DEFAULT_RULES = tuple(FieldRule(parse_selector(text), Action.KEEP)
                       for text in DEFAULT_ENVELOPE_KEEP)
_ROOT = parse_location("$")


class EnvelopePlan:
    """One route's envelope rules, compiled, and what makes an element look like a record."""

    def __init__(self, rule: ResponseRule) -> None:
        envelope = rule.envelope
        if envelope is None:
            fields, unlisted = _DEFAULT_RULES, Unlisted.DROP
        else:
            fields = tuple(FieldRule(selector, Action.KEEP) for selector in envelope.keep)
            unlisted = envelope.unlisted
        self.plan = RecordPlan(ResponseRule(records=_ROOT, fields=fields, unlisted=unlisted),
                               whole_nir_kept=False)
        self.drops = unlisted is Unlisted.DROP
        named = {rule_.selector.steps[0] for rule_ in rule.fields}
        named |= {binding.field.steps[0] for binding in rule.bind}
        self.identity_keys = IDENTITY_KEYS | {
            step.name.lower() for step in named
            if isinstance(step, Key) and step.name.lower() not in _GENERIC_KEYS}

    def looks_like_record(self, value: Any) -> bool:
        keys = self.identity_keys
        return isinstance(value, dict) and any(
            isinstance(key, str) and key.lower() in keys for key in value)


# The compiled envelope of a rule, compiled once per rule object.
envelope_for: PerRule[EnvelopePlan] = PerRule(EnvelopePlan)
