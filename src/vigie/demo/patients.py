"""Deterministic synthetic French patients, computed on demand from a seed and an id.

Every record carries a valid NIR (key = 97 - N mod 97, 2A -> 19, 2B -> 18) consistent
with its sex, birth year, birth month and birthplace: mainland departments, Corsica
(2A/2B from 1976, 20 before), overseas departments (971-976) and births abroad (99 +
country). Some free-text notes contain a NIR in the formats people type. All data is
fake: names are drawn from common French names, phones from ARCEP's fiction ranges,
emails from RFC 2606 domains.
"""

from __future__ import annotations

import calendar
import random
import unicodedata
from typing import Any

from vigie.demo.places import (
    BIRTH_COUNTRIES,
    CORSICA,
    FIRST_NAMES_FEMALE,
    FIRST_NAMES_MALE,
    LAST_NAMES,
    METROPOLITAN,
    OVERSEAS,
    STREET_KINDS,
    STREET_NAMES,
    Department,
)

Record = dict[str, Any]

DEFAULT_SEED = 20250321
DEFAULT_COUNT = 5000
# Honeytoken records: plausible patients no legitimate workflow ever asks for.
DECOY_IDS: tuple[int, ...] = (990001, 990002)
_DECOY_LAST_NAMES = {990001: "Kervella", 990002: "Delorme-Aubertin"}

NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
IPP_SYSTEM = "https://legacy.example/fhir/sid/ipp"
PRACTICE_SYSTEM = "https://legacy.example/fhir/sid/practice"
PRACTICES: dict[str, str] = {
    "P1": "Cabinet médical des Tilleuls",
    "P2": "Maison de santé du Port",
    "P3": "Centre de santé Pasteur",
    "P4": "Cabinet du Dr Morel",
    "P5": "Pôle santé des Lilas",
}
NIR_FORMATS: tuple[str, ...] = ("compact", "spaced", "dotted", "dashed", "key_separated")

_CORSICA_SPLIT_YEAR = 1976
_CORSICA_KEY_DIGITS = {"2A": "19", "2B": "18"}
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
# ARCEP fiction ranges ("numéros de fiction"): never assigned to a subscriber.
_FICTION_LANDLINE = {"01": "01 99 00", "02": "02 61 91", "03": "03 53 01", "04": "04 65 71",
                     "05": "05 36 49"}
_FICTION_MOBILE = "6 39 98"

_PLAIN_NOTES = (
    "", "", "", "", "RAS", "Allergie pénicilline", "Préfère les rendez-vous le matin",
    "Tiers payant intégral", "Rappel vaccin DTP à prévoir", "Diabète de type 2, suivi trimestriel",
    "Ne pas appeler sur le portable après 18h", "Mutuelle à mettre à jour",
    "Carte Vitale non présentée au dernier passage", "ALD en cours",
    "Patient sourd, privilégier SMS",
)


def nir_key(nir13: str) -> str:
    """The two-digit control key of a 13-character NIR (Corsica 2A/2B included)."""
    place = nir13[5:7].upper()
    digits = nir13
    if place in _CORSICA_KEY_DIGITS:
        digits = nir13[:5] + _CORSICA_KEY_DIGITS[place] + nir13[7:]
    return f"{97 - int(digits) % 97:02d}"


def format_nir(nir: str, style: str) -> str:
    """Write a 15-character NIR the way people do: compact, spaced, dotted, dashed, key apart."""
    groups = (nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:15])
    if style == "compact":
        return nir
    if style == "spaced":
        return " ".join(groups)
    if style == "dotted":
        return ".".join(groups)
    if style == "dashed":
        return "-".join(groups)
    if style == "key_separated":
        return f"{nir[:13]} {nir[13:]}"
    raise ValueError(f"unknown NIR format {style!r}")


def patient_exists(patient_id: int, count: int = DEFAULT_COUNT) -> bool:
    return 1 <= patient_id <= count or patient_id in DECOY_IDS


def patient(patient_id: int, seed: int = DEFAULT_SEED) -> Record:
    """The synthetic patient `patient_id`: same seed and id, same record, on any machine."""
    rng = random.Random(f"vigie-demo:{seed}:{patient_id}")  # noqa: S311 - synthetic data
    sex = rng.choice("12")
    year = rng.randint(1935, 2022)
    month = rng.randint(1, 12)
    day = rng.randint(1, calendar.monthrange(year, month)[1])
    birthplace, home = _birthplace_and_home(rng, year)
    nir13 = f"{sex}{year % 100:02d}{month:02d}{birthplace}{rng.randint(1, 999):03d}"
    nir = nir13 + nir_key(nir13)
    first_name = rng.choice(FIRST_NAMES_MALE if sex == "1" else FIRST_NAMES_FEMALE)
    last_name = _DECOY_LAST_NAMES.get(patient_id) or rng.choice(LAST_NAMES)
    email = _email(rng, first_name, last_name)
    return {
        "id": str(patient_id),
        "nir": nir,
        "last_name": last_name,
        "first_name": first_name,
        "birth_date": f"{year:04d}-{month:02d}-{day:02d}",
        "sex": "M" if sex == "1" else "F",
        "address": _address(rng, home),
        "telecom": [
            {"system": "phone", "value": _phone(rng, home)},
            {"system": "email", "value": email},
        ],
        "email": email,
        "practice_id": rng.choice(tuple(PRACTICES)),
        "notes": _notes(rng, nir, year),
    }


