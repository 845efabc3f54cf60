"""The least form of each field for a purpose, and limits from observed peaks.

A field is `keep` only when the client's purpose needs its category; otherwise
it gets the least form that still means something (`LEAST_FORM`): a year for
a birth date, a department for a postcode, nothing for a name. The NIR is kept
in clear only when three things hold: its current policy already gave it in clear, its
purpose is one the décret-cadre NIR allows, and its policy names the décret's
purpose (`metadata.legal_basis.nir`). Record ids are pseudonymized for
pseudonymous purposes (research, statistics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vigie.policy.purposes import Category, Purpose, categorize

# The action a field gets when the purpose does not need it in clear.
LEAST_FORM: dict[Category, Any] = {
    Category.RECORD_ID: "keep",  # the client needs it to address the record again
    Category.NIR: "drop",
    Category.NAME: "drop",
    Category.BIRTH_DATE: {"generalize": "year"},
    Category.POSTCODE: {"generalize": "department"},
    Category.ADDRESS: "drop",
    Category.CONTACT: "drop",
    Category.SEX: "drop",
    Category.FREE_TEXT: "drop",
    Category.CLINICAL: "drop",
    Category.TECHNICAL: "keep",  # resourceType, identifier systems: not personal data
    Category.OTHER: "drop",
}
MARGIN = 1.5


@dataclass(frozen=True, slots=True)
class Entitlement:
    """What the client may be given: its purpose, and whether a clear NIR stays possible."""

    purpose: Purpose | None
    had_clear_nir: bool
    nir_basis: str | None

    @property
    def keeps_nir(self) -> bool:
        return (self.had_clear_nir and self.nir_basis is not None
                and self.purpose is not None and self.purpose.nir)


def action_for(selector: str, entitlement: Entitlement) -> Any:
    """The policy action for one field selector."""
    category = categorize(selector)
    purpose = entitlement.purpose
    if category is Category.NIR:
        return "keep" if entitlement.keeps_nir else "drop"
    if category is Category.RECORD_ID and purpose is not None and purpose.pseudonymous:
        return "pseudonymize"
    if purpose is not None and category in purpose.needs:
        return "keep"
    return LEAST_FORM[category]


def with_margin(peak: int, floor: int) -> int:
    """The peak plus the margin, rounded up to two significant digits, at least `floor`."""
    value = max(floor, math.ceil(peak * MARGIN))
    digits = len(str(value))
    if digits <= 2:
        return value
    step = 10 ** (digits - 2)
    return int(math.ceil(value / step) * step)


def suggested_limits(requests_minute: int, records_hour: int, patients_day: int
                     ) -> dict[str, Any]:
    return {
        "requests": f"{with_margin(requests_minute, 10)}/minute",
        "records": f"{with_margin(records_hour, 100)}/hour",
        "distinct_patients": f"{with_margin(patients_day, 10)}/day",
        "enumeration": True,
    }
