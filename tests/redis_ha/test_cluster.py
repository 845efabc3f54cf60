"""Redis Cluster: a real 3-node cluster on loopback. The client module speaks to it (slot
map, scripts on every primary); Vigie refuses it at start-up until the guard's scripts are
slot-aware, naming the key, rather than failing request after request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from support.redis_ha import Cluster, cluster, servers
from vigie import redis_connect
from vigie.config import load_settings
from vigie.errors import ConfigError


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with servers(tmp_path_factory.mktemp("cluster")) as group:
        yield cluster(group, size=3)


def test_the_client_maps_slots_and_loads_scripts_on_every_primary(three_nodes: Cluster) -> None:
    async def scenario() -> None:
        client = redis_connect.client(three_nodes.url(), timeout=1.0, max_connections=4)
        assert isinstance(client, RedisCluster)
        try:
            await client.initialize()
            assert len(client.get_primaries()) == 3
            sha = await client.script_load("return redis.call('INCR', KEYS[1])")
            # One principal's keys share a hash tag, hence a slot; principals spread out.
            principals = [f"gp-frontdesk:psn-{n}" for n in range(30)]
            slots = {client.keyslot(f"vigie:{{{p}}}:req") for p in principals}
            nodes = {client.get_node_from_key(f"vigie:{{{p}}}:req").name for p in principals}
            assert len(slots) > 1 and len(nodes) == 3
            for principal in principals:
                keys = [f"vigie:{{{principal}}}:{part}" for part in ("q", "req", "rec")]
                assert len({client.keyslot(key) for key in keys}) == 1
                assert await client.evalsha(sha, 1, keys[1]) == 1
            # What keeps the guard off a Cluster today: its admission script also takes
            # the client's aggregate keys, under another hash tag.
            with pytest.raises(RedisClusterException, match="same key slot"):
                await client.evalsha(sha, 2, "vigie:{gp-frontdesk:psn-1}:req",
                                     "vigie:{gp-frontdesk}:req")
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_vigie_refuses_a_cluster_at_start_up_naming_the_key(three_nodes: Cluster,
                                                            tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    config = tmp_path / "vigie.yaml"
    config.write_text(f"upstream: http://127.0.0.1:9\npolicies: ./policies\n"
                      f"redis: {three_nodes.url()}\n")
    with pytest.raises(ConfigError, match=r"vigie.yaml:3: Redis Cluster .*\(key 'redis'\)"):
        load_settings(config, {})
