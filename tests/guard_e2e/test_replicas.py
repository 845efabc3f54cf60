"""Two proxies sharing Redis enforce one budget; a Redis outage never causes a 5xx."""

from __future__ import annotations

import httpx
import pytest
import redis

from support.guard import ThrowawayRedis
from support.guard_e2e import admin, metric, subject_of, wait_for


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_two_proxies_share_one_budget_and_quarantines(stacks) -> None:
    a = stacks(name="a", requests="600/hour")  # burst 60, then one every 6 s
    b = stacks(name="b", requests="600/hour")
    assert a.client == b.client
    statuses = [(a if n % 2 else b).get(f"/patients/{1000 + 37 * n}").status_code
                for n in range(100)]
    allowed = statuses.count(200)
    assert 60 <= allowed <= 61, allowed  # one budget, not 60 per replica
    assert set(statuses) == {200, 429}
    total = len(a.h.upstream.requests) + len(b.h.upstream.requests)
    assert total == allowed

    assert a.get("/patients/990001", sub="dr-mallory").status_code == 429
    assert wait_for(lambda: b.get("/patients/42", sub="dr-mallory").status_code == 429)
    subject = subject_of(b.h, b.client, "dr-mallory")
    assert admin(b.h, "DELETE", f"/quarantine/{b.client}/{subject}").status_code == 204
    assert a.get("/patients/42", sub="dr-mallory").status_code == 200  # lifted everywhere


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_redis_outage_falls_back_and_recovers(stacks) -> None:
    server = ThrowawayRedis()
    server.start()
    try:
        s = stacks(redis_url=server.url, requests="60/minute")  # burst 6
        assert s.get("/patients/990001", sub="dr-mallory").status_code == 429  # quarantined
        assert wait_for(lambda: metric(s.h, "vigie_state_backend_up", backend="redis") == 1)
        s.flush()  # the quarantine is in Redis before it goes away
        server.kill()

        statuses = [s.get(f"/patients/{3000 + 41 * n}").status_code for n in range(20)]
        assert all(code < 500 for code in statuses), statuses
        assert 6 <= statuses.count(200) <= 7 and statuses.count(429) >= 13  # fallback limits
        assert s.get("/patients/42", sub="dr-mallory").status_code == 429  # still quarantined
        assert metric(s.h, "vigie_state_backend_up", backend="redis") == 0
        assert httpx.get(f"{s.h.admin_url}/readyz", timeout=5).status_code == 200
        assert admin(s.h, "GET", "/quarantine").status_code == 200

        server.start()  # same port, empty: scripts must be loaded again

        def recovered() -> bool:
            code = s.get("/patients/77", sub="dr-watson").status_code
            assert code < 500
            return metric(s.h, "vigie_state_backend_up", backend="redis") == 1

        assert wait_for(recovered, timeout=8, step=0.3)
        fresh = [s.get(f"/patients/{9000 + 13 * n}", sub="dr-new").status_code
                 for n in range(8)]
        assert fresh[:6] == [200] * 6 and fresh[6:] == [429, 429]
        key = f"vigie:{{{s.client}:{subject_of(s.h, s.client, 'dr-new')}}}:req"
        connection = redis.Redis.from_url(server.url)
        try:
            assert connection.exists(key) == 1  # decided by Redis again
        finally:
            connection.close()
    finally:
        server.kill()
