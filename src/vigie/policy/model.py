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

from vigie.policy.metadata import Metadata
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


# Kept outside the records when a route declares no `envelope`: pagination, totals, links
# and types, and a FHIR Bundle's entry URL and search data (docs/contract.md).
DEFAULT_ENVELOPE_KEEP: tuple[str, ...] = (
    "resourceType", "type", "total", "count", "page", "per_page", "page_size", "offset",
    "limit", "next", "previous", "cursor", "link", "links", "entry[*].fullUrl",
    "entry[*].search")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What may leave outside the records: `keep` selectors from the body root (NIR-scanned);
    everything else that is not a record follows `unlisted` (drop by default)."""

    keep: tuple[Selector, ...]
    unlisted: Unlisted = Unlisted.DROP
    declared: bool = True  # False: the defaults (DEFAULT_ENVELOPE_KEEP), not in the file


@dataclass(frozen=True, slots=True)
class ResponseRule:
    records: Selector
    fields: tuple[FieldRule, ...] = ()
    unlisted: Unlisted = Unlisted.DROP
    bind: tuple[Binding, ...] = ()
    envelope: Envelope | None = None  # None: the defaults (minimize/envelope.py)


@dataclass(frozen=True, slots=True)
class QueryRule:
    allowed: frozenset[str]
    max: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PageSize:
    """`page_size:` of a route: the query parameter that sizes a page, and its cap.

    `max` None: the query rule's `max` of that parameter, if any.
    """

    param: str
    max: int | None = None


@dataclass(frozen=True, slots=True)
class RequestRule:
    """`request:` of a route: whether it takes a body, how large, of which media types.

    `body` None: the method decides (POST, PUT and PATCH take one; others do not).
    `max_bytes` None: the global `max_request_body_bytes`. `content_types` empty: any.
    """

    body: bool | None = None
    max_bytes: int | None = None
    content_types: frozenset[str] = frozenset()


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
    request: RequestRule | None = None
    # The path parameter naming the patient (guard: distinct patients checked at
    # admission). None: inferred (`id` on a single-record route); "": none.
    patient: str | None = None
    reserve: int | None = None  # records reserved at admission; None: derived by the guard
    page_size: PageSize | None = None  # None: the guard guesses from parameter names

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
    issuer_line: int = 0  # the line of `issuer:`, else of `client:` (for start-up errors)
    # --- policy metadata (issue #18): owner, purpose, legal basis, retention, contact ---
    metadata: Metadata | None = None


@dataclass(frozen=True, slots=True)
class PolicySet:
    clients: Mapping[str, ClientPolicy]

    def get(self, client: str) -> ClientPolicy | None:
        return self.clients.get(client)
