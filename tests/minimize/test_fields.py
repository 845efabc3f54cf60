"""Field actions through the Minimizer: the contract's policy examples and edge cases."""

from __future__ import annotations

from typing import Any

import pytest

from support.minimize import CLIENT, PSEUDONYM_KEY, grant, json_upstream, response_rule, run
from support.minimize import decision as new_decision
from support.minimize import identity as new_identity
from support.minimize import minimizer as new_minimizer
from vigie.errors import InspectionError, NotFound
from vigie.minimize.fields import department, generalize, mask
from vigie.policy.model import Generalization, MaskStyle
from vigie.pseudonym import Pseudonymizer

NIR = "185057800608491"
PATIENT: dict[str, Any] = {
    "id": 42, "nir": NIR, "last_name": "Lefèvre", "first_name": "Julien",
    "birth_date": "1985-05-17", "practice_id": "P1",
    "address": {"line": "12 rue Pasteur", "city": "Nantes", "postcode": "75012"},
    "telecom": [{"system": "phone", "value": "+33 6 39 98 12 34"},
                {"system": "email", "value": "j@example.org"}],
    "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": NIR},
                   {"system": "urn:ipp", "value": "IPP-7"}],
    "notes": f"NIR {NIR} vérifié",
}
FRONT_DESK = {
    "id": "keep", "last_name": "keep", "first_name": "keep",
    "birth_date": {"generalize": "year"}, "nir": {"mask": "last2"},
    "address.postcode": {"generalize": "department"}, "telecom[*].value": "drop",
    "identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value": "pseudonymize",
}


def token(value: str) -> str:
    return Pseudonymizer(PSEUDONYM_KEY).token(CLIENT, value)


async def test_contract_example_front_desk() -> None:
    out, dec = await run(PATIENT, response_rule("$", FRONT_DESK, bind={"practice_id":
                                                                        "practice_id"}),
                         claims={"practice_id": "P1"})
    assert out == {
        "id": 42, "nir": "*************91", "last_name": "Lefèvre", "first_name": "Julien",
        "birth_date": "1985", "address": {"postcode": "75"},
        "telecom": [{}, {}], "identifier": [{"value": token(NIR)}],
    }
    assert dec.patients == ["42"]
    assert dec.records == 1 and dec.withheld == 0
    assert dec.fields == {"id", "last_name", "first_name"}
    assert dec.masked["mask"] == 1 and dec.masked["generalize"] == 2
    assert dec.masked["pseudonymize"] == 1
    assert dec.masked["drop"] >= 2 + 4  # two telecom values, notes/practice_id/...
    assert dec.nir_detections == {}


async def test_policy_test_example_from_the_contract() -> None:
    rule = response_rule("$", {"id": "keep", "nir": {"mask": "last2"},
                               "birth_date": {"generalize": "year"}},
                         bind={"practice_id": "practice_id"})
    out, _ = await run({"id": 42, "nir": NIR, "birth_date": "1985-05-17", "practice_id": "P1"},
                       rule, claims={"practice_id": "P1"})
    assert out == {"id": 42, "nir": "*************91", "birth_date": "1985"}
    with pytest.raises(NotFound):
        await run({"id": 43, "practice_id": "P2"}, rule, claims={"practice_id": "P1"})


@pytest.mark.parametrize("claims", [{}, {"practice_id": None}, {"practice_id": ["P1"]}])
async def test_missing_claim_never_matches(claims: dict[str, Any]) -> None:
    rule = response_rule("$", {"id": "keep"}, bind={"practice_id": "practice_id"})
    with pytest.raises(NotFound):
        await run({"id": 1, "practice_id": "P1"}, rule, claims=claims)


async def test_missing_field_never_matches_and_lists_withhold() -> None:
    rule = response_rule("$.items[*]", {"id": "keep"}, bind={"practice_id": "practice_id"})
    page = {"total": 3, "items": [{"id": 1, "practice_id": "P1"}, {"id": 2},
                                  {"id": 3, "practice_id": "P2"}, {"id": 4, "practice_id": 7}]}
    out, dec = await run(page, rule, claims={"practice_id": "P1"})
    assert out == {"items": [{"id": 1}]}  # the upstream's total would count the withheld
    assert dec.withheld == 3 and dec.records == 1 and dec.patients == ["1"]


async def test_numeric_claim_and_field_compare_as_text() -> None:
    rule = response_rule("$", {"id": "keep"}, bind={"org.id": "org"})
    out, _ = await run({"id": 1, "org": {"id": 7}}, rule, claims={"org": 7})
    assert out == {"id": 1}


