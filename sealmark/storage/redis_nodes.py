"""The seed list of a Redis Cluster (``SEALMARK_REDIS_CLUSTER_NODES``), parsed without the
Redis client: the settings check it at load, before anything connects."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["parse_nodes"]


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
