"""Several replicas on one Redis: a revocation or a switch made through one replica's CLI
reaches the other within 1 s; a Redis outage makes a revocation fail closed (enforced
where it was made, reported NOT confirmed, pushed once Redis is back: nothing lost)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from support.guard import REDIS_URL, ThrowawayRedis, require_redis
from support.guard_e2e import metric, subject_of, wait_for
from support.incident import forget_incidents, run_cli, until

PROPAGATION_SECONDS = 1.0


@pytest.fixture
def shared_redis() -> Iterator[str]:
    require_redis()
    yield REDIS_URL
    forget_incidents(REDIS_URL)


def test_a_revocation_and_a_switch_reach_every_replica_within_a_second(stacks, shared_redis
                                                                       ) -> None:
    a = stacks("a", redis_url=shared_redis)
    b = stacks("b", redis_url=shared_redis)
    assert a.get("/patients/1", sub="dr-mallory").status_code == 200
    assert b.get("/patients/2", sub="dr-mallory").status_code == 200
    principal = subject_of(a.h, a.client, "dr-mallory")
    code, out, err = run_cli("revoke", "user", a.client, principal, "--reason", "INC-5",
                             "--admin", a.h.admin_url, "--token-file", str(a.token_file),
                             "--operator", "soc-bob")
    assert code == 0, err
    assert out.startswith(f"revoked user {principal} of {a.client} issued before ")
    took = until(lambda: b.get("/patients/3", sub="dr-mallory").status_code == 401,
                 PROPAGATION_SECONDS)
    assert took is not None, "replica b still accepts the revoked token after 1 s"
    print(f"revocation reached replica b in {took * 1000:.0f} ms")
    assert b.get("/patients/3", sub="dr-watson").status_code == 200

    code, out, err = run_cli("contain", a.client, "deny", "--reason", "INC-5", "--for", "1h",
                             "--admin", a.h.admin_url, "--token-file", str(a.token_file))
    assert code == 0, err
    assert until(lambda: b.get("/patients/4", sub="dr-watson").status_code == 403,
                 PROPAGATION_SECONDS) is not None
    code, out, _ = run_cli("contain", "list", "--admin", b.h.admin_url, "--token-file",
                           str(b.token_file))
    assert code == 0 and f"contained client {a.client}: deny until " in out

    # A restarted replica reads them back from Redis.
    b.h.stop()
    b.h._start()
    assert b.get("/patients/5", sub="dr-mallory").status_code == 401


def test_a_redis_outage_while_revoking_fails_closed_and_loses_nothing(stacks) -> None:
    server = ThrowawayRedis()
    server.start()
    try:
        s = stacks(redis_url=server.url)
        assert wait_for(lambda: metric(s.h, "vigie_incident_store_up", backend="redis") == 1)
        server.kill()
        code, out, err = run_cli("revoke", "user", s.client, "--sub", "dr-mallory",
                                 "--reason", "INC-6", "--admin", s.h.admin_url,
                                 "--token-file", str(s.token_file))
        assert code == 1
        assert "NOT CONFIRMED" in err and "treat the incident as NOT contained" in err
        assert s.get("/patients/1", sub="dr-mallory").status_code == 401  # enforced here
        assert metric(s.h, "vigie_incident_unconfirmed") == 1
        listed = s.api("GET", "/incident/revocations").json()
        ident = listed["revocations"][0]["id"]
        lift = s.api("DELETE", f"/incident/revocations/{ident}")
        assert lift.status_code == 503 and "NOT lifted" in lift.json()["detail"]
        assert s.get("/patients/1", sub="dr-mallory").status_code == 401  # still in force

        server.start()  # empty: the replica pushes what Redis never confirmed
        assert wait_for(lambda: metric(s.h, "vigie_incident_unconfirmed") == 0, timeout=10)
        connection = redis.Redis.from_url(server.url)
        try:
            assert connection.hkeys("vigie:{incident}:revocations") == [ident.encode()]
        finally:
            connection.close()
        assert s.get("/patients/1", sub="dr-mallory").status_code == 401
    finally:
        server.kill()
