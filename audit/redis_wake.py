"""The Redis adapter of :class:`audit.ports.AlertWake`: the verifier appends to the stream
``alerts:<tenant>`` (see verifier/redis_state.py) as it raises alerts."""

from __future__ import annotations

import time
from typing import Any

from sealmark.storage.redis_client import REDIS_AWAY, RedisClient


class RedisAlertWake:
    """One server or a cluster: the stream is one key, read from the node holding it."""

    def __init__(self, client: RedisClient) -> None:
        self._redis = client

    def wait(self, tenant_id: str, cursor: str, block_ms: int) -> str:
        try:
            got = self._redis.xread({f"alerts:{tenant_id}": cursor}, count=100, block=block_ms)
        except REDIS_AWAY:
            time.sleep(block_ms / 1000)
            return "$"
        if not got:
            return cursor
        entries: Any = got
        last = entries[0][1][-1][0]  # the id of the newest entry read
        return last.decode() if isinstance(last, bytes) else str(last)
