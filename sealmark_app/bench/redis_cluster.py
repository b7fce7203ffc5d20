"""A real Redis Cluster on this machine: 3 masters, each with ``replicas`` replicas
(``redis-server --cluster-enabled yes`` on free local ports), created with ``redis-cli
--cluster create``, torn down at the end. The tests' cluster (tests/support/redis_cluster.py)
has a replica per master; ``verify_rps_redis_cluster`` runs on 3 masters alone.

A node timeout of 1 s makes a replica take over a killed master in about 2 s. A machine
without redis-server fails here, with a message saying so: nothing is skipped.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

MASTERS = 3
NODE_TIMEOUT_MS = 1000


@dataclass
class RedisClusterServers:
    """The running cluster: its nodes' ports (``seeds`` for SEALMARK_REDIS_CLUSTER_NODES)."""

    ports: list[int]
    workdir: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def seeds(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """Each running master's port and its slot ranges, as the cluster sees them now."""
        found: dict[int, list[tuple[int, int]]] = {}
        for port in self.alive():
            with self.node(port) as client:
                for line in client.execute_command("CLUSTER", "NODES").decode().splitlines():
                    parts = line.split()
                    if "myself" in parts[2] and "master" in parts[2]:
                        found[port] = [_range(p) for p in parts[8:] if not p.startswith("[")]
        return found

    def alive(self) -> list[int]:
        return [port for port, proc in self.procs.items() if proc.poll() is None]

    def kill(self, port: int) -> None:
        """SIGKILL one node (no chance to hand anything over)."""
        proc = self.procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)

    def ok(self) -> bool:
        """Every running node says cluster_state:ok, every replica is in sync with its master,
        and live masters hold all 16384 slots."""
        try:
            for port in self.alive():
                with self.node(port) as client:
                    if b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                        return False
                    replication = client.execute_command("INFO", "replication")
                    if b"role:slave" in replication and b"master_link_status:up" not in replication:
                        return False  # a replica not in sync yet could not take over
            return sum(b - a + 1 for r in self.masters().values() for a, b in r) == 16384
        except redis.RedisError:
            return False

    def wait_ok(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ok():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster in {self.workdir} not ok after {timeout_s}s")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def _range(part: str) -> tuple[int, int]:
    first, _, last = part.partition("-")
    return int(first), int(last or first)


def _free_ports(n: int) -> list[int]:
    """Free ports whose cluster bus (port + 10000) is free too."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _tool(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        raise RuntimeError(
            f"{name} not found: the Redis Cluster tests need redis-server and redis-cli"
            " (apt-get install redis-server); they are never skipped"
        )
    return found


@contextlib.contextmanager
def redis_cluster(workdir: Path, *, replicas: int = 1) -> Iterator[RedisClusterServers]:
    """The cluster, its nodes' data and logs under ``workdir``; stopped on leaving."""
    server, cli = _tool("redis-server"), _tool("redis-cli")
    servers = RedisClusterServers(_free_ports(MASTERS * (1 + replicas)), workdir)
    try:
        for port in servers.ports:
            node_dir = workdir / str(port)
            node_dir.mkdir(parents=True)
            servers.procs[port] = subprocess.Popen(
                [
                    server,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(node_dir / "nodes.conf"),
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    "--cluster-replica-validity-factor", "0",  # always take over
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(node_dir),
                    "--logfile", str(node_dir / "redis.log"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        for port in servers.ports:
            _wait_answers(servers, port)
        created = subprocess.run(
            [cli, "--cluster", "create", *servers.seeds.split(","), "--cluster-replicas",
             str(replicas), "--cluster-yes"],
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]!r}")
        servers.wait_ok()
        yield servers
    finally:
        servers.stop()


def _wait_answers(servers: RedisClusterServers, port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with servers.node(port) as client:
                client.ping()
            return
        except redis.ConnectionError:
            if servers.procs[port].poll() is not None or time.monotonic() > deadline:
                log = servers.workdir / str(port) / "redis.log"
                tail = log.read_text()[-1000:] if log.exists() else ""
                raise RuntimeError(f"redis-server on port {port} did not start: {tail}") from None
            time.sleep(0.05)
