"""Issue 12: everything outside the records is minimized (`response.envelope`).

The defaults keep pagination, totals, links, types and a FHIR Bundle's
`entry[*].fullUrl`/`entry[*].search`; anything else outside the records is
dropped. An element without a record that looks like a patient is withheld
and counted. The policy key loads with file and line errors, and `policy
explain` shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.minimize import response_rule, run
from support.policies import write_policies
from vigie.errors import InspectionError
from vigie.policy.explain import explain
from vigie.policy.loader import check_policies, load_policies
from vigie.policy.model import Unlisted

NIR = "185057800608491"
OTHER = {"name": [{"family": "Secret", "given": ["Other"]}], "birthDate": "1970-01-01",
         "address": [{"city": "Ailleurs"}], "telecom": [{"value": "0600000000"}]}
BUNDLE_RULE = response_rule("$.entry[*].resource",
                            {"resourceType": "keep", "id": "keep", "birthDate": "keep"},
                            bind={"managingOrganization.reference": "organization"})
CLAIMS = {"organization": "Organization/1"}


def patient(pid: str, org: str = "Organization/1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": "1980-01-01",
            "name": [{"family": "Durand"}], "managingOrganization": {"reference": org}}


def bundle(*entries: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
            "link": [{"relation": "self", "url": "/fhir/Patient?name=x"}],
            "entry": list(entries), **extra}


async def test_fhir_bundle_defaults_keep_links_fullurl_and_search() -> None:
    doc = bundle({"fullUrl": "urn:uuid:1", "search": {"mode": "match"},
                  "resource": patient("1"), "request": {"url": "x"}},
                 id="b1", meta={"tag": [{"code": "other practice"}]}, signature={"who": "x"})
    out, dec = await run(doc, BUNDLE_RULE, claims=CLAIMS)
    # `total` is an envelope default, but this route binds: the upstream's count included
    # the records bind withholds, so it is removed (rewrite/totals.py, issue 11).
    assert out == {"resourceType": "Bundle", "type": "searchset",
                   "link": doc["link"],
                   "entry": [{"fullUrl": "urn:uuid:1", "search": {"mode": "match"},
                              "resource": {"resourceType": "Patient", "id": "1",
                                           "birthDate": "1980-01-01"}}]}
    assert dec.records == 1 and dec.withheld == 0


@pytest.mark.parametrize("intruder", [
    {"fullUrl": "urn:uuid:9", "search": {"mode": "include"}, "patient": OTHER},
    {"fullUrl": "urn:uuid:9", **OTHER},
    {"Name": "Secret Other"},
])
async def test_an_entry_without_a_record_that_looks_like_one_is_withheld(
        intruder: dict[str, Any]) -> None:
    doc = bundle({"fullUrl": "urn:uuid:1", "resource": patient("1")}, intruder)
    out, dec = await run(doc, BUNDLE_RULE, claims=CLAIMS)
    assert "Secret" not in str(out) and "Ailleurs" not in str(out)
    assert [entry["fullUrl"] for entry in out["entry"]] == ["urn:uuid:1"]
    assert dec.withheld == 1 and dec.records == 1


async def test_an_entry_without_a_record_keeps_only_its_declared_parts() -> None:
    doc = bundle({"fullUrl": "urn:uuid:1", "resource": patient("1")},
                 {"fullUrl": f"urn:nir:{NIR}", "search": {"mode": "outcome"},
                  "extension": [{"url": "x", "valueString": "free text"}]})
    out, dec = await run(doc, BUNDLE_RULE, claims=CLAIMS)
    assert out["entry"][1] == {"fullUrl": "urn:nir:" + "*" * 15, "search": {"mode": "outcome"}}
    assert dec.withheld == 0 and dec.nir_detections["field"] == 1


async def test_an_entry_of_another_practice_is_withheld_by_bind() -> None:
    doc = bundle({"fullUrl": "urn:uuid:1", "resource": patient("1")},
                 {"fullUrl": "urn:uuid:2", "resource": patient("2", "Organization/2")})
    out, dec = await run(doc, BUNDLE_RULE, claims=CLAIMS)
    assert [e["resource"]["id"] for e in out["entry"]] == ["1"]
    assert dec.withheld == 1


async def test_a_kept_envelope_field_holding_a_whole_nir_is_masked() -> None:
    rule = response_rule("$.items[*]", {"id": "keep"}, envelope=["cursor"])
    out, dec = await run({"cursor": NIR, "items": [{"id": 1}]}, rule)
    assert out == {"cursor": "*" * 15, "items": [{"id": 1}]}


async def test_declared_envelope_replaces_the_defaults_and_unlisted_keep() -> None:
    doc = {"total": 1, "query": {"echo": f"nir {NIR}"}, "items": [{"id": 1, "x": 2}]}
    only_query = response_rule("$.items[*]", {"id": "keep"}, envelope=["query.echo"])
    out, _ = await run(doc, only_query)
    assert out == {"query": {"echo": "nir " + "*" * 15}, "items": [{"id": 1}]}
    everything = response_rule("$.items[*]", {"id": "keep"}, envelope=[],
                               envelope_unlisted="keep")
    out, _ = await run(doc, everything)
    assert out == {"total": 1, "query": {"echo": "nir " + "*" * 15}, "items": [{"id": 1}]}


async def test_filtered_records_leave_other_elements_to_the_envelope() -> None:
    rule = response_rule("$.items[?kind=patient]", {"id": "keep"}, envelope=["items[*].kind"])
    doc = {"items": [{"kind": "patient", "id": 1, "name": "A"},
                     {"kind": "note", "text": "x"}]}
    out, dec = await run(doc, rule)
    assert out == {"items": [{"id": 1}, {"kind": "note"}]}


async def test_a_record_location_without_its_record() -> None:
    rule = response_rule("$.entry[*].resource", {"id": "keep"})
    out, dec = await run({"entry": [{"patient": OTHER}]}, rule)
    assert out == {"entry": []} and dec.withheld == 1
    with pytest.raises(InspectionError):  # not under a list: the shape is not the policy's
        await run({"data": {"name": "x"}}, response_rule("$.data.record", {"id": "keep"}))


def search_policy(envelope: str) -> dict[str, str]:
    """One client whose search route declares these envelope lines (from line 10)."""
    return {"p.yaml": (
        "client: c1\nroutes:\n  - name: search\n    methods: [GET]\n    path: /patients\n"
        "    response:\n      records: \"$.items[*]\"\n      fields: {id: keep}\n"
        "      envelope:\n" + envelope)}


def test_envelope_policy_key_loads_and_reports_errors(tmp_path: Path) -> None:
    good = write_policies(tmp_path / "good", search_policy(
        '        keep: [total, "links[*].href"]\n        unlisted: keep\n'))
    policy = load_policies(good).get("c1")
    assert policy is not None and policy.routes[0].response is not None
    envelope = policy.routes[0].response.envelope
    assert envelope is not None and envelope.unlisted is Unlisted.KEEP
    assert [s.text for s in envelope.keep] == ["total", "links[*].href"]
    bad = write_policies(tmp_path / "bad", search_policy(
        '        keep: ["a[", 3]\n        unlisted: maybe\n        extra: 1\n'))
    errors = check_policies(bad)
    assert any(":10: routes[0].response.envelope.keep[0]: selector" in e for e in errors)
    assert any("envelope.keep[1]: a selector must be a string" in e for e in errors)
    assert any(":11: routes[0].response.envelope.unlisted: must be drop or keep" in e
               for e in errors)
    assert any(":12: routes[0].response.envelope.extra: unknown key" in e for e in errors)


def test_explain_shows_the_envelope(tmp_path: Path) -> None:
    folder = write_policies(tmp_path, {"p.yaml": """
        client: c1
        routes:
          - {name: one, methods: [GET], path: "/p/{id}", response: {records: "$"}}
          - name: search
            methods: [GET]
            path: /p
            response: {records: "$.items[*]"}
          - name: declared
            methods: [GET]
            path: /q
            response: {records: "$.items[*]", envelope: {keep: [total], unlisted: keep}}
    """})
    assert "envelope: none (the whole body is the record)" in explain(folder, "c1", "GET", "/p/1")
    text = explain(folder, "c1", "GET", "/p")
    assert "envelope (default): outside the records, kept: resourceType, type, total" in text
    assert "entry[*].fullUrl, entry[*].search" in text
    assert "anything else outside the records: dropped" in text
    text = explain(folder, "c1", "GET", "/q")
    assert "envelope: outside the records, kept: total" in text
    assert "anything else outside the records: kept (NIR rule still applies)" in text