def _birthplace_and_home(rng: random.Random, year: int) -> tuple[str, Department]:
    """The 5-character NIR birthplace and the department the patient lives in now."""
    roll = rng.random()
    if roll < 0.05:
        home = rng.choice(CORSICA)
        code = home.code if year >= _CORSICA_SPLIT_YEAR else "20"
        return f"{code}{rng.randint(1, 366):03d}", home
    if roll < 0.12:
        home = rng.choice(OVERSEAS)
        return f"{home.code}{rng.randint(1, 34):02d}", home
    if roll < 0.20:
        return f"99{rng.choice(BIRTH_COUNTRIES)}", rng.choice(METROPOLITAN)
    born = rng.choice(METROPOLITAN)
    home = born if rng.random() < 0.75 else rng.choice(METROPOLITAN)
    return f"{born.code}{rng.randint(1, 899):03d}", home


def _address(rng: random.Random, home: Department) -> dict[str, str]:
    postcode = home.postcode
    if home.code == "75":
        postcode = f"750{rng.randint(1, 20):02d}"
    elif home.code == "69":
        postcode = f"6900{rng.randint(1, 9)}"
    elif home.code == "13":
        postcode = f"130{rng.randint(1, 16):02d}"
    number = rng.randint(1, 180)
    line = f"{number} {rng.choice(STREET_KINDS)} {rng.choice(STREET_NAMES)}"
    return {"line": line, "city": home.city, "postcode": postcode}


def _phone(rng: random.Random, home: Department) -> str:
    tail = f"{rng.randint(0, 99):02d} {rng.randint(0, 99):02d}"
    if rng.random() < 0.6:
        return f"+33 {_FICTION_MOBILE} {tail}"
    fiction = _FICTION_LANDLINE.get(home.phone_zone)
    if fiction is None:  # overseas: zone prefix then six digits
        return f"{home.phone_zone} {rng.randint(0, 99):02d} {tail}"
    return f"{fiction} {tail}"


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum() or ch == "-")


def _email(rng: random.Random, first_name: str, last_name: str) -> str:
    suffix = str(rng.randint(1, 99)) if rng.random() < 0.4 else ""
    local = f"{_ascii(first_name)}.{_ascii(last_name)}{suffix}"
    return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"


def _notes(rng: random.Random, nir: str, birth_year: int) -> str:
    """Free text; about one in nine holds a NIR, as legacy desks typed it."""
    roll = rng.random()
    written = format_nir(nir, rng.choice(NIR_FORMATS))
    if roll < 0.04:
        return f"Patient rappelé, NIR {written} vérifié"
    if roll < 0.07:
        return f"Carte Vitale lue ({written}), droits ouverts"
    if roll < 0.09:
        return f"Attestation CPAM reçue. N° SS : {written}. Dossier complet."
    if roll < 0.11 and birth_year >= 2006:
        parent = _other_nir(rng)
        return f"Mineur, NSS de l'ouvrant droit {format_nir(parent, rng.choice(NIR_FORMATS))}"
    if roll < 0.15:
        return f"Réf. dossier mutuelle {_not_a_nir(rng)}"
    return rng.choice(_PLAIN_NOTES)


def _other_nir(rng: random.Random) -> str:
    nir13 = f"{rng.choice('12')}{rng.randint(60, 95)}{rng.randint(1, 12):02d}"
    nir13 += f"{rng.choice(METROPOLITAN).code}{rng.randint(1, 899):03d}{rng.randint(1, 999):03d}"
    return nir13 + nir_key(nir13)


def _not_a_nir(rng: random.Random) -> str:
    """A 15-digit reference shaped like a NIR whose key is wrong: must be left alone."""
    nir = _other_nir(rng)
    wrong = (int(nir[13:]) + rng.randint(1, 95) - 1) % 97 + 1
    return f"{nir[:13]}{wrong:02d}"


def to_fhir(record: Record) -> Record:
    """The record as a FHIR R4 Patient (FR Core style identifiers)."""
    practice = record["practice_id"]
    telecom: list[Record] = []
    for entry in record["telecom"]:
        item: Record = {"system": entry["system"], "value": entry["value"]}
        if entry["system"] == "phone":
            item["use"] = "mobile" if entry["value"].startswith("+33 6") else "home"
        telecom.append(item)
    address = record["address"]
    resource: Record = {
        "resourceType": "Patient",
        "id": record["id"],
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [
                    {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
                     "code": "INS-NIR"},
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NH"},
                ]},
                "system": NIR_SYSTEM,
                "value": record["nir"],
            },
            {
                "use": "usual",
                "type": {"coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"},
                ]},
                "system": IPP_SYSTEM,
                "value": record["id"],
            },
        ],
        "name": [{"use": "official", "family": record["last_name"],
                  "given": [record["first_name"]]}],
        "gender": "male" if record["sex"] == "M" else "female",
        "birthDate": record["birth_date"],
        "address": [{"use": "home", "line": [address["line"]], "city": address["city"],
                     "postalCode": address["postcode"], "country": "FR"}],
        "telecom": telecom,
        "managingOrganization": {
            "reference": f"Organization/{practice}",
            "identifier": {"system": PRACTICE_SYSTEM, "value": practice},
            "display": PRACTICES.get(practice, practice),
        },
    }
    if record["notes"]:
        resource["extension"] = [{
            "url": "https://legacy.example/fhir/StructureDefinition/patient-note",
            "valueString": record["notes"],
        }]
    return resource