async def test_fhir_bundle_withholds_the_whole_entry() -> None:
    rule = response_rule("$.entry[*].resource", {"id": "keep"},
                         bind={"managingOrganization.identifier.value": "practice_id"})
    bundle = {"resourceType": "Bundle", "entry": [
        {"fullUrl": "Patient/1", "resource": {"id": "1", "name": "A", "managingOrganization":
                                              {"identifier": {"value": "P1"}}}},
        {"fullUrl": "Patient/2", "resource": {"id": "2", "managingOrganization":
                                              {"identifier": {"value": "P2"}}}},
        {"fullUrl": "Patient/3", "search": {"mode": "include"}},
    ]}
    out, dec = await run(bundle, rule, claims={"practice_id": "P1"})
    assert out["entry"] == [{"fullUrl": "Patient/1", "resource": {"id": "1"}},
                            {"fullUrl": "Patient/3", "search": {"mode": "include"}}]
    assert dec.withheld == 1 and dec.patients == ["1"]


async def test_unlisted_keep_keeps_other_fields_but_still_masks_nirs() -> None:
    rule = response_rule("$", {"birth_date": {"generalize": "month"}}, unlisted="keep")
    out, dec = await run(PATIENT, rule)
    assert out["birth_date"] == "1985-05"
    assert out["nir"] == "*" * 15
    assert out["notes"] == "NIR " + "*" * 15 + " vérifié"
    assert out["identifier"][0]["value"] == "*" * 15
    assert out["telecom"] == PATIENT["telecom"]
    assert dec.nir_detections["field"] == 3
    assert "last_name" in dec.fields


async def test_kept_whole_nir_is_the_only_exception() -> None:
    rule = response_rule("$", {"nir": "keep", "notes": "keep", "other": "keep",
                               "spaced": "keep", "num": "keep"})
    doc = {"nir": NIR, "notes": f"NIR {NIR}", "other": {"nested": NIR},
           "spaced": "1 85 05 78 006 084 91", "num": 185057800608491}
    out, dec = await run(doc, rule)
    assert out == {"nir": NIR, "notes": "NIR " + "*" * 15, "other": {"nested": "*" * 15},
                   "spaced": "1 85 05 78 006 084 91", "num": 185057800608491}
    assert dec.nir_detections["field"] == 2


async def test_unlisted_keep_is_not_a_named_keep() -> None:
    out, _ = await run({"nir": NIR}, response_rule("$", {}, unlisted="keep"))
    assert out == {"nir": "*" * 15}


async def test_specific_selector_wins_over_the_parent_rule() -> None:
    rule = response_rule("$", {"address": "drop", "address.city": "keep",
                               "contact": {"mask": "all"}, "contact.kind": "keep"})
    out, _ = await run({"address": {"city": "Nantes", "line": "12 rue"},
                        "contact": {"kind": "phone", "value": "0639", "n": None}}, rule)
    assert out == {"address": {"city": "Nantes"},
                   "contact": {"kind": "phone", "value": "****", "n": None}}


async def test_where_selects_by_string_compare_and_drops_the_rest() -> None:
    rule = response_rule("$", {"identifier[?system=urn:a].value": "keep",
                               "codes[?n=2].v": "keep"})
    out, _ = await run({"identifier": [{"system": "urn:a", "value": "A", "use": "x"},
                                       {"system": "urn:b", "value": "B"}],
                        "codes": [{"n": 2, "v": "two"}, {"n": "3", "v": "three"}]}, rule)
    assert out == {"identifier": [{"value": "A"}], "codes": [{"v": "two"}]}


async def test_shape_mismatch_falls_back_to_the_parent_rule() -> None:
    rule = response_rule("$", {"telecom[*].value": "keep", "address.city": "keep"})
    out, _ = await run({"telecom": "0639981234", "address": ["Nantes"]}, rule)
    assert out == {}


async def test_pseudonymized_id_is_the_patient_reference() -> None:
    out, dec = await run({"id": 42, "name": "A"}, response_rule("$", {"id": "pseudonymize"}))
    assert out == {"id": token("42")}
    assert dec.patients == [token("42")]
    assert out["id"].startswith("psn-")


async def test_pseudonyms_are_stable_per_client_and_differ_between_clients() -> None:
    p = Pseudonymizer(PSEUDONYM_KEY)
    assert p.token("a", NIR) == p.token("a", NIR) != p.token("b", NIR)


