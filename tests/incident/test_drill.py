"""The incident drill, end to end (docs/incident-response.md, in `make test`).

An extraction (`vigie attack`'s sequential style) runs against the demo stack on two
replicas sharing Redis and ends on a decoy record; real Prometheus, with the repo's
alert rules, raises the SOC alert; the SOC finds the principal in the security events,
revokes it and contains its client with the CLI; the attacker's token is refused on
both replicas within a second; `vigie audit exposed` lists exactly the patients the
attacker received; the timeline tells the story. Bounded: about 20 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson

from support.deploy import ALERTS
from support.drill import DrillStack
from support.guard import ThrowawayRedis
from support.incident import run_cli, until
from support.prometheus import PrometheusServer
from vigie.demo.attack import CLIENT, SCOPES, Target, sequential
from vigie.demo.patients import DECOY_IDS
from vigie.demo.runner import PATIENT

ATTACK_SECONDS = 6.0
REFUSED_WITHIN_SECONDS = 1.0


def quarantined_principal(event_files: list[Path]) -> str:
    """What the SOC reads first: who was quarantined, from the security events."""
    for path in event_files:
        for raw in path.read_bytes().splitlines() if path.exists() else []:
            event = orjson.loads(raw)
            if event["client"] == CLIENT and event["action"] == "quarantine":
                return str(event["principal"])
    raise AssertionError("no quarantine in the security events")


def test_alert_revoke_contain_and_notify(tmp_path: Path) -> None:
    redis_server = ThrowawayRedis()
    redis_server.start()
    try:
        with DrillStack(tmp_path, redis_server.url) as d, PrometheusServer(
                tmp_path, [d.a.admin_url.removeprefix("http://"),
                           d.b.admin_url.removeprefix("http://")], [ALERTS],
                labels={"namespace": "drill"}) as prom:
            assert prom.wait_for_scrapes(2), prom.log()
            stolen = d.a.issuer.mint(CLIENT, "scraper-1", SCOPES, practice_id="P1")

            # The attacker's first reads go through replica b, then `vigie attack`'s
            # sequential walk through replica a (a load balancer spreads an attacker too).
            first = httpx.get(f"{d.b.proxy_url}/patients/{PATIENT}", timeout=5,
                              headers={"Authorization": f"Bearer {stolen}"})
            assert first.status_code == 200, first.text
            outcome = d.run(sequential(Target(d.a, (d.a.proxy_url,), "redis"), ATTACK_SECONDS))
            received = {str(first.json()["id"]), *outcome.accounts[0].patients}
            assert len(received) > 1, outcome.as_dict()
            # The walk reaches a decoy record: quarantined at once, and the SOC is paged.
            decoy = httpx.get(f"{d.b.proxy_url}/patients/{DECOY_IDS[0]}", timeout=5,
                              headers={"Authorization": f"Bearer {stolen}"})
            assert decoy.status_code == 429
            assert prom.wait_for_alert("VigieDecoyTouched", client=CLIENT), prom.api("alerts")

            principal = quarantined_principal(d.event_files)
            admin = ("--token-file", str(d.token_file), "--operator", "soc-analyst")
            code, out, err = run_cli("revoke", "user", CLIENT, principal, "--reason",
                                     "INC-2026-001 extraction", "--admin", d.a.admin_url,
                                     *admin)
            assert code == 0, err
            revoked_at = time.monotonic()
            code, out, err = run_cli("contain", CLIENT, "read-only", "--reason",
                                     "INC-2026-001", "--for", "4h", "--admin", d.b.admin_url,
                                     *admin)
            assert code == 0, err
            for replica in (d.a, d.b):
                def refused(url: str = replica.proxy_url) -> bool:
                    answer = httpx.get(f"{url}/patients/1", timeout=5,
                                       headers={"Authorization": f"Bearer {stolen}"})
                    return answer.status_code == 401
                assert until(refused, REFUSED_WITHIN_SECONDS) is not None
            print(f"refused on both replicas {time.monotonic() - revoked_at:.3f} s after "
                  "the revocation was confirmed")
            assert prom.wait_for_alert("VigieContainmentActive", client=CLIENT, mode="read-only")

            files = [str(path) for path in d.audit_files]
            code, out, err = run_cli("audit", "exposed", *files, "--principal", principal)
            assert code == 0, err
            listed = out.splitlines()[:-1]
            assert sorted(listed) == sorted(received) and len(listed) == len(set(listed))

            events = [arg for path in d.event_files for arg in ("--events", str(path))]
            code, out, err = run_cli("incident", "timeline", *files, *events,
                                     "--principal", principal, "--format", "json")
            assert code == 0, err
            story = orjson.loads(out)
            assert story["first_request"]["ts"] <= story["first_signal"]["ts"]
            assert story["quarantines"] and story["revocations"][0]["action"] == "revoke"
            assert story["revocations"][0]["by"].startswith("soc-analyst")
            assert story["containments"][0]["signal"] == "read-only"
            assert story["first_revoked_request"] is not None
            assert story["patients_disclosed"] == len(received)
            assert sum(hour["requests"] for hour in story["per_hour"]) == \
                sum(story["decisions"].values())
    finally:
        redis_server.kill()
