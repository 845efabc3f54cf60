"""No NIR, name, token or user anywhere a SOC looks: metrics, spans, audit, events, logs.

Synthetic patients with NIRs in every format (compact, spaced, dotted, dashed, key apart,
Corsica) in fields, free text, response headers, request headers, query strings, paths
and request ids go through the proxy; every output channel is then scanned with the
proxy's own NIR scanner and for every name, token and user the traffic used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from support.harness import Harness, Keys
from support.otlp import OtlpReceiver
from support.soc import (
    GUARD_ENV,
    SOC_POLICIES,
    Traffic,
    drive_traffic,
    format_nir,
    leaks,
    synthetic_nir,
)


def without_sample_values(text: str) -> str:
    """The exposition without the numbers: a timestamp like 1.795876796213419e+09 holds
    15 digits that pass the NIR key check by chance; names, labels and help remain."""
    return "\n".join(line if line.startswith("#") else line.rsplit(" ", 1)[0]
                     for line in text.splitlines())


def adversarial(h: Harness, traffic: Traffic) -> None:
    """Requests that put personal data where a careless proxy would copy it."""
    token = h.token("soc-app", sub="Jean Quennec", scope="patient.read patient.search")
    traffic.tokens.add(token)
    traffic.subjects.add("Jean Quennec")
    compact = synthetic_nir(42)
    for request_id in (compact, format_nir(compact, "dotted"), format_nir(compact, "dashed")):
        response = h.get("/patients/77", token, headers={"x-request-id": request_id})
        assert response.headers["x-request-id"] != request_id  # replaced, not echoed
    h.get(f"/patients/{compact}", token)  # a legacy API keyed by NIR
    h.get(f"/patients/{format_nir(compact, 'dashed')}", token)
    h.get(f"/letters/{compact}?nir={compact}", token)
    h.get("/patients?last_name=Quennec&page=1", token)  # refused query, name in it
    h.get(f"/nowhere/{compact}", token)
    h.get("/patients/5", f"{token}x")  # a broken signature: the token must not be logged
    h.get("/patients/5", token, headers={"x-forwarded-for": compact,
                                         "x-user": "Quennec", "forwarded": f"for={compact}"})


def test_nothing_personal_in_metrics_spans_audit_events_or_logs(
        tmp_path: Path, keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with OtlpReceiver() as otlp:
        env = {**GUARD_ENV, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.endpoint,
               "OTEL_BSP_SCHEDULE_DELAY": "50"}
        with Harness(tmp_path, SOC_POLICIES, env=env, keys=keys) as h:
            traffic = drive_traffic(h, users=4, reads=20)
            adversarial(h, traffic)
            metrics = h.metrics_text()
            assert h.vigie is not None
            h.vigie.stages.tracing.force_flush()
            count = len(traffic.statuses) + 12
            spans = otlp.wait_for(count)
        assert len({s.trace_id for s in spans if s.parent_span_id == ""}) >= count - 5
        audit = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
        events = (tmp_path / "events.jsonl").read_text(encoding="utf-8")
        # Vigie's own records at any level (its threads), everything at INFO and above;
        # the test client's DEBUG records (MainThread) echo what the test itself sent.
        records = [r for r in caplog.records
                   if r.levelno >= logging.INFO or r.threadName != "MainThread"]
        logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)
        assert audit.count("\n") > 30 and "decoy" in events
        assert "vigie serving" in logs  # the capture did see vigie's logs
        channels = {
            "metrics": without_sample_values(metrics),
            "spans": repr([(s.name, s.attributes, s.resource) for s in spans]),
            "audit": audit,
            "events": events,
            "logs": logs,
        }
        found = {name: leaks(text, traffic) for name, text in channels.items()}
        assert found == {name: [] for name in channels}
        # Metrics and spans do not even carry patient ids.
        for name in ("metrics", "spans"):
            assert leaks(channels[name], traffic, ids=True) == [], name


def test_the_scan_finds_what_it_looks_for() -> None:
    """The scanner itself: every format of a NIR, names, tokens (else the test proves nothing)."""
    traffic = Traffic(names={"Quennec"}, tokens={"eyJabc.def.ghi"}, subjects={"dr-x"},
                      ids={"4242"})
    nir = synthetic_nir(3)
    for style in ("compact", "spaced", "dotted", "dashed", "key_separated"):
        assert leaks(f"x {format_nir(nir, style)} y", traffic), style
    assert leaks("Mme QUENNEC", traffic) == [] and leaks("Mme Quennec", traffic)
    assert leaks('{"token":"eyJabc.def.ghi"}', traffic)
    assert leaks('{"route":"/patients/4242"}', traffic, ids=True)
