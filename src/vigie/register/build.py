"""The register's content: per client, what it sees and why, and the fields × clients matrix.

Built from the loaded policies only (never from traffic), so that it holds no
patient value. Each field is shown in the form it is disclosed in:

    clear        kept as it is (`keep`)
    pseudonym    `pseudonymize` (a keyed, per-client token)
    masked       `{mask: ...}`
    generalized  `{generalize: ...}`
    never        `drop`, or not listed where `unlisted: drop`

The matrix shows, per field and client, the most revealing form over the
client's routes (in that order, clear first). A route without response rules,
or with `unlisted: keep`, passes fields it does not name: the matrix says
`unfiltered` there (the NIR is still masked everywhere but in a named `keep`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vigie.policy.model import Action, ClientPolicy, FieldRule, PolicySet, Unlisted
from vigie.policy.purposes import ART6, ART9, NIR_PURPOSES, PURPOSES, categorize
from vigie.rates import Limits

FORMS = ("clear", "pseudonym", "masked", "generalized", "unfiltered", "never")
_RANK = {"clear": 0, "unfiltered": 1, "pseudonym": 2, "masked": 3, "generalized": 4, "never": 5}


@dataclass(frozen=True, slots=True)
class FieldEntry:
    route: str
    selector: str
    category: str
    form: str  # one of FORMS
    detail: str = ""  # last2, year, ...


@dataclass(frozen=True, slots=True)
class RouteEntry:
    name: str
    methods: str
    path: str
    scopes: str
    query: str
    unlisted: str  # what happens to fields the route does not name
    bind: str


@dataclass(slots=True)
class ClientEntry:
    client: str
    description: str
    mode: str
    owner: str
    contact: str
    purpose: str
    legal_basis: list[str]
    retention: str
    routes: list[RouteEntry] = field(default_factory=list)
    fields: list[FieldEntry] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    unfiltered: bool = False  # some route passes fields it does not name

    def form_of(self, selector: str) -> str:
        """The most revealing form of this field over the client's routes."""
        forms = [f.form for f in self.fields if f.selector == selector]
        if self.unfiltered:
            forms.append("unfiltered")  # a route that names no field passes this one too
        return min(forms, key=_RANK.__getitem__) if forms else "never"


@dataclass(slots=True)
class Register:
    clients: list[ClientEntry]
    matrix_fields: list[tuple[str, str]]  # (selector, category), sorted by category then name

    def cell(self, selector: str, client: ClientEntry) -> str:
        return client.form_of(selector)


def build_register(policies: PolicySet) -> Register:
    clients = [_client(policies.clients[name]) for name in sorted(policies.clients)]
    seen = {(f.selector, f.category) for c in clients for f in c.fields}
    return Register(clients, sorted(seen, key=lambda item: (item[1], item[0])))


def _client(policy: ClientPolicy) -> ClientEntry:
    meta = policy.metadata
    missing = "not declared"
    purpose = missing
    basis: list[str] = []
    if meta is not None:
        if meta.purpose is not None:
            purpose = f"{meta.purpose}: {PURPOSES[meta.purpose].label}"
            if meta.purpose_detail:
                purpose += f" ({meta.purpose_detail})"
        lb = meta.legal_basis
        if lb.art6:
            basis.append(f"GDPR art. 6(1)({lb.art6}): {ART6[lb.art6]}")
        if lb.art9:
            basis.append(f"GDPR art. 9(2)({lb.art9}): {ART9[lb.art9]}")
        if lb.nir:
            basis.append(f"décret-cadre NIR: {NIR_PURPOSES[lb.nir]}")
    entry = ClientEntry(
        client=policy.client, description=policy.description or "",
        mode=str(policy.mode) if policy.mode else "global setting",
        owner=(meta.owner if meta and meta.owner else missing),
        contact=(meta.contact if meta and meta.contact else missing),
        purpose=purpose, legal_basis=basis or [missing],
        retention=(meta.retention if meta and meta.retention else missing))
    for route in policy.routes:
        response = route.response
        unlisted = ("unfiltered (no response rules)" if response is None
                    else "kept" if response.unlisted is Unlisted.KEEP else "never")
        if response is None or response.unlisted is Unlisted.KEEP:
            entry.unfiltered = True
        query = "any" if route.query is None else (", ".join(sorted(route.query.allowed))
                                                   or "none")
        if route.query is not None and route.query.max:
            query += " (max " + ", ".join(f"{k} {v}" for k, v in sorted(route.query.max.items())) \
                + ")"
        entry.routes.append(RouteEntry(
            name=route.name, methods=", ".join(sorted(route.methods)), path=route.path,
            scopes=", ".join(sorted(route.scopes)) or "none", query=query, unlisted=unlisted,
            bind=", ".join(f"{b.field.text} = token {b.claim}" for b in response.bind)
            if response is not None else ""))
        for rule in response.fields if response is not None else ():
            entry.fields.append(_field(route.name, rule))
    entry.limits = _limits("per user", policy.limits)
    if policy.client_limits is not None:
        entry.limits += _limits("whole client", policy.client_limits)
    return entry


def _field(route: str, rule: FieldRule) -> FieldEntry:
    selector = rule.selector.text
    category = str(categorize(selector))
    if rule.action is Action.KEEP:
        return FieldEntry(route, selector, category, "clear")
    if rule.action is Action.PSEUDONYMIZE:
        return FieldEntry(route, selector, category, "pseudonym")
    if rule.action is Action.MASK:
        return FieldEntry(route, selector, category, "masked", str(rule.mask))
    if rule.action is Action.GENERALIZE:
        return FieldEntry(route, selector, category, "generalized", str(rule.generalize))
    return FieldEntry(route, selector, category, "never")


def _limits(scope: str, limits: Limits) -> list[str]:
    out = []
    for name in ("requests", "records", "distinct_patients"):
        value = getattr(limits, name, None)
        if value is not None:
            out.append(f"{scope}: {name.replace('_', ' ')} {value}")
    enumeration = getattr(limits, "enumeration", None)
    if enumeration is not None:
        out.append(f"{scope}: enumeration detection {'on' if enumeration else 'off'}")
    return out or [f"{scope}: the global limits"]
