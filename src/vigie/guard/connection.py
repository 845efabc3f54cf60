"""The one place the guard builds its Redis client (so other topologies plug in here)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def redis_client(url: str, *, timeout: float, max_connections: int) -> Redis:
    """A client on a small blocking pool: a burst of requests queues for a warm
    connection instead of opening dozens of new ones inside the 100 ms budget."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout,
        socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0))
    return Redis(connection_pool=pool)
