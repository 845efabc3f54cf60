"""The guard's Redis client from the `redis` URL: a server, a Sentinel master, or a Cluster.

    redis://[user:password@]host:6379/0          one server (rediss:// for TLS, unix:// too)
    redis+sentinel://[user:password@]s1:26379,s2:26379,s3:26379/<service>[/<db>]
    redis+cluster://[user:password@]n1:6379,n2:6379,n3:6379

`rediss+sentinel://` and `rediss+cluster://` use TLS to every node (trust: `SSL_CERT_FILE`
or the system store). The credentials are the data nodes'; sentinels are asked without
(Sentinel's own `requirepass` is rarely set; put it in `sentinel_password` of the URL's
query, `?sentinel_password=...`, when it is).

Sentinel: the pool asks the sentinels for the current master before each new connection
and drops connections to a demoted master (`READONLY`), so a failover costs the requests
of the failover window (decided by the guard's per-replica fallback), never an error.
Cluster: redis-py's `RedisCluster` (slot map, MOVED/ASK, a map refresh after a connection
error, so a failover costs the requests of its window, decided the same way); the guard's
script calls each keep to one hash tag, hence one slot (`guard.cluster_scripts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import NoBackoff

STANDALONE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SCHEMES = STANDALONE_SCHEMES + SENTINEL_SCHEMES + CLUSTER_SCHEMES


@dataclass(frozen=True, slots=True)
class RedisTarget:
    kind: str  # standalone | sentinel | cluster
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        """The target of a `redis` setting; ValueError naming what is wrong (never the URL,
        which may hold a password)."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError("must be a redis://, rediss://, unix://, redis+sentinel:// or "
                             "redis+cluster:// URL")
        if parts.scheme in STANDALONE_SCHEMES:
            return cls(kind="standalone", url=url)
        userinfo, _, hosts = parts.netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        nodes = tuple(_node(item) for item in hosts.split(",") if item.strip())
        if not nodes:
            raise ValueError(f"{parts.scheme}:// needs at least one host:port")
        query = parse_qs(parts.query)
        common: dict[str, Any] = {
            "url": url, "nodes": nodes, "username": unquote(username) or None,
            "password": unquote(password) or None, "tls": parts.scheme.startswith("rediss"),
            "sentinel_password": next(iter(query.get("sentinel_password", [])), None),
        }
        if parts.scheme in CLUSTER_SCHEMES:
            if parts.path.strip("/"):
                raise ValueError("a Redis Cluster has only database 0: no path in the URL")
            return cls(kind="cluster", **common)
        path = [segment for segment in parts.path.split("/") if segment]
        if not path or len(path) > 2:
            raise ValueError("redis+sentinel:// needs the master's service name: "
                             "redis+sentinel://s1:26379,s2:26379/<service>[/<db>]")
        if len(path) == 2 and not path[1].isdigit():
            raise ValueError("the database after the service name must be a number")
        return cls(kind="sentinel", service=unquote(path[0]),
                   db=int(path[1]) if len(path) == 2 else 0, **common)


def usable_by_guard(url: str) -> RedisTarget:
    """The target of the `redis` setting (every kind is usable); ValueError otherwise."""
    return RedisTarget.parse(url)


def _node(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("every node must be host:port")
    return host.strip("[]"), int(port)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's master discovery with the blocking pool's queueing for a warm connection."""


class _SentinelConnection(SentinelManagedConnection):
    """Asks for the current master on every (re)connect, however it is reached.

    redis-py resolves the master in `connect()`, but `send_packed_command` reconnects
    through `connect_check_health()`, which would dial the address of the last master:
    the guard's batcher writes on its own connections that way, and after a failover kept
    calling the dead node.
    """

    async def connect_check_health(self, check_health: bool = True,
                                   retry_socket_connect: bool = True) -> None:
        if not self.is_connected and self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health=check_health,
                                           retry_socket_connect=retry_socket_connect)


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    pass


def client(target: RedisTarget | str, *, timeout: float,
           max_connections: int) -> Redis | RedisCluster:
    """A redis-py client for `target`: no retries (the guard has its own fallback) and
    `timeout` on connect, socket and pool waits."""
    if isinstance(target, str):
        target = RedisTarget.parse(target)
    options: dict[str, Any] = {
        "socket_timeout": timeout, "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if target.kind == "standalone":
        # A small blocking pool: a burst of requests queues for a warm connection instead
        # of opening dozens of new ones inside the 100 ms budget.
        pool = BlockingConnectionPool.from_url(target.url, max_connections=max_connections,
                                               timeout=timeout, **options)
        return Redis(connection_pool=pool)
    credentials: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "sentinel":
        sentinel_options = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                            "password": target.sentinel_password, "ssl": target.tls}
        sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_options)
        master: Redis = sentinel.master_for(
            target.service, connection_pool_class=_BlockingSentinelPool, db=target.db,
            connection_class=_SentinelSSLConnection if target.tls else _SentinelConnection,
            max_connections=max_connections, timeout=timeout, ssl=target.tls,
            **credentials, **options)
        return master
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        ssl=target.tls, max_connections=max_connections, require_full_coverage=True,
        **credentials, **options)
