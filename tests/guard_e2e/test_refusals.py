"""429s through the proxy: which budget or signal refused, said in the problem and headers.

Each budget and each enumeration signal is driven over real HTTP, on the memory and the
Redis store; the upstream's own log shows that refused requests reached nothing.
"""

from __future__ import annotations

import re

import httpx

from support.guard_e2e import metric

PROBLEM = "https://vigie.dev/problems/abnormal-usage-detected"
RATE_LIMIT = re.compile(r'^"([a-z-]+)";r=(\d+);t=(\d+)$')


def assert_refused(response: httpx.Response, decision: str, signal: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == PROBLEM and problem["status"] == 429
    assert f"signal: {signal}" in problem["detail"]
    assert problem["signal"] == signal
    assert response.headers["vigie-decision"] == f"{decision};signal={signal}"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-request-id"] == problem["request_id"]


def test_request_budget_refuses_with_the_draft_headers(stacks) -> None:
    s = stacks(requests="60/minute")  # burst 6, then one a second
    answers = [s.get(f"/patients/{n}") for n in (7, 301, 55, 1204, 98, 4410, 12, 5000)]
    statuses = [r.status_code for r in answers]
    assert statuses[:6] == [200] * 6 and statuses[6:] == [429, 429], statuses
    refused = answers[6]
    assert_refused(refused, "throttled", "requests")
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    policy = refused.headers["ratelimit-policy"]
    assert '"requests";q=60;w=60' in policy and '"records";q=1000000;w=3600' in policy
    name, remaining, reset = RATE_LIMIT.match(refused.headers["ratelimit"]).groups()
    assert (name, remaining) == ("requests", "0") and 1 <= int(reset) <= 7
    assert len(s.h.upstream.requests) == 6
    last = s.h.audit_lines()[-1]
    assert (last["status"], last["decision"], last["reason"]) == (429, "throttled", "requests")


def test_records_budget(stacks, backend) -> None:
    s = stacks(records="20/hour")
    assert s.get("/patients?last_name=Martin&page=1").status_code == 200
    s.flush()  # records are late facts: the Redis store flushes them on a timer
    assert s.get("/patients?last_name=Martin&page=2").status_code == 200
    s.flush()
    refused = s.get("/patients?last_name=Martin&page=3")
    assert_refused(refused, "throttled", "records")
    assert '"records";r=0' in refused.headers["ratelimit"]
    assert int(refused.headers["retry-after"]) > 60  # a record frees every 3 minutes
    assert len(s.h.upstream.requests) == 2


def test_distinct_patients_budget(stacks) -> None:
    s = stacks(distinct_patients="5/day", enumeration=False)
    for pid in (3, 3, 71, 3, 150, 9, 71, 412):  # five distinct among eight reads
        assert s.get(f"/patients/{pid}").status_code == 200
        s.flush()
    assert_refused(s.get("/patients/77"), "throttled", "patients")
    assert s.get("/patients/9", sub="dr-watson").status_code == 200  # per principal


def test_client_limits_cap_the_application(stacks) -> None:
    s = stacks(client_limits={"requests": "40/minute"})  # burst 4 for the whole client
    statuses = [s.get(f"/patients/{pid}", sub=f"user-{pid % 2}").status_code
                for pid in (11, 402, 73, 1900, 8, 333)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    refused = s.get("/patients/5", sub="user-new")
    assert_refused(refused, "throttled", "client-requests")
    assert '"client-requests";q=40;w=60' in refused.headers["ratelimit-policy"]


def test_sequential_walk_with_jitter_is_quarantined(stacks) -> None:
    s = stacks()
    walk = [10, 11, 13, 14, 17, 18, 19, 22, 23, 25, 26, 30, 31, 32, 35, 36, 38, 41, 43, 44]
    for pid in walk[:-1]:
        assert s.get(f"/patients/{pid}").status_code == 200
    assert s.get(f"/patients/{walk[-1]}").status_code == 200  # answered, then quarantined
    refused = s.get("/patients/9000")
    assert_refused(refused, "quarantined", "sequential_ids")
    assert int(refused.headers["retry-after"]) > 14 * 60
    assert "sequential_ids" not in refused.headers.get("ratelimit", "")
    assert len(s.h.upstream.requests) == len(walk)
    assert metric(s.h, "vigie_enumeration_detections_total", client=s.client,
                  signal="sequential_ids") == 1
    assert metric(s.h, "vigie_anomaly_score", client=s.client) == 1.0
    assert s.get("/patients/9000", sub="dr-watson").status_code == 200  # others unaffected


def test_random_lookups_that_miss_are_quarantined(stacks) -> None:
    s = stacks()
    ids = [512_340, 734_001, 608_777, 999_123, 551_002, 871_650, 640_404, 777_070,
           523_456, 901_234, 688_888, 712_345, 845_612, 599_999, 760_300, 820_202,
           540_123, 930_330, 615_151, 705_505]
    statuses = [s.get(f"/patients/{pid}").status_code for pid in ids]
    assert statuses == [404] * 20
    assert_refused(s.get("/patients/42"), "quarantined", "not_found_ratio")
    assert metric(s.h, "vigie_enumeration_detections_total", client=s.client,
                  signal="not_found_ratio") == 1


def test_deep_paging_at_the_maximum_page_size(stacks) -> None:
    s = stacks()
    for page in range(1, 11):
        assert s.get(f"/patients?last_name=Martin&page={page}&page_size=50").status_code == 200
    assert_refused(s.get("/patients?last_name=Martin&page=11&page_size=50"), "quarantined",
                   "deep_paging")


def test_an_anomalous_principal_is_slowed_before_it_is_caught(stacks) -> None:
    s = stacks(requests="120/minute")  # burst 12; slowed by 4 once its score reaches 0.5
    for pid in (612_000, 745_013, 580_221, 933_007, 701_555, 866_402, 529_999, 690_690,
                812_121, 777_000):  # ten misses: not-found strength 0.5, no detection yet
        assert s.get(f"/patients/{pid}").status_code == 404
    assert s.get("/patients/42").status_code == 200
    refused = s.get("/patients/43")  # the 12th: the plain budget would still admit it
    assert_refused(refused, "throttled", "anomaly")
    assert '"requests";r=0' in refused.headers["ratelimit"]
    assert [s.get(f"/patients/{p}", sub="dr-watson").status_code
            for p in range(300, 3600, 300)] == [200] * 11
