"""`policy explain`: the text names the route, scopes, query rules and each field's fate."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.policies import EXAMPLE_POLICIES, write_policies
from vigie.policy.explain import explain
from vigie.policy.loader import PolicyError


def test_explains_a_matching_route() -> None:
    text = explain(EXAMPLE_POLICIES, "gp-frontdesk", "get", "/patients/42")
    assert "route: read-patient (line 9)" in text
    assert "params: id='42'" in text
    assert "scopes required (all): patient.read" in text
    lines = text.splitlines()
    assert any(line.split() == ["nir", "mask", "last2", "(\"185057800608491\"", "->",
                                "\"*************91\")"] for line in lines)
    assert any(line.split()[:3] == ["birth_date", "generalize", "year"] for line in lines)
    assert any(line.split() == ["telecom[*].value", "drop"] for line in lines)
    assert "unlisted fields: dropped" in text
    assert "bind: record field practice_id must equal token claim 'practice_id'" in text
    assert "NIR rule" in text


def test_explains_why_no_route_matched() -> None:
    text = explain(EXAMPLE_POLICIES, "gp-frontdesk", "POST", "/patients/42/notes")
    assert "no route matched: refused (403 no_route)" in text
    assert "read-patient (line 9): method POST not in ['GET']" in text
    text = explain(EXAMPLE_POLICIES, "gp-frontdesk", "GET", "/patients/42/notes")
    assert "read-patient (line 9): path /patients/{id} has 2 segment(s), the request has 3" in text
    text = explain(EXAMPLE_POLICIES, "billing", "GET", "/fhir/Practitioner/1")
    assert "fhir-patient (line 9): segment 2: 'Practitioner' is not 'Patient'" in text


def test_explains_query_rules_and_a_given_query() -> None:
    text = explain(EXAMPLE_POLICIES, "gp-frontdesk", "GET", "/patients?page_size=60")
    assert "route: search-patients" in text
    assert "routes tried before it:" in text
    assert "page_size: integer, at most 50" in text
    assert "this query is refused (400): query parameter 'page_size' is over its maximum 50" \
        in text
    text = explain(EXAMPLE_POLICIES, "gp-frontdesk", "GET", "/patients?last_name=Martin")
    assert "this query (last_name=Martin) is accepted" in text


def test_unknown_client_and_refused_path() -> None:
    text = explain(EXAMPLE_POLICIES, "intruder", "GET", "/patients/42")
    assert "no policy for client 'intruder'" in text and "403 unknown_client" in text
    assert "billing, gp-frontdesk, lab-results, research-export" in text
    text = explain(EXAMPLE_POLICIES, "gp-frontdesk", "GET", "/patients/42%2F..%2F43")
    assert "path refused before matching (400): encoded slash" in text


def test_shows_the_normalized_path_and_pseudonyms() -> None:
    text = explain(EXAMPLE_POLICIES, "research-export", "GET", "//export.ndjson")
    assert "normalized path: /export.ndjson" in text
    assert "route: export" in text
    assert "pseudonymize" in text and "psn-" in text


def test_routes_without_response_rules(tmp_path: Path) -> None:
    write_policies(tmp_path, {"p.yaml": """
        client: c1
        mode: report-only
        routes:
          - {name: ping, methods: [GET], path: /ping}
    """})
    text = explain(tmp_path, "c1", "HEAD", "/ping")
    assert "route: ping" in text and "scopes required: none" in text
    assert "mode: report-only (set by this policy)" in text
    assert "no field rules on this route" in text


def test_invalid_policies_raise(tmp_path: Path) -> None:
    write_policies(tmp_path, {"p.yaml": "client: c1\nroutes: []\n"})
    with pytest.raises(PolicyError):
        explain(tmp_path, "c1", "GET", "/")
