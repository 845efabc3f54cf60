"""NIR scanner: every vector in every format, wrong keys, boundaries, the stdnum oracle."""

from __future__ import annotations

import pytest
from stdnum.fr import nir as stdnum_nir

from support.minimize import WRONG_KEY_IDS, invalid_numbers, valid_forms, vectors
from vigie.minimize import nir

STRUCTURE_ONLY_IDS = ["I05", "I06", "I07", "I08", "I09", "I10", "I11", "I12", "I13"]


@pytest.mark.parametrize(("vector", "fmt", "form"), valid_forms())
def test_every_valid_form_is_a_whole_nir_and_is_found_in_text(vector: str, fmt: str,
                                                              form: str) -> None:
    assert nir.is_whole_nir(form)
    text = f"Patient vu le 12/03, NIR {form}, à rappeler."
    masked, found = nir.mask_text(text)
    assert found == 1
    assert masked == text.replace(form, "*" * len(form))
    assert nir.find(form) == [(0, len(form))]


@pytest.mark.parametrize(("vector", "number"), invalid_numbers(WRONG_KEY_IDS))
def test_wrong_key_and_malformed_numbers_are_left_alone(vector: str, number: str) -> None:
    for text in (number, f"x {number} y", f"ref:{number}", f"{number}\n"):
        assert nir.find(text) == []
        assert nir.mask_text(text) == (text, 0)
    assert not nir.is_whole_nir(number)


@pytest.mark.parametrize(("vector", "number"), invalid_numbers(STRUCTURE_ONLY_IDS))
def test_correct_key_with_impossible_structure_is_masked_on_the_safe_side(
        vector: str, number: str) -> None:
    assert nir.is_whole_nir(number)
    assert nir.mask_text(f"a {number} b")[1] == 1


def test_stdnum_is_the_oracle_for_the_key() -> None:
    for entry in vectors()["valid"]:
        assert stdnum_nir.is_valid(entry["nir"])
        assert nir.is_whole_nir(entry["nir"])
    for _, number in invalid_numbers():
        assert nir.is_whole_nir(number) == stdnum_nir.is_valid(number)


def test_a_nir_inside_a_longer_digit_run_is_not_a_nir() -> None:
    assert nir.find("1850578006084917") == []  # I17: 16 digits
    assert nir.find("91850578006084910") == []
    assert nir.find("order 0185057800608491") == []
    # but letters and punctuation around it do not protect it
    assert nir.find("NIR185057800608491x") == [(3, 18)]
    assert nir.find('"185057800608491"') == [(1, 16)]


def test_several_nirs_and_overlapping_candidates() -> None:
    text = "185057800608491 et 2 90 12 75 056 456 57; 180052A00401224"
    masked, found = nir.mask_text(text)
    assert found == 3
    assert not any(ch.isdigit() for ch in masked.split(";")[0].replace("et", ""))
    # a wrong-key candidate starting earlier must not hide a valid one after it
    assert nir.mask_text("9 1 85 05 78 006 084 91")[1] == 1


def test_lower_case_corsica_and_other_separators() -> None:
    assert nir.is_whole_nir("180052a00401224")
    assert nir.is_whole_nir("1\u00a085\u00a005\u00a078\u00a0006\u00a0084\u00a091")
    assert nir.is_whole_nir("185-05.78 006084-91")
    assert not nir.is_whole_nir("1  85 05 78 006 084 91")  # two separators in a row


def test_short_and_empty_texts() -> None:
    assert nir.mask_text("") == ("", 0)
    assert nir.find("12345") == []
    assert not nir.is_whole_nir("")
    assert not nir.is_whole_nir(" 185057800608491")
