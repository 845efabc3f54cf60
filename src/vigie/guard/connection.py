"""The one place the guard builds its Redis client: one server or a Sentinel-managed
master, through `vigie.redis_connect` (Redis Cluster is refused by config.py until the
guard's scripts are Cluster-safe)."""

from __future__ import annotations

from redis.asyncio import Redis

from vigie import redis_connect


def redis_client(url: str, *, timeout: float, max_connections: int) -> Redis:
    """A client on a small blocking pool: a burst of requests queues for a warm
    connection instead of opening dozens of new ones inside the 100 ms budget."""
    connected = redis_connect.client(url, timeout=timeout, max_connections=max_connections)
    if not isinstance(connected, Redis):
        raise ValueError("Redis Cluster cannot hold the guard's state yet")
    return connected
