"""What the enumeration signals learn from one answered request, as a value.

An `Observation` keeps only what the signals need: the route name, the numeric path
parameters (shifted by a keyed offset: the steps of a walk survive, the ids do not),
whether a lookup missed, the page number of a search, whether it was at the maximum
page size (read from the parameter the route declares in `page_size:`, else guessed from
`SIZE_KEYS`) or broad, and the records disclosed. Never an id, a name or a query value, so
it can be shared between replicas through Redis (`encode`/`decode`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

PAGE_KEYS = ("page", "_page", "page_number", "offset", "start", "skip")
SIZE_KEYS = ("page_size", "per_page", "limit", "size", "_count", "count")
NAME_KEYS = ("last_name", "lastname", "name", "family", "nom")
WILDCARDS = frozenset("*%?_")
DEFAULT_MAX_PAGE_SIZE = 50  # "page size at max" when the route declares no maximum


@dataclass(frozen=True, slots=True)
class Observation:
    at: float  # epoch seconds
    route: str
    numbers: tuple[tuple[str, int], ...] = ()  # numeric path parameters, offset
    lookup: bool = False  # the path had parameters
    missed: bool = False  # 404/403, or its only record withheld
    search: bool = False  # no path parameter, a query
    page: int | None = None
    at_max: bool = False  # page size at the route's maximum
    broad: bool = False  # filters on almost nothing
    records: int = 0


def observe_request(now: float, route: str, params: Mapping[str, str], query: str,
                    status: int, records: int, withheld: int, max_page_size: int | None,
                    broad_name_length: int, offset: int = 0,
                    size_param: str | None = None) -> Observation:
    """`size_param`: the query parameter the route declares as its page size (`page_size:`
    of the policy); None: guessed from `SIZE_KEYS`, for routes that declare nothing."""
    if params:
        numbers = tuple((name, int(value) + offset) for name, value in params.items()
                        if value.isdigit() and len(value) <= 18)
        missed = status in (403, 404) or (withheld > 0 and records == 0)
        return Observation(now, route, numbers, lookup=True, missed=missed, records=records)
    if not query:
        return Observation(now, route, records=records)
    values = dict(parse_qsl(query, keep_blank_values=True))
    page_text = next((values[k] for k in PAGE_KEYS if k in values), None)
    page = int(page_text) if page_text is not None and page_text.isdigit() and \
        len(page_text) <= 12 else None
    if size_param is not None:
        size = values.get(size_param, "")
    else:
        size = next((values[k] for k in SIZE_KEYS if k in values), "")
    at_max = size.isdigit() and int(size) >= (max_page_size or DEFAULT_MAX_PAGE_SIZE)
    return Observation(now, route, search=True, page=page, at_max=at_max,
                       broad=_is_broad(values, broad_name_length, size_param), records=records)


def _is_broad(values: Mapping[str, str], broad_name_length: int,
              size_param: str | None = None) -> bool:
    name = next((values[k] for k in NAME_KEYS if k in values), None)
    if name is None:
        filters = [k for k in values
                   if k not in PAGE_KEYS and k not in SIZE_KEYS and k != size_param]
        return not filters
    if WILDCARDS.intersection(name):
        return True
    return len(name.strip()) <= broad_name_length


def encode(found: Observation) -> str:
    """Tab-separated; route and parameter names hold no tab, comma or '='."""
    numbers = ",".join(f"{name}={number}" for name, number in found.numbers)
    flags = "".join(c for c, on in (("l", found.lookup), ("m", found.missed),
                                     ("s", found.search), ("x", found.at_max),
                                     ("b", found.broad)) if on)
    page = "" if found.page is None else str(found.page)
    return f"{found.route}\t{numbers}\t{flags}\t{page}\t{found.records}"


def decode(text: str, at: float) -> Observation:
    route, numbers, flags, page, records = text.split("\t")
    pairs = tuple((name, int(number)) for name, _, number in
                  (item.partition("=") for item in numbers.split(",") if item))
    return Observation(at, route, pairs, lookup="l" in flags, missed="m" in flags,
                       search="s" in flags, page=int(page) if page else None,
                       at_max="x" in flags, broad="b" in flags, records=int(records))
