"""Selector and record-location parsing: the exact steps, and precise refusals."""

from __future__ import annotations

import pytest

from vigie.policy.model import Each, Key, Where
from vigie.policy.selectors import parse_location, parse_selector

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"


@pytest.mark.parametrize(("text", "steps"), [
    ("last_name", (Key("last_name"),)),
    ("address.postcode", (Key("address"), Key("postcode"))),
    ("telecom[*].value", (Key("telecom"), Each(), Key("value"))),
    (f"identifier[?system={INS_NIR}].value",
     (Key("identifier"), Where("system", INS_NIR), Key("value"))),
    ("identifier[?system='a]b'].value", (Key("identifier"), Where("system", "a]b"),
                                         Key("value"))),
    ('identifier[?system=""]', (Key("identifier"), Where("system", ""))),
    ("a[*][*]", (Key("a"), Each(), Each())),
    ("entry[?type=http://x.example/a:b].id", (Key("entry"), Where("type", "http://x.example/a:b"),
                                              Key("id"))),
    ("data-1.@id", (Key("data-1"), Key("@id"))),
])
def test_field_selectors(text: str, steps: tuple[object, ...]) -> None:
    selector = parse_selector(text)
    assert selector.steps == steps
    assert selector.text == text


@pytest.mark.parametrize(("text", "steps"), [
    ("$", ()),
    ("$[*]", (Each(),)),
    ("$.items[*]", (Key("items"), Each())),
    ("$.entry[*].resource", (Key("entry"), Each(), Key("resource"))),
    ("$.entry[?fullUrl=urn:x].resource", (Key("entry"), Where("fullUrl", "urn:x"),
                                          Key("resource"))),
])
def test_record_locations(text: str, steps: tuple[object, ...]) -> None:
    assert parse_location(text).steps == steps


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty selector"),
    ("$.nir", "relative to the record"),
    (".nir", "must start with a field name"),
    ("[*].value", "must start with a field name"),
    ("a..b", "position 2: expected a field name"),
    ("a.", "position 2: expected a field name"),
    ("a[0]", "list indexes are not supported"),
    ("a[", "expected '*' or '?key=value'"),
    ("a[*", "expected '*' or '?key=value'"),
    ("a[?system]", "expected '='"),
    ("a[?system!=x]", "expected '='"),
    ("a[?system=x", "missing ']'"),
    ("a[?system=]", "empty filter value"),
    ("a[?=x]", "expected a field name in the filter"),
    ("a[?s='x", "unterminated quoted"),
    ("a[?s='x'y]", "expected ']' after the quoted"),
    ("a[?s=x[y]", "'[' inside a filter value"),
    ("a b", "position 1: unexpected ' '"),
    ("a[*]b", "unexpected 'b'"),
    ("name*", "unexpected '*'"),
])
def test_bad_selectors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_selector(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("items[*]", "must start with '$'"),
    ("$items", "expected '.' or '['"),
    ("$.", "expected a field name"),
    ("$[0]", "list indexes"),
    ("", "must start with '$'"),
])
def test_bad_record_locations(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_location(text)
    assert message in str(caught.value)
