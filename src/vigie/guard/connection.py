"""The one place the guard builds its Redis client: one server, a Sentinel-managed master
or a Redis Cluster, through `vigie.redis_connect`."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from vigie import redis_connect


def redis_client(url: str, *, timeout: float, max_connections: int) -> Redis | RedisCluster:
    """A client on small pools (per node for a Cluster): a burst of requests queues for a
    warm connection instead of opening dozens of new ones inside the 100 ms budget."""
    return redis_connect.client(url, timeout=timeout, max_connections=max_connections)
