"""The immutable policy model: what the loader builds and every stage reads.

Parsed once (by `policy.loader`) and applied many times. Nothing here does I/O.

Selectors are tuples of steps relative to one record:

    last_name                                  -> (Key("last_name"),)
    telecom[*].value                           -> (Key("telecom"), Each(), Key("value"))
    identifier[?system=urn:x].value            -> (Key("identifier"), Where("system", "urn:x"),
                                                   Key("value"))

`Where` selects the elements of a list whose `key` equals `value` (string compare).
Record locations use the same steps from the body root: "$" -> (), "$[*]" -> (Each(),),
"$.items[*]" -> (Key("items"), Each()), "$.entry[*].resource" -> (Key("entry"), Each(),
Key("resource")).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from vigie.rates import Limits


@dataclass(frozen=True, slots=True)
class Key:
    name: str


@dataclass(frozen=True, slots=True)
class Each:
    pass


@dataclass(frozen=True, slots=True)
class Where:
    key: str
    value: str


Step = Key | Each | Where


@dataclass(frozen=True, slots=True)
class Selector:
    text: str
    steps: tuple[Step, ...]


class Action(StrEnum):
    KEEP = "keep"
    DROP = "drop"
    MASK = "mask"
    PSEUDONYMIZE = "pseudonymize"
    GENERALIZE = "generalize"


class MaskStyle(StrEnum):
    LAST2 = "last2"
    LAST4 = "last4"
    ALL = "all"


class Generalization(StrEnum):
    YEAR = "year"
    MONTH = "month"
    DEPARTMENT = "department"


@dataclass(frozen=True, slots=True)
class FieldRule:
    selector: Selector
    action: Action
    mask: MaskStyle | None = None
    generalize: Generalization | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Binding:
    """Object-level check: the record field must equal the token claim."""

    field: Selector
    claim: str


class Unlisted(StrEnum):
    DROP = "drop"
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class ResponseRule:
    records: Selector
    fields: tuple[FieldRule, ...] = ()
    unlisted: Unlisted = Unlisted.DROP
    bind: tuple[Binding, ...] = ()


@dataclass(frozen=True, slots=True)
class QueryRule:
    allowed: frozenset[str]
    max: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    methods: frozenset[str]
    path: str
    # One entry per path segment: the literal text, or None for a {param}.
    segments: tuple[str | None, ...]
    params: tuple[str, ...]
    scopes: frozenset[str] = frozenset()
    query: QueryRule | None = None
    response: ResponseRule | None = None
    line: int = 0
    # The path parameter naming the patient (guard: distinct patients checked at
    # admission). None: inferred (`id` on a single-record route); "": none.
    patient: str | None = None
    reserve: int | None = None  # records reserved at admission; None: derived by the guard

    @property
    def masks(self) -> bool:
        """A route that declares response rules must have every body inspected."""
        return self.response is not None


class Mode(StrEnum):
    ENFORCE = "enforce"
    REPORT_ONLY = "report-only"


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    client: str
    routes: tuple[Route, ...]
    description: str = ""
    mode: Mode | None = None
    limits: Limits = Limits()
    client_limits: Limits | None = None
    source: Path | None = None
    # When set, only tokens of this issuer act as this client (client names are per issuer).
    issuer: str | None = None


@dataclass(frozen=True, slots=True)
class PolicySet:
    clients: Mapping[str, ClientPolicy]

    def get(self, client: str) -> ClientPolicy | None:
        return self.clients.get(client)
