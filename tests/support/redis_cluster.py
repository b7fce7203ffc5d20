"""The tests' Redis Cluster: 3 masters with a replica each, from the helper the bench uses
too (sealmark_app/bench/redis_cluster.py)."""

from sealmark_app.bench.redis_cluster import RedisClusterServers, redis_cluster

__all__ = ["RedisClusterServers", "redis_cluster"]
