"""Real Redis topologies on loopback from Debian's redis-server: a Sentinel group, a Cluster.

Each server runs in its own folder under the test's tmp path and is stopped by its PID
(terminate, then kill) whatever happens. Start-up waits for each server to answer, a
Sentinel group until the sentinels agree on the master, a Cluster until `cluster_state:ok`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from support.deploy import require_tool
from support.servers import free_port

START_TIMEOUT = 15.0
_HIGHEST_CLUSTER_PORT = 65535 - 10000  # above it the cluster bus port does not exist


def wait_until(check: Callable[[], object], timeout: float = START_TIMEOUT,
               what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            found = check()
            if found:
                return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate for 127.0.0.1, a client one (a node dials the cluster bus and
    its primary as a TLS client, and the peer checks it), and the CA that signed both."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    def server_config(self, port: int) -> str:
        """Only a TLS port (no plain one), TLS on the cluster bus and to replicas too."""
        return (f"port 0\ntls-port {port}\ntls-cert-file {self.cert}\n"
                f"tls-key-file {self.key}\ntls-ca-cert-file {self.ca}\n"
                f"tls-client-cert-file {self.client_cert}\n"
                f"tls-client-key-file {self.client_key}\n"
                "tls-auth-clients no\ntls-cluster yes\ntls-replication yes\n")


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    folder: Path
    tls: TlsFiles | None = None

    def client(self) -> redis.Redis:
        if self.tls:
            return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                               socket_connect_timeout=2, ssl=True,
                               ssl_ca_certs=str(self.tls.ca))
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           socket_connect_timeout=2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def crash(self) -> None:
        """A node lost at once (SIGKILL), as a failed VM or OOM kill."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@dataclass
class Servers:
    root: Path
    started: list[Server] = field(default_factory=list)

    def start(self, name: str, *args: str, config: str = "",
              tls: TlsFiles | None = None) -> Server:
        binary = require_tool("redis-server", "apt-get install redis-server")
        port = free_port()
        while port > _HIGHEST_CLUSTER_PORT:  # a cluster node also listens on port + 10000
            port = free_port()
        folder = self.root / f"{name}-{port}"
        folder.mkdir(parents=True)
        conf = folder / "redis.conf"
        listen = tls.server_config(port) if tls else f"port {port}\n"
        conf.write_text(f"{listen}bind 127.0.0.1\ndir {folder}\nsave \"\"\n"
                        f"appendonly no\n{config}")
        log = (folder / "redis.log").open("wb")
        process = subprocess.Popen([binary, str(conf), *args], cwd=folder,
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        server = Server(port, process, folder, tls)
        self.started.append(server)
        try:
            wait_until(lambda: process.poll() is None and server.client().ping(),
                       what=f"{name} on port {port}")
        except AssertionError:
            if tls and process.poll() is not None:
                _no_tls_in_this_build(binary, folder / "redis.log")
            raise
        return server

    def stop_all(self) -> None:
        for server in reversed(self.started):
            server.stop()


def _no_tls_in_this_build(binary: str, log: Path) -> None:
    """A redis-server built without TLS (BUILD_TLS=no) exits on `tls-port`: say so, and
    fail in CI rather than skip (the TLS tests must run there)."""
    said = log.read_text(errors="replace")
    message = (f"{binary} refused the TLS configuration (built without TLS? Debian's "
               f"redis-server has it): {said.strip()[-300:]}")
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the TLS tests, refusing to skip")
    pytest.skip(message)


@contextlib.contextmanager
def servers(root: Path) -> Iterator[Servers]:
    group = Servers(root)
    try:
        yield group
    finally:
        group.stop_all()


@dataclass
class SentinelGroup:
    master: Server
    replica: Server
    sentinels: list[Server]
    service: str = "vigie"

    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def current_master_port(self) -> int:
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError, OSError):
                host, port = sentinel.client().sentinel_get_master_addr_by_name(self.service)
                return int(port)
        raise AssertionError("no sentinel answers")


def sentinel_group(group: Servers, service: str = "vigie") -> SentinelGroup:
    master = group.start("master")
    replica = group.start("replica", config=f"replicaof 127.0.0.1 {master.port}\n")
    wait_until(lambda: master.client().info("replication")["connected_slaves"] == 1,
               what="the replica to attach")
    sentinels = [group.start("sentinel", "--sentinel", config=(
        f"sentinel monitor {service} 127.0.0.1 {master.port} 2\n"
        f"sentinel down-after-milliseconds {service} 1000\n"
        f"sentinel failover-timeout {service} 5000\n"
        f"sentinel parallel-syncs {service} 1\n")) for _ in range(3)]
    found = SentinelGroup(master, replica, sentinels, service)
    wait_until(lambda: all(
        int(s.client().sentinel_master(service)["num-other-sentinels"]) == 2
        for s in sentinels), what="the sentinels to find each other")
    return found


@dataclass
class Cluster:
    nodes: list[Server]

    def url(self) -> str:
        scheme = "rediss+cluster" if self.nodes[0].tls else "redis+cluster"
        return f"{scheme}://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def primary_of(self, key: str) -> Server:
        """The node that serves `key` as primary, as a live node's slot map says now."""
        for node in self.nodes:
            if node.process.poll() is not None:
                continue
            with contextlib.suppress(redis.RedisError, OSError):
                client = node.client()
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if int(start) <= slot <= int(end):
                        return next(n for n in self.nodes if n.port == int(primary[1]))
        raise AssertionError("no live node maps the key")

    def replica_of(self, primary: Server) -> Server:
        for node in self.nodes:
            if node is not primary and node.process.poll() is None:
                with contextlib.suppress(redis.RedisError, OSError):
                    info = node.client().info("replication")
                    if info["role"] == "slave" and int(info["master_port"]) == primary.port:
                        return node
        raise AssertionError("the primary has no replica")


def cluster(group: Servers, size: int = 3, replicas: int = 0,
            node_timeout_ms: int = 2000, tls: TlsFiles | None = None) -> Cluster:
    """`size` primaries, each with `replicas` replicas (a failover needs one); with `tls`,
    every node listens on TLS only and the cluster bus is TLS too."""
    nodes = [group.start("cluster", config=(
        "cluster-enabled yes\ncluster-config-file nodes.conf\n"
        f"cluster-node-timeout {node_timeout_ms}\n"), tls=tls)
        for _ in range(size * (1 + replicas))]
    cli = require_tool("redis-cli", "apt-get install redis-tools")
    cli_tls = ["--tls", "--cacert", str(tls.ca)] if tls else []
    created = subprocess.run(
        [cli, *cli_tls, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
         "--cluster-replicas", str(replicas), "--cluster-yes"],
        capture_output=True, text=True, timeout=60, check=False)
    assert created.returncode == 0, created.stdout + created.stderr
    wait_until(lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in nodes),
               what="cluster_state:ok")
    if replicas:
        wait_until(lambda: sum(n.client().info("replication")["role"] == "slave"
                               and n.client().info("replication")["master_link_status"] == "up"
                               for n in nodes) == size * replicas,
                   what="the replicas to sync")
    return Cluster(nodes)