async def test_pseudonymize_without_a_key_fails_closed() -> None:
    m = new_minimizer(with_pseudonyms=False)
    with pytest.raises(InspectionError):
        await m.minimize(json_upstream({"id": 1}), grant(response_rule("$", {
            "id": "pseudonymize"})), new_identity(), new_decision())


async def test_containers_under_transforming_actions_are_transformed_leaf_by_leaf() -> None:
    rule = response_rule("$", {"name": {"mask": "last2"}, "ids": "pseudonymize"})
    out, dec = await run({"name": {"family": "Martin", "given": ["Jo", None]},
                          "ids": [1, "x"]}, rule)
    assert out == {"name": {"family": "****in", "given": ["**", None]},
                   "ids": [token("1"), token("x")]}
    assert dec.masked["mask"] == 2 and dec.masked["pseudonymize"] == 2


async def test_null_values_stay_null_and_are_not_counted() -> None:
    rule = response_rule("$", {"nir": {"mask": "all"}, "b": {"generalize": "year"}})
    out, dec = await run({"nir": None, "b": None}, rule)
    assert out == {"nir": None, "b": None}
    assert dec.masked_total == 0


async def test_nir_in_keys_is_masked() -> None:
    out, dec = await run({"data": {NIR: "x", f"k{NIR}": 1}},
                         response_rule("$", {"data": "keep"}))
    assert out == {"data": {"*" * 15: "x", "k" + "*" * 15: 1}}
    assert dec.nir_detections["field"] == 2


async def test_non_object_record_is_refused() -> None:
    with pytest.raises(InspectionError):
        await run([1, 2], response_rule("$[*]", {"id": "keep"}))


@pytest.mark.parametrize(("records", "doc"), [
    ("$.items[*]", {"data": [{"id": 1, "name": "A"}]}),
    ("$.items[*]", {"items": {"id": 1}}),
    ("$", [{"id": 1}]),
])
async def test_records_not_where_the_policy_says_are_refused(records: str, doc: Any) -> None:
    with pytest.raises(InspectionError):
        await run(doc, response_rule(records, {"id": "keep"}))


@pytest.mark.parametrize(("value", "how", "expected"), [
    ("1985-05-17", Generalization.YEAR, "1985"),
    ("1985-05-17T10:00:00Z", Generalization.YEAR, "1985"),
    ("1985", Generalization.YEAR, "1985"),
    (1985, Generalization.YEAR, "1985"),
    ("17/05/1985", Generalization.YEAR, None),
    ("1985-05-17", Generalization.MONTH, "1985-05"),
    ("1985", Generalization.MONTH, None),
    ("75012", Generalization.DEPARTMENT, "75"),
    ("01000", Generalization.DEPARTMENT, "01"),
    (1000, Generalization.DEPARTMENT, "01"),
    ("20000", Generalization.DEPARTMENT, "2A"),
    ("20190", Generalization.DEPARTMENT, "2A"),
    ("20200", Generalization.DEPARTMENT, "2B"),
    ("20600", Generalization.DEPARTMENT, "2B"),
    ("97110", Generalization.DEPARTMENT, "971"),
    ("97600", Generalization.DEPARTMENT, "976"),
    ("7501", Generalization.DEPARTMENT, None),
    ("Paris", Generalization.DEPARTMENT, None),
    (True, Generalization.YEAR, None),
])
def test_generalize(value: Any, how: Generalization, expected: str | None) -> None:
    assert generalize(value, how) == expected


@pytest.mark.parametrize(("text", "style", "expected"), [
    (NIR, MaskStyle.LAST2, "*************91"),
    (NIR, MaskStyle.LAST4, "***********8491"),
    (NIR, MaskStyle.ALL, "*" * 15),
    ("ab", MaskStyle.LAST2, "**"),
    ("abc", MaskStyle.LAST4, "***"),
    ("", MaskStyle.ALL, ""),
])
def test_mask(text: str, style: MaskStyle, expected: str) -> None:
    assert mask(text, style) == expected


def test_department_of_corsica_and_overseas() -> None:
    assert [department(p) for p in ("20090", "20137", "20290", "20620", "97410", "98000")] == \
        ["2A", "2A", "2B", "2B", "974", "980"]


async def test_masked_number_field_and_generalized_int() -> None:
    rule = response_rule("$", {"nir": {"mask": "last4"}, "cp": {"generalize": "department"}})
    out, _ = await run({"nir": 185057800608491, "cp": 75012}, rule)
    assert out == {"nir": "***********8491", "cp": "75"}
