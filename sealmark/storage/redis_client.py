"""The Redis client every adapter takes: one server (``redis.Redis``) or a Redis Cluster
(``redis.cluster.RedisCluster``, which follows MOVED/ASK redirections and a failover itself:
seeded by ``SEALMARK_REDIS_CLUSTER_NODES``),
and the errors that mean "Redis is away" for either.

Adapters use only what both clients offer (commands, scripts, non-transactional pipelines)
and keep the keys of one script or pipeline call in one hash slot (``{tag}``), so the same
code runs against both.
"""

from __future__ import annotations

import redis
from redis.backoff import ConstantBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from sealmark.storage.redis_nodes import parse_nodes

__all__ = ["REDIS_AWAY", "RedisClient", "connect_redis", "is_cluster", "parse_nodes"]

RedisClient = redis.Redis | RedisCluster

# What a client raises while its server (or a cluster node, or the cluster's view of its
# slots) is away: RedisClusterException is not a RedisError.
REDIS_AWAY: tuple[type[Exception], ...] = (redis.RedisError, redis.exceptions.RedisClusterException)

SOCKET_TIMEOUT_S = 1.0


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


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
