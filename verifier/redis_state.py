"""The Redis adapter of :class:`~verifier.ports.ScanStateStore`, the hot path's state:
per-serial scan history and per-client limits in Redis (atomic Lua scripts), with PostgreSQL
and in-process counters standing in while Redis is away.

PostgreSQL's scan log is the truth; Redis holds a copy. A serial Redis does not know (evicted,
expired, Redis restarted) is rebuilt from the scan log plus the scans still waiting in this
process's batch. After an outage every process moves to a new key epoch, so state that missed
the scans answered without Redis is never trusted again: it is rebuilt from the log.

One server or a Redis Cluster (see :mod:`sealmark.storage.redis_client`). Every key carries a
hash tag, ``{code_key}`` for a serial's keys and ``{client}`` for a client's counters, so a
script's keys are in one slot. On one server a scan is one round trip (admission and the
serial's state in one script); on a cluster the client's counters and the serial's state are
in different slots, so admission is a script of its own first.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import redis
import structlog

from sealmark.storage.redis_client import REDIS_AWAY, RedisClient, is_cluster
from verifier.coalesce import Coalescer
from verifier.domain import ClientContext, History
from verifier.ports import Limits, Rebuild

__all__ = ["Call", "Limits", "RedisGate", "ScanState"]

log = structlog.get_logger("sealmark.verifier")

STATE_TTL_S = 30 * 24 * 3600  # a serial's copy in Redis; rebuilt from the log after that
MAX_SESSIONS_KEPT = 64  # past any sensible threshold; keeps a hot serial's set small
RETRY_AFTER_S = 2.0  # how long Redis is left alone after a failure before it is tried again

# KEYS: state hash, sessions set (one slot: tagged by code), then, unless admission is skipped,
# this minute's request counter of the client and its guess counter (one server only: these
# are in the client's slot). ARGV: now_ms, session, region, lat, lon, active, ttl, max
# sessions, limit per minute, guess limit, seed flag, then (seeding) first_at, first_region,
# last_at, lat, lon, sessions... Admission comes first (skipped when the limit is -1: admitted
# already), so on one server the scan path needs one round trip:
# {"limited", requests, guesses} when the client is over a limit (nothing recorded);
# {"miss"} when the serial is unknown and no seed was given;
# else {"ok", first_at, first_region, last_at, lat, lon, sessions}: the state before this
# scan, and the distinct sessions with this one.
_RECORD = """
local h, s = KEYS[1], KEYS[2]
if ARGV[11] ~= '1' and tonumber(ARGV[9]) >= 0 then
  local n = redis.call('INCR', KEYS[3])
  if n == 1 then redis.call('EXPIRE', KEYS[3], 120) end
  local g = tonumber(redis.call('GET', KEYS[4]) or '0')
  if n > tonumber(ARGV[9]) or g > tonumber(ARGV[10]) then return {'limited', n, g} end
end
if redis.call('EXISTS', h) == 0 then
  if ARGV[11] ~= '1' then return {'miss'} end
  redis.call('HSET', h, 'seeded', '1', 'fa', ARGV[12], 'fr', ARGV[13], 'la', ARGV[14],
             'lat', ARGV[15], 'lon', ARGV[16])
  for i = 17, #ARGV do redis.call('SADD', s, ARGV[i]) end
end
local prev = redis.call('HMGET', h, 'fa', 'fr', 'la', 'lat', 'lon')
if redis.call('SCARD', s) < tonumber(ARGV[8]) then redis.call('SADD', s, ARGV[2]) end
local sessions = redis.call('SCARD', s)
if ARGV[6] == '1' and (not prev[1] or prev[1] == '') then
  redis.call('HSET', h, 'fa', ARGV[1], 'fr', ARGV[3])
