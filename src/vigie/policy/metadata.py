"""Policy `metadata`: who owns a client's access, why, on which legal basis, how long.

    metadata:
      owner: Billing department, CHU Exemple
      contact: dpo@chu.example
      purpose: billing                 # a code of vigie.policy.purposes.PURPOSES
      purpose_detail: Claims to the health insurance   # optional free text
      legal_basis:
        art6: "6(1)(c)"                # GDPR art. 6(1) letter (a-f)
        art9: "9(2)(h)"                # GDPR art. 9(2) letter (a-j): health data
        nir: reimbursement             # décret-cadre NIR purpose; needed where a NIR is kept
      retention: 1 year                # N day(s)|week(s)|month(s)|year(s), or ISO 8601 (P1Y)

Optional by default (a given key is still validated); `vigie policy check --strict`
requires the block and every key, `legal_basis.nir` where a route keeps a NIR
field in clear, and a purpose whose NIR use the décret allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vigie.policy.purposes import NIR_PURPOSES, PURPOSES, is_nir, normalize_article

METADATA_KEYS = ("owner", "contact", "purpose", "purpose_detail", "legal_basis", "retention")
LEGAL_BASIS_KEYS = ("art6", "art9", "nir")
_REQUIRED = ("owner", "contact", "purpose", "legal_basis", "retention")
_RETENTION = re.compile(
    r"(?:[1-9][0-9]{0,3}\s*(?:day|week|month|year)s?|P(?=\d)(?:\d+Y)?(?:\d+M)?(?:\d+W)?(?:\d+D)?)",
    re.IGNORECASE)

ErrorSink = Callable[[tuple[str | int, ...], str], None]


@dataclass(frozen=True, slots=True)
class LegalBasis:
    art6: str | None = None  # the letter of art. 6(1)
    art9: str | None = None  # the letter of art. 9(2)
    nir: str | None = None  # a code of NIR_PURPOSES


@dataclass(frozen=True, slots=True)
class Metadata:
    owner: str | None = None
    contact: str | None = None
    purpose: str | None = None
    purpose_detail: str | None = None
    legal_basis: LegalBasis = LegalBasis()
    retention: str | None = None


def read_metadata(raw: Any, error: ErrorSink) -> Metadata | None:
    """Validate the `metadata` block (present or not); None when absent or invalid."""
    if raw is None:
        return None
    here: tuple[str | int, ...] = ("metadata",)
    if not isinstance(raw, dict):
        error(here, "must be a mapping (" + ", ".join(METADATA_KEYS) + ")")
        return None
    for key in raw:
        if key not in METADATA_KEYS:
            error((*here, key), f"unknown key (allowed: {', '.join(METADATA_KEYS)})")
    texts: dict[str, str | None] = {}
    for key in ("owner", "contact", "purpose", "purpose_detail", "retention"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            error((*here, key), "must be a non-empty string")
            value = None
        texts[key] = value
    purpose = texts["purpose"]
    if purpose is not None and purpose not in PURPOSES:
        error((*here, "purpose"), f"unknown purpose {purpose!r} (expected one of: "
                                  f"{', '.join(PURPOSES)})")
    retention = texts["retention"]
    if retention is not None and not _RETENTION.fullmatch(retention.strip()):
        error((*here, "retention"), "must be N days|weeks|months|years or an ISO 8601 "
                                    "duration such as P1Y")
    return Metadata(owner=texts["owner"], contact=texts["contact"], purpose=purpose,
                    purpose_detail=texts["purpose_detail"],
                    legal_basis=_legal_basis(raw.get("legal_basis"), (*here, "legal_basis"),
                                             error),
                    retention=retention)


def _legal_basis(raw: Any, here: tuple[str | int, ...], error: ErrorSink) -> LegalBasis:
    if raw is None:
        return LegalBasis()
    if not isinstance(raw, dict):
        error(here, "must be a mapping (art6, art9, nir)")
        return LegalBasis()
    for key in raw:
        if key not in LEGAL_BASIS_KEYS:
            error((*here, key), f"unknown key (allowed: {', '.join(LEGAL_BASIS_KEYS)})")
    letters: dict[str, str | None] = {}
    for key, article, expected in (("art6", 6, "a-f"), ("art9", 9, "a-j")):
        letter = None
        if raw.get(key) is not None:
            letter = normalize_article(raw[key], article)
            if letter is None:
                error((*here, key), f"must be a letter of GDPR art. {article}"
                                    f"({1 if article == 6 else 2}) ({expected}), "
                                    f"e.g. \"{article}({1 if article == 6 else 2})(e)\"")
        letters[key] = letter
    nir = raw.get("nir")
    if nir is not None and nir not in NIR_PURPOSES:
        error((*here, "nir"), f"unknown décret-cadre NIR purpose {nir!r} (expected one of: "
                              f"{', '.join(NIR_PURPOSES)})")
        nir = None
    return LegalBasis(art6=letters["art6"], art9=letters["art9"], nir=nir)


def strict_problems(metadata: Metadata | None,
                    kept_fields: Iterable[tuple[tuple[str | int, ...], str]]
                    ) -> list[tuple[tuple[str | int, ...], str]]:
    """What `--strict` adds: every key present, and a legal basis for each NIR kept in clear.

    `kept_fields` are (key path, selector) of the fields whose action is `keep`.
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if metadata is None:
        return [((), "strict: missing required key 'metadata' (" + ", ".join(_REQUIRED) + ")")]
    for key in _REQUIRED:
        if getattr(metadata, key) is None and key != "legal_basis":
            problems.append((("metadata",), f"strict: missing required key {key!r}"))
    basis = metadata.legal_basis
    if basis.art6 is None:
        problems.append((("metadata", "legal_basis"), "strict: missing required key 'art6'"))
    if basis.art9 is None:
        problems.append((("metadata", "legal_basis"),
                         "strict: missing required key 'art9' (health data)"))
    purpose = PURPOSES.get(metadata.purpose or "")
    for where, selector in kept_fields:
        if not is_nir(selector):
            continue
        if basis.nir is None:
            problems.append((where, f"strict: {selector} keeps a NIR in clear: "
                                    "metadata.legal_basis.nir must name the décret-cadre "
                                    "NIR purpose"))
        elif purpose is not None and not purpose.nir:
            problems.append((where, f"strict: {selector} keeps a NIR in clear but the purpose "
                                    f"{purpose.code!r} does not allow the NIR"))
    return problems
