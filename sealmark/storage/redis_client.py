"""The Redis client every adapter takes: one server (``redis.Redis``) or a Redis Cluster
(``redis.cluster.RedisCluster``, which follows MOVED/ASK redirections and a failover itself:
seeded by ``SEALMARK_REDIS_CLUSTER_NODES``),
and the errors that mean "Redis is away" for either.

Adapters use only what both clients offer (commands, scripts, non-transactional pipelines)
and keep the keys of one script or pipeline call in one hash slot (``{tag}``), so the same
code runs against both.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
from redis.backoff import ConstantBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

__all__ = ["REDIS_AWAY", "RedisClient", "connect_redis", "is_cluster", "parse_nodes"]

RedisClient = redis.Redis | RedisCluster

# What a client raises while its server (or a cluster node, or the cluster's view of its
# slots) is away: RedisClusterException is not a RedisError.
REDIS_AWAY: tuple[type[Exception], ...] = (redis.RedisError, redis.exceptions.RedisClusterException)

SOCKET_TIMEOUT_S = 1.0


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


def parse_nodes(value: str) -> tuple[str | None, list[tuple[str, int]]]:
    """``host:port,host:port`` (``[v6]:port`` too) as pairs. One entry may be a whole
    ``redis://`` or ``rediss://`` URL instead: its password and TLS options apply to every
    node; it is returned first. ValueError saying which entry is bad."""
    url: str | None = None
    nodes: list[tuple[str, int]] = []
    for raw in value.split(","):
        item = raw.strip()
        if item.startswith(("redis://", "rediss://")):
            if url is not None:
                raise ValueError("at most one entry may be a URL (its options apply to all)")
            parsed = urlsplit(item)
            if parsed.hostname is None or parsed.path not in ("", "/", "/0"):
                raise ValueError(f"{_redacted(item)!r}: want rediss://[:password@]host:port")
            url = item
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"{_redacted(item)!r} is not host:port (want e.g. 10.0.0.1:7000,10.0.0.2:7000)"
            )
        nodes.append((host, int(port)))
    return url, nodes


def _redacted(item: str) -> str:
    return item.split("@", 1)[-1] if "://" in item else item


def connect_redis(url: str | None, cluster_nodes: str | None) -> RedisClient:
    """A client for ``url`` (one server) or the cluster seeded by ``cluster_nodes``, with the
    same socket timeouts. Either retries a dropped connection (the cluster client: a dead node,
    after asking for the slots again) twice, 50 ms apart: the defaults retry 10 times with
    exponential back-off, past any caller's deadline."""
    if cluster_nodes is not None:
        seed_url, seeds = parse_nodes(cluster_nodes)
        return RedisCluster(
            url=seed_url,
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in seeds
            ],
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            retry=_retry(),
            require_full_coverage=False,
        )
    if url is None:
        raise ValueError("give a Redis URL or cluster nodes")
    return redis.Redis.from_url(
        url,
        retry=_retry(),
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )


def _retry() -> Retry:
    return Retry(ConstantBackoff(0.05), 2)
