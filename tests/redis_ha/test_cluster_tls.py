"""Redis Cluster over TLS (`rediss+cluster://`): three primaries from Debian's redis-server
listening on TLS only (cluster bus and replication on TLS too), a certificate from a test
CA that Vigie trusts through `SSL_CERT_FILE`. The guard keeps its budgets there, and a
client that does not trust the CA is refused by the nodes' TLS, not served in plain text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from support.guard_e2e import metric, policy_text, subject_of
from support.harness import Harness, Keys
from support.pki import CA
from support.redis_ha import Cluster, TlsFiles, cluster, servers
from vigie.guard.store import principal_tag

TIGHT = "gp-tight"


@dataclass
class Stack:
    h: Harness
    redis: Cluster


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("cluster-tls")
    authority = CA("Synthetic Hospital Redis CA")
    (tmp / "pki").mkdir()
    cert, key = authority.issue("redis.test", server=True).write(tmp / "pki", "node")
    peer_cert, peer_key = authority.issue("redis-peer", server=False).write(tmp / "pki", "peer")
    ca = tmp / "pki" / "ca.pem"
    ca.write_bytes(authority.cert_pem)
    policies = {"tight.yaml": policy_text(TIGHT, enumeration=False,
                                          requests="120/day")}  # a burst of 12
    with servers(tmp / "redis") as group, pytest.MonkeyPatch.context() as patch:
        nodes = cluster(group, size=3, tls=TlsFiles(ca, cert, key, peer_cert, peer_key))
        patch.setenv("SSL_CERT_FILE", str(ca))  # the hospital's internal CA, as documented
        with Harness(tmp, policies, keys=Keys(), env={"VIGIE_REDIS": nodes.url()}) as h:
            h.upstream.reply(json={"id": "1", "last_name": "Quennec"})
            yield Stack(h, nodes)


def test_the_nodes_speak_tls_only(stack: Stack) -> None:
    node = stack.redis.nodes[0]
    assert stack.redis.url().startswith("rediss+cluster://")
    plain = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()  # a plain-text client gets nothing from a TLS port
    assert node.client().ping()


def test_budgets_are_counted_in_a_tls_cluster(stack: Stack) -> None:
    h = stack.h
    token = h.token(TIGHT, sub="dr-tls", scope="patient.read")
    statuses = [h.get("/patients/1", token).status_code for _ in range(13)]
    assert statuses == [200] * 12 + [429]
    assert metric(h, "vigie_state_backend_up", backend="redis") == 1
    tag = principal_tag(TIGHT, subject_of(h, TIGHT, "dr-tls"))
    key = f"vigie:{{{tag}}}:req"
    assert stack.redis.primary_of(key).client().exists(key) == 1  # kept in the cluster
