"""The catalogues behind policy metadata: purposes, legal bases, field categories.

A policy's `metadata.purpose` is one code of `PURPOSES`; each purpose says which
categories of patient data it needs in clear. `categorize` puts a response
field selector in a category from its name (and, for FHIR identifiers, from its
`system`). `vigie policy suggest` keeps in clear only what the purpose needs and
gives everything else its `LEAST_FORM`; `vigie policy report` groups fields by
category; `vigie policy check --strict` requires the décret-cadre NIR purpose
(`legal_basis.nir`) wherever a NIR is kept. The labels summarize the texts; the
texts (GDPR art. 6 and 9, décret n° 2019-341) remain the reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    RECORD_ID = "local id"  # record ids, IPP, practice ids: personal, lower risk
    NIR = "NIR / INS"
    NAME = "name"
    BIRTH_DATE = "birth date"
    POSTCODE = "postcode"
    ADDRESS = "address"
    CONTACT = "contact"
    SEX = "sex"
    FREE_TEXT = "free text"
    CLINICAL = "clinical"
    TECHNICAL = "technical"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Purpose:
    code: str
    label: str
    needs: frozenset[Category]
    nir: bool = False  # the décret-cadre NIR lets this purpose hold the NIR (with legal_basis.nir)
    pseudonymous: bool = False  # record ids are pseudonymized, never kept


_C = Category
PURPOSES: dict[str, Purpose] = {p.code: p for p in (
    Purpose("care", "Direct care of the patient (soins)",
            frozenset({_C.RECORD_ID, _C.NAME, _C.BIRTH_DATE, _C.SEX, _C.CLINICAL, _C.CONTACT}),
            nir=True),
    Purpose("appointments", "Appointments and reception (accueil, prise de rendez-vous)",
            frozenset({_C.RECORD_ID, _C.NAME, _C.CONTACT})),
    Purpose("billing", "Billing and reimbursement of care (facturation)",
            frozenset({_C.RECORD_ID, _C.SEX}), nir=True),
    Purpose("lab-results", "Sending laboratory results to the right patient (biologie)",
            frozenset({_C.RECORD_ID, _C.NAME, _C.BIRTH_DATE, _C.SEX, _C.CLINICAL}), nir=True),
    Purpose("research", "Research on pseudonymized data (recherche)",
            frozenset({_C.SEX, _C.CLINICAL}), pseudonymous=True),
    Purpose("statistics", "Aggregate statistics and activity reports (pilotage)",
            frozenset({_C.SEX}), pseudonymous=True),
)}

# GDPR art. 6(1) lawfulness and art. 9(2) exceptions for health data.
ART6: dict[str, str] = {
    "a": "consent", "b": "contract", "c": "legal obligation", "d": "vital interests",
    "e": "public interest or official authority", "f": "legitimate interests",
}
ART9: dict[str, str] = {
    "a": "explicit consent", "b": "employment and social protection law",
    "c": "vital interests", "d": "not-for-profit body", "e": "made public by the person",
    "f": "legal claims", "g": "substantial public interest",
    "h": "preventive medicine, diagnosis, care, management of health systems",
    "i": "public health", "j": "archiving, research or statistics",
}
# Purposes for which the décret-cadre NIR (n° 2019-341) lets health actors use the NIR.
NIR_PURPOSES: dict[str, str] = {
    "ins-referencing": "Referencing health data with the INS (art. L.1111-8-1 CSP)",
    "care": "Health or medico-social care of the person",
    "reimbursement": "Coverage and reimbursement of care by health insurance",
    "research": "Research, studies and evaluations in health (with the required authorization)",
}

# FHIR systems whose identifier values are a NIR (french-health-ids.md).
NIR_SYSTEMS = ("urn:oid:1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.9",
               "urn:oid:1.2.250.1.213.1.4.10", "urn:oid:1.2.250.1.213.1.4.11",
               "urn:oid:1.2.250.1.213.1.4.2")

# Matched against the last key of a selector, lower case, '-' read as '_'.
_NAMES: tuple[tuple[Category, frozenset[str]], ...] = (
    (_C.RECORD_ID, frozenset({"id", "patient_id", "ipp", "uuid", "record_id", "practice_id"})),
    (_C.NIR, frozenset({"nir", "nss", "ssn", "ins", "insee", "numero_secu", "social_security",
                        "secu"})),
    (_C.NAME, frozenset({"name", "last_name", "first_name", "family", "given", "prefix",
                         "suffix", "birth_name", "maiden_name", "usual_name", "lastname",
                         "firstname", "surname", "full_name"})),
    (_C.BIRTH_DATE, frozenset({"birth_date", "birthdate", "dob", "date_of_birth"})),
    (_C.POSTCODE, frozenset({"postcode", "postalcode", "postal_code", "zip", "zipcode"})),
    (_C.ADDRESS, frozenset({"address", "city", "line", "street", "district", "country",
                            "state", "birth_place", "birthplace"})),
    (_C.CONTACT, frozenset({"telecom", "email", "phone", "mobile", "fax", "contact"})),
    (_C.SEX, frozenset({"sex", "gender"})),
    (_C.FREE_TEXT, frozenset({"notes", "note", "comment", "comments", "text", "remarks",
                              "description"})),
    (_C.CLINICAL, frozenset({"code", "value", "valuequantity", "valuestring", "unit",
                             "interpretation", "referencerange", "effectivedatetime",
                             "issued", "result", "results", "category", "observation",
                             "status", "low", "high", "display", "specimen",
                             "valuecodeableconcept", "conclusion"})),
    (_C.TECHNICAL, frozenset({"resourcetype", "system", "use", "type", "meta",
                              "versionid", "lastupdated", "profile", "total", "page",
                              "page_size", "next", "link", "self"})),
)
_FILTER = re.compile(r"\[\?([A-Za-z0-9_@-]+)=('[^']*'|\"[^\"]*\"|[^\]]*)\]")
_KEY = re.compile(r"[A-Za-z0-9_@-]+")
_CONTACT_PARENTS = frozenset({"telecom", "contact"})
_NAME_PARENTS = frozenset({"name"})


def categorize(selector: str) -> Category:
    """The category of the data a response field selector points at."""
    systems = [m.group(2).strip("'\"") for m in _FILTER.finditer(selector)]
    keys = [k.lower().replace("-", "_") for k in _KEY.findall(_FILTER.sub("", selector))]
    if not keys:
        return Category.OTHER
    last = keys[-1]
    if any(system in NIR_SYSTEMS for system in systems):
        return Category.TECHNICAL if last == "system" else Category.NIR
    if "identifier" in keys and last == "value":
        return Category.RECORD_ID  # a local identifier (IPP): personal, lower risk
    parents = set(keys[:-1])
    if parents & _CONTACT_PARENTS and last not in ("system", "use"):
        return Category.CONTACT
    if parents & _NAME_PARENTS and last not in ("use",):
        return Category.NAME
    if "address" in parents:
        return Category.POSTCODE if last in ("postalcode", "postcode", "zip") \
            else Category.ADDRESS
    for category, names in _NAMES:
        if last in names:
            return category
    return Category.OTHER


def is_nir(selector: str) -> bool:
    return categorize(selector) is Category.NIR


def normalize_article(text: object, article: int) -> str | None:
    """The letter of `6(1)(e)`, `6.1.e`, `art. 9(2)(h)` or `e`; None when not recognised."""
    if not isinstance(text, str):
        return None
    clean = text.strip().lower().removeprefix("art.").removeprefix("article").strip()
    paragraph = 1 if article == 6 else 2
    match = re.fullmatch(rf"(?:{article}\s*[(.]\s*{paragraph}\s*\)?\s*[(.]?\s*)?"
                         r"([a-j])\s*\)?", clean)
    if match is None:
        return None
    letter = match.group(1)
    return letter if letter in (ART6 if article == 6 else ART9) else None
