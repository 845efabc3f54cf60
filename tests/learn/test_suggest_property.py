"""Whatever the evidence, a suggestion passes `vigie policy check` and its own tests.

Random usage shapes (paths, methods, query names, page sizes, records locations,
returned fields) and purposes go through `suggest`; the policy is written as the
CLI writes it, then checked and tested with the real loader and test runner.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigie.learn.evidence import Evidence, RouteUse
from vigie.learn.suggest import suggest
from vigie.learn.testgen import policy_tests
from vigie.learn.usage import ShapeUse
from vigie.policy.loader import check_policies
from vigie.policy.purposes import PURPOSES
from vigie.policy.testing import run_tests
from vigie.policy_cli import dump_yaml

WORDS = ["patients", "fhir", "Patient", "results", "export.ndjson", "search", "v2"]
FIELDS = ["id", "last_name", "first_name", "nir", "birth_date", "birthDate", "sex", "gender",
          "notes", "address.postcode", "address.city", "address[*].postalCode",
          "telecom[*].value", "telecom[*].system", "name[*].family", "name[*].given",
          "identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value",
          "identifier[?system=urn:oid:1.2.250.1.213.1.4.8].system",
          "identifier[*].value", "resourceType", "valueQuantity.value", "practice_id"]
RECORDS = ["$", "$[*]", "$.items[*]", "$.entry[*].resource"]

segment = st.sampled_from([*WORDS, "{}"])
path = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
shape = st.builds(
    lambda p, method, query, size, records, fields, scopes: ShapeUse(
        method, p, "unmatched", 1, set(query),
        {"page_size": size} if "page_size" in query and size else {}, records, "json",
        set(fields), set(scopes)),
    path, st.sampled_from(["GET", "POST", "HEAD"]),
    st.lists(st.sampled_from(["page_size", "last_name", "_count"]), max_size=3),
    st.integers(0, 500), st.sampled_from(RECORDS),
    st.lists(st.sampled_from(FIELDS), max_size=8), st.lists(st.sampled_from(["a.read"]),
                                                            max_size=1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(shape, min_size=1, max_size=6),
       st.sampled_from([None, *PURPOSES]))
def test_every_suggestion_checks_and_tests_green(shapes: list[ShapeUse],
                                                  purpose: str | None) -> None:
    evidence = Evidence("prop", client_lines=len(shapes), first="a", last="b")
    evidence.routes["unmatched"] = RouteUse({"GET"}, len(shapes), len(shapes))
    for item in shapes:
        evidence.shapes.setdefault((item.method, item.path), item)
    policy = suggest(evidence, None, purpose).policy
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "prop.yaml").write_text(dump_yaml(policy))
        (folder / "prop.test.yaml").write_text(dump_yaml(policy_tests(policy)))
        assert check_policies(folder) == []
        failures = [(o.name, o.failures) for o in run_tests(folder) if o.failures]
        assert failures == [], dump_yaml(policy)
