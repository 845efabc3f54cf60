"""Property tests: no planted NIR survives; NIR-free bodies equal an oracle of the field actions."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.disguises import DISGUISES, readings, skeleton
from support.minimize import (
    CLIENT,
    PSEUDONYM_KEY,
    disguised_wrong_keys,
    response_rule,
    run,
    valid_forms,
    vectors,
)
from vigie.minimize import nir
from vigie.minimize.fields import generalize, mask
from vigie.policy.model import Generalization, MaskStyle
from vigie.pseudonym import Pseudonymizer

FORMS = [form for _, _, form in valid_forms()]
NIRS = sorted({entry["nir"] for entry in vectors()["valid"]})
WRONG_FORMS = [form for _, _, form in disguised_wrong_keys()]
COMPACT_DIGITS = [form for _, fmt, form in valid_forms() if fmt == "compact" and form.isdigit()]
SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
# Every written form of the vectors, and every disguise of issue 12 of every valid NIR.
disguised = st.builds(lambda number, writer: writer(number), st.sampled_from(NIRS),
                      st.sampled_from(list(DISGUISES.values())))
planted_text = st.builds(lambda a, form, b: a + form + b,
                         st.sampled_from(["", " ", "NIR ", "x", "\n", "/p?nir=", "&"]),
                         st.one_of(st.sampled_from(FORMS), disguised),
                         st.sampled_from(["", " ", ".", "x", "\n", "&x=1"]))
# A NIR cut into adjacent strings of one array.
split_nir = st.builds(lambda number, cuts: [number[a:b] for a, b in zip(
    [0, *sorted(cuts)], [*sorted(cuts), 15], strict=True) if a < b],
    st.sampled_from(NIRS), st.sets(st.integers(1, 14), min_size=1, max_size=3))
planted_number = st.sampled_from(COMPACT_DIGITS).map(int)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), text, planted_text,
                    planted_number)
keys = st.one_of(text, planted_text)
documents = st.recursive(st.one_of(scalars, split_nir), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=25)


def reveals_a_nir(value: Any) -> bool:
    """The independent oracle (tests/support/disguises.py) over every key and scalar, and
    over the concatenated scalars of every array."""
    texts = leaves(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            texts.append("".join(str(e) for e in item if isinstance(e, str | int | float)
                                 and not isinstance(e, bool)))
    return any(number in skeleton(reading) for text in texts for reading in readings(text)
               for number in NIRS)


def leaves(value: Any) -> list[str]:
    """Every key and scalar of a document, as text."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append(str(item))
    return out


@SETTINGS
@given(documents)
async def test_no_planted_nir_survives_scanning(document: Any) -> None:
    out, _ = await run(document)
    assert all(not nir.find(leaf) for leaf in leaves(out))
    assert not nir.find(orjson.dumps(out).decode())
    assert not reveals_a_nir(out)


@SETTINGS
@given(st.lists(st.fixed_dictionaries({}, optional={
    name: documents for name in ("id", "nir", "note", "extra")}), min_size=1, max_size=3),
    st.sets(st.sampled_from(["id", "nir", "note", "extra"])), st.sampled_from(["keep", "drop"]))
async def test_no_planted_nir_survives_field_rules(records: list[dict[str, Any]],
                                                   kept: set[str], unlisted: str) -> None:
    rule = response_rule("$.items[*]", {name: "keep" for name in kept}, unlisted=unlisted,
                         envelope=["meta"])
    out, _ = await run({"items": records, "meta": records[:1]}, rule)
    for leaf in leaves(out["meta"]):
        assert not nir.find(leaf)
    assert not reveals_a_nir(out["meta"])
    for record in out["items"]:
        for name, value in record.items():
            if name in kept and isinstance(value, str | int) and not isinstance(value, bool) \
                    and nir.is_whole_nir(str(value)):
                continue  # the one exception: a named keep whose whole value is one NIR
            assert all(not nir.find(leaf) for leaf in leaves({name: value}))
            assert not reveals_a_nir({name: value})


SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Nd")), max_size=10)
SAFE_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), SAFE_TEXT,
                        st.dates().map(str), st.integers(1000, 99999).map(lambda n: f"{n:05d}"))
SAFE_VALUE = st.recursive(SAFE_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(SAFE_TEXT, inner, max_size=3)), max_leaves=8)
ACTIONS: list[Any] = ["keep", "drop", "pseudonymize", {"mask": "last2"}, {"mask": "last4"},
                      {"mask": "all"}, {"generalize": "year"}, {"generalize": "month"},
                      {"generalize": "department"}]
FIELD_NAMES = ["a", "b", "c", "d", "e"]


def _text(value: Any) -> str:
    return {True: "true", False: "false"}.get(value, str(value)) \
        if isinstance(value, bool) else str(value)


def oracle(record: dict[str, Any], rules: dict[str, Any], unlisted: str) -> dict[str, Any]:
    tokens = Pseudonymizer(PSEUDONYM_KEY)
    out: dict[str, Any] = {}
    for key, value in record.items():
        action = rules.get(key, unlisted)
        if action == "drop":
            continue
        if action == "keep" or value is None:
            out[key] = value
        elif action == "pseudonymize":
            out[key] = tokens.token(CLIENT, _text(value))
        elif "mask" in action:
            out[key] = mask(_text(value), MaskStyle(action["mask"]))
        else:
            out[key] = generalize(value, Generalization(action["generalize"]))
    return out


@SETTINGS
@given(st.lists(st.fixed_dictionaries({}, optional={
    name: st.one_of(SAFE_SCALAR, SAFE_VALUE, st.sampled_from(WRONG_FORMS))
    for name in FIELD_NAMES}), max_size=4),
    st.dictionaries(st.sampled_from(FIELD_NAMES), st.sampled_from(ACTIONS)),
    st.sampled_from(["keep", "drop"]))
async def test_nir_free_records_equal_the_oracle(records: list[dict[str, Any]],
                                                 rules: dict[str, Any], unlisted: str) -> None:
    # transforming actions apply leaf by leaf to containers; the oracle covers scalars
    records = [{k: v for k, v in r.items()
                if rules.get(k, unlisted) in ("keep", "drop") or not isinstance(v, dict | list)}
               for r in records]
    out, dec = await run({"total": len(records), "items": records},
                         response_rule("$.items[*]", rules, unlisted=unlisted))
    assert out == {"total": len(records), "items": [oracle(r, rules, unlisted) for r in records]}
    assert dec.records == len(records)
    assert not dec.nir_detections
