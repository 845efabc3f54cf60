"""What an admission reserves before forwarding, and what its settlement gives back.

A budget checked before forwarding and counted after the response is no limit against
requests in flight: forty concurrent lookups all see the budget still open. So each
admission takes a **lease** (one per subject: principal, and client with `client_limits`)
that holds, until the response is settled:

- the records the response may disclose (1 for a single-record route, the query rule's
  maximum page size for a page, or the route's `reserve:`);
- the distinct patients it may disclose (the same number, unless the path names the
  patient: then that patient is checked and added to the distinct set at admission).

Budgets count what was disclosed plus what live leases hold, so the requests in flight
together overshoot a budget by at most one reservation. Settlement (after the response,
before it leaves) releases the lease and counts what was really disclosed, in one store
call. A lease expires on its own (`lease_ms`) when its replica dies or its store is lost
between admission and settlement: a budget is never stuck, and never negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vigie.policy.model import Action, Route

if TYPE_CHECKING:
    from vigie.guard.limits import Budget

PAGE_SIZE_PARAMS = ("limit", "per_page", "count", "_count")


def max_page_size(route: Route) -> int | None:
    """The route's cap on the page size: its `page_size:` declaration, else (a guess, for
    routes that declare nothing) the query rule's cap on a parameter named like one."""
    if route.page_size is not None:
        return route.page_size.max
    if route.query is None:
        return None
    return next((value for key, value in route.query.max.items()
                 if "size" in key or key in PAGE_SIZE_PARAMS), None)


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """How one route reserves; computed once per route object."""

    patient_param: str | None  # the path parameter naming the patient
    id_pseudonymized: bool  # the response's patient reference is the id's pseudonym
    records: int  # reserved at admission
    patients: int  # reserved by the lease (0 when the path names the patient)
    max_page: int | None
    size_param: str | None = None  # the declared page size parameter (None: guessed)


def plan_route(route: Route) -> RoutePlan:
    response = route.response
    single = response is not None and not response.records.steps
    patient = route.patient
    if patient is None:  # inferred: `{id}` on a single-record route
        patient = "id" if single and "id" in route.params else ""
    max_page = max_page_size(route)
    if route.reserve is not None:
        records = route.reserve
    elif response is None:
        records = 0  # not inspected: no records counted, none reserved
    else:
        records = 1 if single else (max_page or 1)
    pseudonymized = response is not None and any(
        rule.selector.text == "id" and rule.action is Action.PSEUDONYMIZE
        for rule in response.fields)
    return RoutePlan(patient or None, pseudonymized, records,
                     0 if patient else records, max_page,
                     route.page_size.param if route.page_size is not None else None)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one admission asks a subject's budgets to hold."""

    lease: str  # unique per request
    lease_ms: int  # the lease expires on its own after this
    records: int = 0
    patients: int = 0
    patient: str = ""  # digest of the patient the path names; "" none

    @property
    def member(self) -> str:
        """The lease as stored: its id and what it holds, so holdings sum without a lookup."""
        return f"{self.lease}:{self.records}:{self.patients}"


def holdings(member: str) -> tuple[int, int]:
    """(records, patients) a stored lease holds."""
    _, records, patients = member.rsplit(":", 2)
    return int(records), int(patients)


@dataclass(frozen=True, slots=True)
class Settlement:
    """After the response: release the lease, count what was disclosed."""

    tag: str
    budget: Budget
    lease: str  # the stored member; "" when nothing was held (late facts only)
    shared: bool  # the lease is in the shared store (else in this replica's memory)
    records: int
    patients: Sequence[str]
    observation: str = ""  # the enumeration signals' view of the answer (encoded), if any
    seen: str = ""  # the last shared observation this replica has seen for the subject
    observation_ttl_ms: int = 0
