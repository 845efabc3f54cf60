"""The `redis` setting: one server, a Sentinel group or a Cluster, parsed without echoing
a password into an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigie.config import load_settings
from vigie.errors import ConfigError
from vigie.redis_connect import RedisTarget


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    target = RedisTarget.parse(
        "redis+sentinel://app:s%40cret@10.0.0.1:26379,[fd00::2]:26380,s3.chu.local:26379"
        "/vigie-master/2?sentinel_password=other")
    assert target.kind == "sentinel"
    assert target.nodes == (("10.0.0.1", 26379), ("fd00::2", 26380), ("s3.chu.local", 26379))
    assert (target.service, target.db) == ("vigie-master", 2)
    assert (target.username, target.password, target.sentinel_password) == (
        "app", "s@cret", "other")
    assert not target.tls and RedisTarget.parse("rediss+sentinel://s:1/m").tls


def test_a_cluster_url_lists_its_seed_nodes() -> None:
    target = RedisTarget.parse("rediss+cluster://:pw@n1:6379,n2:6379")
    assert (target.kind, target.nodes, target.password, target.tls) == (
        "cluster", (("n1", 6379), ("n2", 6379)), "pw", True)
    assert RedisTarget.parse("redis://:pw@redis:6379/0").kind == "standalone"


@pytest.mark.parametrize(("url", "reason"), [
    ("http://redis:6379", "must be a redis://"),
    ("redis+sentinel://:hunter2@s1:26379", "service name"),
    ("redis+sentinel://:hunter2@s1:26379/a/b/c", "service name"),
    ("redis+sentinel://:hunter2@s1:26379/vigie/zero", "must be a number"),
    ("redis+sentinel://:hunter2@s1/vigie", "host:port"),
    ("redis+cluster://:hunter2@", "at least one host"),
    ("redis+cluster://:hunter2@n1:6379/1", "database 0"),
])
def test_a_bad_url_is_refused_without_its_password(tmp_path: Path, url: str,
                                                   reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        RedisTarget.parse(url)
    assert "hunter2" not in str(caught.value)
    (tmp_path / "policies").mkdir(exist_ok=True)
    config = tmp_path / "vigie.yaml"
    config.write_text("upstream: http://127.0.0.1:9\npolicies: ./policies\n")
    with pytest.raises(ConfigError, match=r"key 'redis'") as refused:
        load_settings(config, {"VIGIE_REDIS": url})
    assert "hunter2" not in str(refused.value)
