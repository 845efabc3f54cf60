"""`suggest`: the least-privilege policy that would have served what a client did.

Routes come from what was used, never from what was allowed: a route of the
current policy that the audit never shows is left out; shapes the usage log saw
(report-only) become route templates (templates.py). Methods, query parameters
and page sizes are those seen; the fields are those returned, each in the form
its purpose needs (forms.py); limits are the observed peaks with a margin.
Scopes, bindings and metadata are carried over from the current policy, which
is also where the purpose and the décret-cadre NIR basis are read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from vigie.learn.evidence import Evidence
from vigie.learn.forms import Entitlement, action_for, suggested_limits
from vigie.learn.shapes import PARAM
from vigie.learn.templates import generalize, route_name, specificity, split, template
from vigie.learn.usage import ShapeUse
from vigie.policy.model import Action, ClientPolicy, FieldRule, Route
from vigie.policy.purposes import PURPOSES, Purpose, is_nir
from vigie.policy.selectors import parse_selector
from vigie.proxy import UNMATCHED

_READ_METHODS = {"HEAD": "GET"}


@dataclass(slots=True)
class _Draft:
    path: str
    methods: set[str] = field(default_factory=set)
    query: set[str] = field(default_factory=set)
    page_max: dict[str, int] = field(default_factory=dict)
    records: str | None = None
    media: str | None = None
    fields: set[str] = field(default_factory=set)
    requests: int = 0
    base: Route | None = None  # the current policy's route it comes from
    name: str | None = None
    refined: bool = False  # the usage log showed its query parameters
    scopes: set[str] | None = None  # carried by every token the usage log saw on it
    # The current policy already gave a NIR in clear on this route. Report-only answers are
    # forwarded unfiltered: what they returned never counts as having had it.
    clear_nir: bool = False

    def granted(self, selectors: Iterable[str]) -> None:
        self.clear_nir = self.clear_nir or any(is_nir(s) for s in selectors)


@dataclass(slots=True)
class Suggestion:
    policy: dict[str, Any]
    notes: list[str]
    entitlement: Entitlement


def suggest(evidence: Evidence, current: ClientPolicy | None = None,
            purpose_code: str | None = None) -> Suggestion:
    notes: list[str] = []
    purpose = _purpose(current, purpose_code, notes)
    drafts = _drafts(evidence, current, notes)
    entitlement = Entitlement(
        purpose=purpose,
        had_clear_nir=any(draft.clear_nir for draft in drafts),
        nir_basis=(current.metadata.legal_basis.nir
                   if current is not None and current.metadata is not None else None))
    taken: set[str] = set()
    routes = [_route(draft, replace(entitlement, had_clear_nir=draft.clear_nir), taken, notes)
              for draft in sorted(drafts, key=lambda d: (specificity(d.path), d.path))]
    policy: dict[str, Any] = {"apiVersion": "vigie/v1", "client": evidence.client}
    if current is not None and current.issuer:
        policy["issuer"] = current.issuer
    elif len(evidence.issuers) == 1:  # pin the client to the one issuer its tokens came from
        policy["issuer"] = next(iter(evidence.issuers))
    elif len(evidence.issuers) > 1:
        notes.append(f"tokens of {evidence.client} came from {len(evidence.issuers)} issuers: "
                     "a policy belongs to one (`issuer`); split it per issuer")
    policy["description"] = (f"Least privilege learnt from {evidence.client_lines} audited "
                             f"requests ({evidence.first} to {evidence.last})")
    policy["mode"] = "enforce"
    if current is not None and current.metadata is not None:
        policy["metadata"] = _metadata(current)
    policy["routes"] = routes
    policy["limits"] = suggested_limits(evidence.peak_requests_minute,
                                        evidence.peak_records_hour, evidence.peak_patients_day)
    policy["client_limits"] = {
        key: value for key, value in suggested_limits(
            evidence.client_requests_minute, 0, evidence.client_patients_day).items()
        if key in ("requests", "distinct_patients")}
    if entitlement.had_clear_nir and not entitlement.keeps_nir:
        notes.append("the policy gave the NIR in clear, but its purpose or "
                     "metadata.legal_basis.nir does not justify it: the NIR is dropped")
    return Suggestion(policy, notes, entitlement)


def _purpose(current: ClientPolicy | None, code: str | None, notes: list[str]) -> Purpose | None:
    if code is None and current is not None and current.metadata is not None:
        code = current.metadata.purpose
    if code is None:
        notes.append("no purpose declared (metadata.purpose or --purpose): every field gets "
                     "its least form")
        return None
    return PURPOSES[code]


def _drafts(evidence: Evidence, current: ClientPolicy | None, notes: list[str]) -> list[_Draft]:
    known = {route.name: route for route in current.routes} if current is not None else {}
    by_path: dict[str, _Draft] = {}
    # Routes of the current policy that the audit shows in use.
    for name, use in evidence.routes.items():
        if name == UNMATCHED or use.requests == 0:
            continue
        base = known.get(name)
        if base is None:
            notes.append(f"the audit names route {name!r}, unknown to the current policy: "
                         "its path comes from the usage log only")
            continue
        draft = by_path.setdefault(base.path, _Draft(base.path, base=base, name=base.name))
        draft.methods |= {_READ_METHODS.get(m, m) for m in use.methods}
        draft.requests += use.requests
        draft.fields |= use.fields
        draft.granted(use.fields)  # audit `fields`: what the policy disclosed unmasked
        if base.response is not None:
            draft.granted(r.selector.text for r in base.response.fields
                          if r.action is Action.KEEP)
        if base.response is not None:
            draft.records = draft.records or base.response.records.text
            draft.fields |= {r.selector.text for r in base.response.fields
                             if r.action is not Action.KEEP}
        if base.query is not None:
            draft.query |= set(base.query.allowed)
            draft.page_max.update(base.query.max)
    # Shapes from the usage log: known routes refine their draft, the rest become templates.
    unmatched: list[ShapeUse] = []
    for shape in evidence.shapes.values():
        base = known.get(shape.route)
        if base is not None and base.path in by_path:
            _merge(by_path[base.path], shape, replace_query=True)
        else:
            unmatched.append(shape)
    mapping = generalize(split(shape.path) for shape in unmatched)
    for shape in unmatched:
        path = template(mapping[split(shape.path)])
        draft = by_path.setdefault(path, _Draft(path))
        draft.methods.add(_READ_METHODS.get(shape.method, shape.method))
        draft.requests += shape.requests
        _merge(draft, shape, replace_query=False)
    unmatched_use = evidence.routes.get(UNMATCHED)
    if unmatched_use is not None and unmatched_use.requests and not evidence.shapes:
        notes.append(f"{unmatched_use.requests} requests matched no route: their paths are "
                     "in the usage log only (--usage)")
    if any(_withheld(shape.query) or _withheld(shape.fields)
           for shape in evidence.shapes.values()):
        notes.append("query parameter names or response keys the usage log withheld as "
                     "possible names ({}) are not allowed (their fields fall under "
                     "`unlisted`); add them by hand if they are API words")
    if not by_path:
        notes.append("no route was used with an answer: the policy has no route")
    return list(by_path.values())


def _withheld(words: set[str]) -> set[str]:
    """Query names and field selectors holding `{}`: a word the usage log did not write."""
    return {word for word in words if PARAM in word}


def _merge(draft: _Draft, shape: ShapeUse, *, replace_query: bool) -> None:
    if replace_query and not draft.refined:  # what was used replaces what was allowed
        draft.query, draft.page_max, draft.refined = set(), {}, True
    draft.query |= shape.query - _withheld(shape.query)
    for name, size in shape.page_max.items():
        draft.page_max[name] = max(draft.page_max.get(name, 0), size)
    draft.records = draft.records or shape.records
    draft.media = draft.media or shape.media
    draft.fields |= shape.fields - _withheld(shape.fields)
    if shape.scopes is not None:
        draft.scopes = set(shape.scopes) if draft.scopes is None else draft.scopes & shape.scopes


def _route(draft: _Draft, entitlement: Entitlement, taken: set[str],
           notes: list[str]) -> dict[str, Any]:
    base = draft.base
    methods = sorted(draft.methods) or ["GET"]
    name = draft.name if draft.name and draft.name not in taken else route_name(
        methods[0], split(draft.path), taken)
    taken.add(name)
    route: dict[str, Any] = {"name": name, "methods": methods, "path": draft.path}
    route["scopes"] = sorted(base.scopes) if base is not None else sorted(draft.scopes or ())
    if not route["scopes"]:
        notes.append(f"route {name}: no scope known; add the scope its tokens carry")
    route["query"] = {"allowed": sorted(draft.query)}
    maxima = {k: v for k, v in sorted(draft.page_max.items()) if k in draft.query}
    if maxima:
        route["query"]["max"] = maxima
    response = _response(draft, entitlement, name, notes)
    if response is not None:
        route["response"] = response
    return route


def _response(draft: _Draft, entitlement: Entitlement, name: str,
              notes: list[str]) -> dict[str, Any] | None:
    base = draft.base
    inspectable = draft.media in (None, "json", "ndjson")
    if not inspectable and (base is None or base.response is None):
        return None
    fields: dict[str, Any] = {}
    seen: set[object] = set()
    for selector in sorted(_leaves(draft.fields)):
        try:
            steps = parse_selector(selector).steps
        except ValueError:
            continue  # a path no selector can name is dropped by `unlisted: drop`
        if steps not in seen:
            seen.add(steps)
            fields[selector] = action_for(selector, entitlement)
    if not fields:
        notes.append(f"route {name}: no returned field was observed (streamed or empty "
                     "answers): every field is dropped; list those the client needs")
    response: dict[str, Any] = {"records": draft.records or "$", "fields": fields,
                                "unlisted": "drop"}
    if base is not None and base.response is not None and base.response.bind:
        response["bind"] = {b.field.text: b.claim for b in base.response.bind}
    return response


def _leaves(selectors: set[str]) -> set[str]:
    """Without the selectors that contain others (`address` when `address[*].city` is there):
    a rule on a whole subtree would override the finer rules below it."""
    return {s for s in selectors
            if not any(other.startswith((s + ".", s + "[")) for other in selectors)}


def _metadata(current: ClientPolicy) -> dict[str, Any]:
    meta = current.metadata
    assert meta is not None  # noqa: S101 - checked by the caller
    out: dict[str, Any] = {k: getattr(meta, k) for k in
                           ("owner", "contact", "purpose", "purpose_detail", "retention")
                           if getattr(meta, k) is not None}
    basis = {k: getattr(meta.legal_basis, k) for k in ("art6", "art9", "nir")
             if getattr(meta.legal_basis, k) is not None}
    if basis:
        out["legal_basis"] = basis
    return out


def rule_action(rule: FieldRule) -> Any:
    """A parsed field rule written back as its YAML action (for diffs)."""
    if rule.mask is not None:
        return {"mask": str(rule.mask)}
    if rule.generalize is not None:
        return {"generalize": str(rule.generalize)}
    return str(rule.action)
