"""The containment step of the pipeline, right after authorize, and the least form of a route.

Switches in force for the client (its own and the global one) combine: `deny` refuses
everything (403), `read-only` refuses unsafe methods (403), `minimal` answers every
route in its least form (`least_form`) and refuses the routes without response rules
(their bodies have no records to minimize: fail closed). Enforced in every mode. The
step also records, on the Decision, the form in which each field of the route is
disclosed (`forms`), for the audit line: value-free, a few bytes per route.
"""

from __future__ import annotations

import time
from dataclasses import replace

from vigie.context import Decision, Grant
from vigie.errors import Forbidden
from vigie.incident.model import ContainMode
from vigie.incident.state import IncidentState
from vigie.policy.model import (
    Action,
    FieldRule,
    MaskStyle,
    ResponseRule,
    Route,
    Unlisted,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORMS = {Action.KEEP: "clear", Action.MASK: "masked", Action.PSEUDONYMIZE: "pseudonym",
         Action.GENERALIZE: "generalized"}
REFERENCE_FIELD = "id"  # kept as is: the audit's patient reference, so notification stays exact

_LEAST: dict[tuple[int, bool], tuple[Route, Route]] = {}
_FORMS: dict[int, tuple[Route, dict[str, str] | None]] = {}
_MAX_CACHED = 4096


def contain(state: IncidentState, grant: Grant, decision: Decision, *,
            can_pseudonymize: bool) -> Grant:
    """The grant to serve under the switches in force; raises Forbidden(`contained`)."""
    if state.containments:
        modes = {switch.mode for switch in state.switches(grant.policy.client, time.time())}
        if ContainMode.DENY in modes:
            raise Forbidden("contained", "access suspended by the security team")
        if ContainMode.READ_ONLY in modes and decision.method not in SAFE_METHODS:
            raise Forbidden("contained", "read-only: access restricted by the security team")
        if ContainMode.MINIMAL in modes:
            if grant.route.response is None:  # no records to minimize: no least form exists
                raise Forbidden("contained", "minimal: this route has no response rules, "
                                "refused while the security team restricts access")
            grant = replace(grant, route=least_form(grant.route, can_pseudonymize))
            decision.reason = "contained:minimal"
    decision.forms = forms_of(grant.route)
    return grant


def least_form(route: Route, can_pseudonymize: bool) -> Route:
    """The route with every field in its least identifying form.

    keep -> pseudonym (dropped without a pseudonym key), mask -> mask all, unlisted
    fields dropped; generalizations, pseudonyms and drops stay. A kept field was the
    only way a whole NIR could leave: under `minimal` a NIR never does. The record's
    `id` stays the reference the audit log and `audit exposed` use.
    """
    key = (id(route), can_pseudonymize)
    cached = _LEAST.get(key)
    if cached is not None and cached[0] is route:
        return cached[1]
    rules = route.response
    if rules is None:
        least = route
    else:
        fields = tuple(_least_rule(rule, can_pseudonymize) for rule in rules.fields)
        least = replace(route, response=replace(
            rules, fields=tuple(f for f in fields if f is not None), unlisted=Unlisted.DROP))
    if len(_LEAST) >= _MAX_CACHED:
        _LEAST.clear()
    _LEAST[key] = (route, least)
    return least


def _least_rule(rule: FieldRule, can_pseudonymize: bool) -> FieldRule | None:
    if rule.action is Action.KEEP:
        if rule.selector.text == REFERENCE_FIELD:
            return rule
        if can_pseudonymize:
            return replace(rule, action=Action.PSEUDONYMIZE)
        return None  # dropped: unlisted fields are
    if rule.action is Action.MASK:
        return replace(rule, mask=MaskStyle.ALL)
    return rule


def forms_of(route: Route) -> dict[str, str] | None:
    """`{selector: clear|masked|pseudonym|generalized}` of the fields a route discloses.

    `*` stands for the fields the policy does not list when it keeps them (`unlisted:
    keep`). None for a route without response rules (its body is not made of records).
    """
    cached = _FORMS.get(id(route))
    if cached is not None and cached[0] is route:
        return cached[1]
    rules: ResponseRule | None = route.response
    forms: dict[str, str] | None = None
    if rules is not None:
        forms = {rule.selector.text: FORMS[rule.action] for rule in rules.fields
                 if rule.action in FORMS}
        if rules.unlisted is Unlisted.KEEP:
            forms["*"] = "clear"
    if len(_FORMS) >= _MAX_CACHED:
        _FORMS.clear()
    _FORMS[id(route)] = (route, forms)
    return forms