end
if ARGV[4] ~= '' then redis.call('HSET', h, 'la', ARGV[1], 'lat', ARGV[4], 'lon', ARGV[5]) end
redis.call('EXPIRE', h, ARGV[7])
redis.call('EXPIRE', s, ARGV[7])
return {'ok', prev[1] or '', prev[2] or '', prev[3] or '', prev[4] or '', prev[5] or '', sessions}
"""

# KEYS: this minute's request counter, the client's guess counter. ARGV: limit per minute,
# guess limit. Returns {requests this minute, guesses in the window}.
_ADMIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
local g = tonumber(redis.call('GET', KEYS[2]) or '0')
return {n, g}
"""

# KEYS: the client's guess counter. ARGV: window seconds. Returns the count with this one.
_GUESS = """
local g = redis.call('INCR', KEYS[1])
if g == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return g
"""

Call = tuple[list[str], list[str | int]]  # a script's keys and arguments


class RedisGate:
    """Whether to use Redis now. A failure keeps it away for ``RETRY_AFTER_S``; the first
    success after that moves every process to a new epoch (see the module docstring)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._epoch: str | None = None
        self._epoch_read = 0.0

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    def usable(self) -> bool:
        return self._down_since is None or time.monotonic() >= self._retry_at

    def failed(self, exc: Exception) -> None:
        with self._lock:
            if self._down_since is None:
                log.warning("verifier.redis_down", error=type(exc).__name__)
                self._down_since = time.monotonic()
            self._retry_at = time.monotonic() + RETRY_AFTER_S

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            self._down_since = None
            try:
                self._epoch = str(self.client.incr("verify:epoch"))
                self._epoch_read = time.monotonic()
            except REDIS_AWAY as exc:
                self.failed(exc)
                return
            log.info("verifier.redis_back", epoch=self._epoch)

    def epoch(self) -> str:
        """The shared key epoch, re-read every second (another process may have moved it)."""
        if self._epoch is None or time.monotonic() - self._epoch_read > 1.0:
            value = self.client.get("verify:epoch")
            self._epoch = value.decode() if isinstance(value, bytes) else str(value or "0")
            self._epoch_read = time.monotonic()
        return self._epoch


class ScanState:
    """:class:`~verifier.ports.ScanStateStore` in Redis, through ``gate``."""

    def __init__(self, gate: RedisGate) -> None:
        self._gate = gate
        self._record = gate.client.register_script(_RECORD)
        # One server: admission rides in the record script; a cluster: a script of its own.
        self._fused = not is_cluster(gate.client)
        # The scans recorded together by this process's threads share a pipeline.
        self._records: Coalescer[Call, Any] = Coalescer(self.record_batch)
        self._admit = gate.client.register_script(_ADMIT)
        self._guess = gate.client.register_script(_GUESS)
        # Stand-ins while Redis is away: per-process, so limits are per process then.
        self._lock = threading.Lock()
        self._minute: dict[str, int] = {}
        self._minute_of = 0
        self._guesses: dict[str, deque[float]] = {}

    @property
    def degraded(self) -> bool:
        return self._gate.degraded

    def close(self) -> None:
        """Nothing of its own to release: the client (and its connections) is the caller's."""

    def record(
        self,
        code_key: str,
        context: ClientContext,
        session: str,
        active: bool,
        now: datetime,
        rebuild: Rebuild,
        limits: Limits,
    ) -> tuple[History, bool, str]:
        """Admit the client and add this scan to the serial's state, in one round trip.
        Returns the state before the scan (sessions counted with it), whether Redis answered,
        and why the client is refused ("" when admitted; then nothing was recorded). Falls
        back to ``rebuild`` (the scan log) and per-process limits without Redis."""
        if self._gate.usable():
            try:
                if not self._fused and limits.per_minute >= 0:
                    why = self._admit_in_redis(limits)
                    if why:
                        self._gate.succeeded()
                        return History(), True, why
                call = self.record_call(code_key, context, session, active, now, limits)
                answer = self._record_in_redis(code_key, call, rebuild, limits)
            except REDIS_AWAY as exc:
                self._gate.failed(exc)
            else:
                self._gate.succeeded()
                return answer[0], True, answer[1]
        if limits.per_minute >= 0:
            allowed, why = self._admit_here(limits)
            if not allowed:
                return History(), False, why
        history, sessions = rebuild(code_key)
        sessions.add(session)
        return replace(history, sessions=len(sessions)), False, ""

    def _record_in_redis(
        self, code_key: str, call: Call, rebuild: Rebuild, limits: Limits
    ) -> tuple[History, str]:
        keys, args = call
        reply = self._records.submit(call)
        if isinstance(reply, Exception):
            raise reply  # this scan's own error (the connection's would fail the batch)
        if reply[0] == b"limited":
            return History(), _why(int(reply[1]), int(reply[2]), limits)
        if reply[0] == b"miss":
            history, sessions = rebuild(code_key)
            args[10] = "1"  # seed (admission was counted on the first call)
            args += [
                _ms(history.first_at),
                history.first_region,
                _ms(history.last_at),
                "" if history.last_latitude is None else repr(history.last_latitude),
                "" if history.last_longitude is None else repr(history.last_longitude),
                *sorted(sessions)[:MAX_SESSIONS_KEPT],
            ]
            reply = self._record(keys=keys, args=args)
        _, first_at, first_region, last_at, lat, lon, sessions_now = reply
        return History(
            first_at=_time(first_at),
            first_region=first_region.decode(),
            last_at=_time(last_at),
            last_latitude=float(lat) if lat else None,
            last_longitude=float(lon) if lon else None,
            sessions=int(sessions_now),
        ), ""

    def record_call(
        self,
        code_key: str,
        context: ClientContext,
        session: str,
        active: bool,
        now: datetime,
        limits: Limits,
    ) -> Call:
        """The record script's keys and arguments for one scan (not seeding). On a cluster,
        without admission (:meth:`record` admits first)."""
        epoch = self._gate.epoch()
        keys = [f"vs:{{{code_key}}}:{epoch}", f"vss:{{{code_key}}}:{epoch}"]
        per_minute = limits.per_minute
        if self._fused:
            keys += _client_keys(limits.client)
        else:
            per_minute = -1
        args: list[str | int] = [
            int(now.timestamp() * 1000),
            session,
            context.region,
            "" if context.latitude is None else repr(context.latitude),
            "" if context.longitude is None else repr(context.longitude),
            "1" if active else "0",
            STATE_TTL_S,
            MAX_SESSIONS_KEPT,
            per_minute,
            limits.guesses,
            "0",
        ]
        return keys, args

    def record_batch(self, calls: list[Call]) -> list[Any]:
        """Run the record script once per call, all in one pipeline (each run is atomic on
        its own, as when sent alone): the replies, in order, a call's error as its reply. A
        Redis that lost its scripts gets them again."""
        replies = self._pipeline(calls)
        lost = [i for i, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError)]
        if lost:
            self._record.sha = self._gate.client.script_load(_RECORD)
            for i, reply in zip(lost, self._pipeline([calls[i] for i in lost]), strict=True):
                replies[i] = reply
        return replies

    def _pipeline(self, calls: list[Call]) -> list[Any]:
        """Send every call, then read every reply, in one non-transactional pipeline (on a
        cluster, one per node holding the calls' slots; redirections followed by the client).
        A call's own error is its reply; a connection's error raises.

        A cluster pipeline that fails (a node gone) does not refresh the client's map of
        slots, so it would keep failing after a replica took over; the calls are then sent
        one by one, which asks the cluster for the slots again (or fails the batch)."""
        sha = self._record.sha
        commands = [("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls]
        try:
            with self._gate.client.pipeline(transaction=False) as pipe:
                for command in commands:
                    # execute_command: the cluster pipeline blocks its evalsha() method, yet
                    # routes EVALSHA by its keys like any command.
                    pipe.execute_command(*command)
                replies: list[Any] = pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, REDIS_AWAY) and not isinstance(reply, redis.ResponseError):
                    raise reply
                if isinstance(reply, redis.exceptions.ClusterError):
                    raise reply  # CLUSTERDOWN, TRYAGAIN: the cluster, not this call
        except REDIS_AWAY:
            if self._fused:
                raise
            return [self._one(keys, args) for keys, args in calls]
        return replies

    def _one(self, keys: list[str], args: list[str | int]) -> Any:
        try:
            return self._gate.client.evalsha(self._record.sha, len(keys), *keys, *args)
        except redis.exceptions.ClusterError:
            raise
        except redis.ResponseError as exc:  # this call's error (NoScriptError: loaded again)
            return exc

    def admit(self, limits: Limits) -> str:
        """Count one request of the client; why it is refused, or "" when admitted."""
        if self._gate.usable():
            try:
                why = self._admit_in_redis(limits)
            except REDIS_AWAY as exc:
                self._gate.failed(exc)
            else:
                self._gate.succeeded()
                return why
        return self._admit_here(limits)[1]

    def _admit_in_redis(self, limits: Limits) -> str:
        count, guesses = self._admit(
            keys=_client_keys(limits.client), args=[limits.per_minute, limits.guesses]
        )
        return _why(int(count), int(guesses), limits)

    def _admit_here(self, limits: Limits) -> tuple[bool, str]:
        """Per-process counting, while Redis is away."""
        minute = int(time.time() // 60)
        with self._lock:
            if minute != self._minute_of:
                self._minute, self._minute_of = {}, minute
            count = self._minute[limits.client] = self._minute.get(limits.client, 0) + 1
            guesses = len(self._guesses.get(limits.client, ()))
        why = _why(count, guesses, limits)
        return not why, why

    def guessed(self, client: str, window_s: int) -> int:
        """Count one guessing signal (a serial not found, a bad signature, a wrong PIN) for the
        client; return how many it has in the window."""
        if self._gate.usable():
            try:
                count = self._guess(keys=[_client_keys(client)[1]], args=[window_s])
            except REDIS_AWAY as exc:
                self._gate.failed(exc)
            else:
                self._gate.succeeded()
                return int(count)
        now = time.monotonic()
        with self._lock:
            seen = self._guesses.setdefault(client, deque())
            seen.append(now)
            while seen and seen[0] < now - window_s:
                seen.popleft()
            if len(self._guesses) > 100_000:  # bounded: forget the quietest clients
                for key in [k for k, v in self._guesses.items() if len(v) < 2][:50_000]:
                    del self._guesses[key]
            return len(seen)

    def first_time(self, key: str, ttl_s: int) -> bool:
        """True the first time ``key`` is seen within ``ttl_s`` (alert de-duplication)."""
        if self._gate.usable():
            try:
                fresh = self._gate.client.set(f"once:{key}", "1", nx=True, ex=ttl_s)
            except REDIS_AWAY as exc:
                self._gate.failed(exc)
            else:
                self._gate.succeeded()
                return bool(fresh)
        return True  # without Redis an alert may repeat; better than one missed

    def publish_alert(self, tenant_id: str, alert_id: int, kind: str) -> None:
        """Notify watchers (Audit's WatchAlerts) through the tenant's stream; the alert itself
        is already in PostgreSQL."""
        if not self._gate.usable():
            return
        try:
            self._gate.client.xadd(
                f"alerts:{tenant_id}",
                {"id": alert_id, "kind": kind},
                maxlen=100_000,
                approximate=True,
            )
        except REDIS_AWAY as exc:
            self._gate.failed(exc)


def _client_keys(client: str) -> list[str]:
    """The client's request counter of this minute and its guess counter: one slot."""
    return [f"rl:{{{client}}}:{int(time.time() // 60)}", f"gs:{{{client}}}"]


def _why(count: int, guesses: int, limits: Limits) -> str:
    if count > limits.per_minute:
        return f"more than {limits.per_minute} verifications a minute from this client"
    if guesses > limits.guesses:
        return "too many unknown serials or wrong PINs from this client"
    return ""


def _ms(value: datetime | None) -> str:
    return "" if value is None else str(int(value.timestamp() * 1000))


def _time(raw: bytes) -> datetime | None:
    return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw else None
