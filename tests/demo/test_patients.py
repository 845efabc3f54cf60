"""Synthetic patients: valid, consistent NIRs; determinism; coverage of the hard cases."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from stdnum.fr import nir as stdnum_nir

from vigie.demo.patients import (
    DECOY_IDS,
    DEFAULT_COUNT,
    IPP_SYSTEM,
    NIR_FORMATS,
    NIR_SYSTEM,
    PRACTICES,
    format_nir,
    nir_key,
    patient,
    patient_exists,
    to_fhir,
)
from vigie.demo.places import CORSICA, METROPOLITAN, OVERSEAS

VECTORS = Path(__file__).resolve().parents[1] / "data" / "nir_vectors.json"  # copy of shared/data
# A NIR as people write it in free text: groups separated by nothing, spaces, dots or dashes.
WRITTEN_NIR = re.compile(
    r"(?<![0-9A-Za-z])([1-478])[ .-]?(\d\d)[ .-]?(\d\d)[ .-]?(\d[0-9AB]|\d\d)[ .-]?(\d\d\d)"
    r"[ .-]?(\d\d\d)[ .-]?(\d\d)(?![0-9])"
)
ALL = [patient(i) for i in range(1, DEFAULT_COUNT + 1)]
METRO_CODES = {d.code for d in METROPOLITAN}


def _birthplace(record: dict[str, object]) -> str:
    return str(record["nir"])[5:10]


def test_every_generated_nir_is_valid_for_stdnum_and_our_key_rule() -> None:
    for record in ALL + [patient(i) for i in DECOY_IDS]:
        nir = record["nir"]
        assert len(nir) == 15, record["id"]
        assert stdnum_nir.is_valid(nir), record["id"]
        assert nir_key(nir[:13]) == nir[13:], record["id"]


def test_nir_key_agrees_with_the_shared_vectors() -> None:
    vectors = json.loads(VECTORS.read_text())
    for vector in vectors["valid"]:
        assert nir_key(vector["nir"][:13]) == vector["nir"][13:], vector["id"]
    bad_keys = [v for v in vectors["invalid"] if v["stdnum_error"] == "InvalidChecksum"]
    assert len(bad_keys) >= 4
    for vector in bad_keys:
        assert nir_key(vector["nir"][:13]) != vector["nir"][13:], vector["id"]


@pytest.mark.parametrize(("nir13", "key"), [
    ("180052A004012", "24"),  # 2A counts as 19
    ("293112B033301", "47"),  # 2B counts as 18
    ("1600720004075", "73"),  # Corsica before 1976: plain 20
    ("2840497105220", "44"),  # Guadeloupe
])
def test_nir_key_handles_corsica_and_overseas(nir13: str, key: str) -> None:
    assert nir_key(nir13) == key
    assert stdnum_nir.is_valid(nir13 + key)


def test_corsica_letters_change_the_key() -> None:
    assert nir_key("180052A004012") != nir_key("1800520004012")
    assert nir_key("180052A004012") != nir_key("180052B004012")


def test_nir_agrees_with_sex_and_birth_date() -> None:
    for record in ALL:
        nir, born = record["nir"], record["birth_date"]
        assert nir[0] == ("1" if record["sex"] == "M" else "2")
        assert nir[1:3] == born[2:4]
        assert nir[3:5] == born[5:7]


def test_corsica_codes_follow_the_1976_split() -> None:
    corsicans = [r for r in ALL if _birthplace(r)[:2] in {"20", "2A", "2B"}]
    assert len(corsicans) > 50
    for record in corsicans:
        year, code = int(record["birth_date"][:4]), _birthplace(record)[:2]
        assert (code == "20") == (year < 1976), record["id"]
        postcode = record["address"]["postcode"]
        assert postcode.startswith("20")
        if code == "2A":
            assert postcode[:3] in {"200", "201"}
        if code == "2B":
            assert postcode[:3] == "202"
    codes = Counter(_birthplace(r)[:2] for r in corsicans)
    assert codes["2A"] and codes["2B"] and codes["20"]


def test_overseas_births_live_in_their_department() -> None:
    overseas = [r for r in ALL if _birthplace(r).startswith("97")]
    assert {_birthplace(r)[:3] for r in overseas} == {d.code for d in OVERSEAS}
    for record in overseas:
        assert record["address"]["postcode"][:3] == _birthplace(record)[:3]


def test_births_abroad_and_mainland_birthplaces_are_well_formed() -> None:
    abroad = [r for r in ALL if _birthplace(r).startswith("99")]
    assert len(abroad) > 100
    assert len({_birthplace(r) for r in abroad}) >= 5
    for record in ALL:
        place = _birthplace(record)
        assert place[:2] in METRO_CODES | {"20", "2A", "2B", "97", "99"}, record["id"]
        assert place[:2] != "00" and place[2:] != "000", record["id"]


def test_postcodes_match_the_city_department() -> None:
    by_city = {d.city: d for d in (*METROPOLITAN, *CORSICA, *OVERSEAS)}
    for record in ALL:
        address = record["address"]
        department = by_city[address["city"]]
        assert re.fullmatch(r"\d{5}", address["postcode"])
        width = 3 if department.code.startswith("97") else 2
        prefix = "20" if department.code in {"2A", "2B"} else department.code
        assert address["postcode"][:width] == prefix[:width], record["id"]


def test_records_have_the_documented_shape() -> None:
    record = patient(42)
    assert list(record) == ["id", "nir", "last_name", "first_name", "birth_date", "sex",
                            "address", "telecom", "email", "practice_id", "notes"]
    assert record["id"] == "42"
    assert set(record["address"]) == {"line", "city", "postcode"}
    assert [t["system"] for t in record["telecom"]] == ["phone", "email"]
    assert record["telecom"][1]["value"] == record["email"]
    for record in ALL:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", record["birth_date"])
        assert record["practice_id"] in PRACTICES
        assert re.fullmatch(r"[a-z0-9.-]+@example\.(com|org|net)", record["email"]), record["email"]
        phone = record["telecom"][0]["value"]
        assert re.fullmatch(r"\+33 6 39 98 \d\d \d\d|0\d( \d\d){4}|0\d{3}( \d\d){3}", phone), phone


def test_generation_is_deterministic_and_seeded() -> None:
    assert patient(17) == patient(17)
    assert [patient(i) for i in range(1, 50)] == ALL[:49]
    assert patient(17, seed=1) == patient(17, seed=1)
    assert patient(17, seed=1) != patient(17)
    assert len({r["nir"] for r in ALL}) > DEFAULT_COUNT - 5


def test_names_and_practices_are_varied() -> None:
    assert len({r["last_name"] for r in ALL}) > 150
    assert len({r["first_name"] for r in ALL}) > 80
    assert set(Counter(r["practice_id"] for r in ALL)) == set(PRACTICES)
    assert 0.4 < sum(r["sex"] == "F" for r in ALL) / len(ALL) < 0.6


def _nirs_in(text: str) -> list[str]:
    found = []
    for match in WRITTEN_NIR.finditer(text):
        candidate = "".join(match.groups())
        if stdnum_nir.is_valid(candidate):
            found.append(candidate)
    return found


def test_some_notes_hold_the_patients_nir_in_every_format() -> None:
    with_own_nir = [r for r in ALL if r["nir"] in _nirs_in(r["notes"])]
    assert 200 < len(with_own_nir) < 1000
    formats = Counter()
    for record in with_own_nir:
        for style in NIR_FORMATS:
            if format_nir(record["nir"], style) in record["notes"]:
                formats[style] += 1
    assert set(formats) == set(NIR_FORMATS)


def test_some_notes_hold_someone_elses_nir_and_some_a_wrong_key_lookalike() -> None:
    parents = [r for r in ALL if _nirs_in(r["notes"]) and r["nir"] not in _nirs_in(r["notes"])]
    assert parents and all(r["birth_date"] >= "2006" for r in parents)
    lookalikes = [r for r in ALL if "mutuelle" in r["notes"]]
    assert len(lookalikes) > 50
    for record in lookalikes:
        number = re.search(r"\d{15}", record["notes"])
        assert number is not None
        assert not stdnum_nir.is_valid(number.group())
        assert nir_key(number.group()[:13]) != number.group()[13:]


def test_format_nir_writes_the_usual_forms() -> None:
    nir = "185057800608491"
    assert format_nir(nir, "spaced") == "1 85 05 78 006 084 91"
    assert format_nir(nir, "dotted") == "1.85.05.78.006.084.91"
    assert format_nir(nir, "dashed") == "1-85-05-78-006-084-91"
    assert format_nir(nir, "key_separated") == "1850578006084 91"
    with pytest.raises(ValueError, match="unknown"):
        format_nir(nir, "roman")


def test_decoys_exist_and_look_like_patients() -> None:
    assert patient_exists(1) and patient_exists(DEFAULT_COUNT)
    assert not patient_exists(0) and not patient_exists(DEFAULT_COUNT + 1)
    assert not patient_exists(10, count=5)
    regular_names = {r["last_name"] for r in ALL}
    for decoy_id in DECOY_IDS:
        assert patient_exists(decoy_id, count=5)
        decoy = patient(decoy_id)
        assert decoy["id"] == str(decoy_id)
        assert set(decoy) == set(ALL[0])
        assert decoy["last_name"] not in regular_names


def test_to_fhir_is_an_r4_patient_with_the_nir_and_the_local_id() -> None:
    record = next(r for r in ALL if r["notes"] and r["sex"] == "F")
    resource = to_fhir(record)
    assert resource["resourceType"] == "Patient"
    assert resource["id"] == record["id"]
    nir_id, ipp = resource["identifier"]
    assert nir_id["system"] == NIR_SYSTEM and nir_id["value"] == record["nir"]
    assert nir_id["use"] == "official"
    assert {c["code"] for c in nir_id["type"]["coding"]} == {"NH", "INS-NIR"}
    assert ipp["system"] == IPP_SYSTEM and ipp["value"] == record["id"]
    assert resource["name"] == [{"use": "official", "family": record["last_name"],
                                 "given": [record["first_name"]]}]
    assert resource["gender"] == "female"
    assert resource["birthDate"] == record["birth_date"]
    assert resource["address"][0]["postalCode"] == record["address"]["postcode"]
    assert [t["value"] for t in resource["telecom"]] == [t["value"] for t in record["telecom"]]
    organization = resource["managingOrganization"]
    assert organization["identifier"]["value"] == record["practice_id"]
    assert organization["reference"] == f"Organization/{record['practice_id']}"
    assert resource["extension"][0]["valueString"] == record["notes"]
    assert "extension" not in to_fhir(next(r for r in ALL if not r["notes"]))
