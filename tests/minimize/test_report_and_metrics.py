"""Report-only mode counts exactly what enforce does and passes the body as sent; metrics."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from support.minimize import (
    CLIENT,
    ROUTE,
    body_of,
    grant,
    header,
    identity,
    json_upstream,
    metrics,
    minimizer,
    response_rule,
    upstream,
)
from support.minimize import decision as new_decision
from vigie.context import Decision
from vigie.errors import InspectionError, NotFound
from vigie.policy.model import Mode
from vigie.telemetry.metrics import Metrics

NIR = "185057800608491"
RULE = response_rule("$.items[*]", {"id": "keep", "birth": {"generalize": "year"},
                                    "nir": {"mask": "last2"}, "ipp": "pseudonymize"},
                     bind={"practice": "practice"}, envelope=["note"])
PAGE = {"note": f"nir {NIR}", "items": [
    {"id": 1, "birth": "1985-05-17", "nir": NIR, "ipp": "A1", "practice": "P1", "x": 1},
    {"id": 2, "birth": "1990-01-01", "nir": NIR, "ipp": "A2", "practice": "P2"},
    {"id": 3, "birth": "2001-02-03", "nir": None, "ipp": "A3", "practice": "P1",
     "memo": f"see {NIR}"},
]}


def counts(dec: Decision) -> tuple[Any, ...]:
    return (dict(dec.masked), dict(dec.nir_detections), dec.records, dec.withheld,
            dec.patients, dec.fields)


async def once(mode: Mode, up: Any, rule: Any = RULE, registry: Metrics | None = None,
               ) -> tuple[Any, bytes, Decision]:
    dec = new_decision()
    response = await minimizer(registry=registry).minimize(
        up, grant(rule, mode=mode), identity(practice="P1"), dec)
    return response, await body_of(response), dec


async def test_report_only_counts_like_enforce_and_passes_the_body() -> None:
    raw = orjson.dumps(PAGE)
    _, enforced, dec_enforce = await once(Mode.ENFORCE, upstream(raw, headers=[("X-N", NIR)]))
    response, passed, dec_report = await once(Mode.REPORT_ONLY,
                                              upstream(raw, headers=[("X-N", NIR)]))
    assert passed == raw
    assert header(response, "x-n") == NIR
    assert counts(dec_report) == counts(dec_enforce)
    assert NIR.encode() not in enforced
    assert dec_enforce.withheld == 1 and dec_enforce.records == 2
    assert dec_enforce.nir_detections == {"field": 1, "header": 1}  # note + header
    assert dec_enforce.masked["drop"] >= 3  # practice x2, x, memo


async def test_report_only_streams_the_original_records() -> None:
    lines = b"".join(orjson.dumps(r) + b"\n" for r in PAGE["items"])
    rule = response_rule("$", {"id": "keep"}, bind={"practice": "practice"})
    _, enforced, dec_e = await once(Mode.ENFORCE,
                                    upstream(lines, content_type="application/x-ndjson"), rule)
    _, passed, dec_r = await once(Mode.REPORT_ONLY, upstream(
        gzip.compress(lines), content_type="application/x-ndjson",
        headers=[("Content-Encoding", "gzip")]), rule)
    assert passed == lines
    assert enforced == b'{"id":1}\n{"id":3}\n'
    assert counts(dec_r) == counts(dec_e)


async def test_report_only_single_record_withheld_is_recorded_not_enforced() -> None:
    rule = response_rule("$", {"id": "keep"}, bind={"practice": "practice"})
    doc = {"id": 9, "practice": "P2"}
    with pytest.raises(NotFound):
        await once(Mode.ENFORCE, json_upstream(doc), rule)
    response, passed, dec = await once(Mode.REPORT_ONLY, json_upstream(doc), rule)
    assert orjson.loads(passed) == doc
    assert dec.withheld == 1 and dec.would_block == "withheld"


async def test_report_only_still_refuses_what_it_cannot_inspect() -> None:
    with pytest.raises(InspectionError):
        await once(Mode.REPORT_ONLY, upstream(b"{broken"))


async def test_metrics_by_client_route_action_and_where() -> None:
    registry = metrics()
    await once(Mode.ENFORCE, upstream(orjson.dumps(PAGE), headers=[("X-N", NIR)]),
               registry=registry)
    value = registry.registry.get_sample_value
    base = {"client": CLIENT, "route": ROUTE}
    assert value("vigie_masked_values_total", {**base, "action": "mask"}) == 1
    assert value("vigie_masked_values_total", {**base, "action": "generalize"}) == 2
    assert value("vigie_masked_values_total", {**base, "action": "pseudonymize"}) == 2
    assert value("vigie_masked_values_total", {**base, "action": "nir"}) == 2
    assert value("vigie_nir_detections_total", {**base, "where": "field"}) == 1
    assert value("vigie_nir_detections_total", {**base, "where": "header"}) == 1
    assert value("vigie_records_returned_total", base) == 2
    assert value("vigie_records_withheld_total", base) == 1


async def test_metrics_are_counted_when_a_record_is_withheld_with_404() -> None:
    registry = metrics()
    rule = response_rule("$", {"id": "keep"}, bind={"practice": "practice"})
    with pytest.raises(NotFound):
        await once(Mode.ENFORCE, json_upstream({"id": 1, "practice": "P9"}), rule,
                   registry=registry)
    assert registry.registry.get_sample_value(
        "vigie_records_withheld_total", {"client": CLIENT, "route": ROUTE}) == 1


async def test_decision_references_and_fields_never_hold_a_nir() -> None:
    rule = response_rule("$[*]", {"id": "keep", "nir": "keep"})
    _, _, dec = await once(Mode.ENFORCE, json_upstream([{"id": NIR, "nir": NIR}]), rule)
    assert dec.patients == ["*" * 15]
    assert dec.fields == {"id", "nir"}
