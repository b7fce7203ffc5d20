"""The extra serving processes of ``sealmark serve`` when ``SEALMARK_PROCESSES`` > 1.

One Python process runs Python on one core at a time. To use more, the first process binds the
gRPC port and the consumer page's port with SO_REUSEPORT, then starts ``processes - 1`` copies
of itself (``sealmark serve --worker-of PID``) that bind the same ports: the kernel spreads incoming
connections over all of them. A gRPC client keeps one connection, so one client's calls stay
in one process; many clients (phones, lines, gateways) spread.

Each copy has its own connection pools, caches and scan log, as separate machines would; every
state they share lives in PostgreSQL and Redis, which is where the services already keep it.
A copy reads the first process's database and Redis URLs (embedded or not) from its
environment, applies no migrations and seeds nothing.

Lifetimes: the first process stops its copies when it stops (SIGTERM, then SIGKILL after the
grace period); a copy stops by itself once it is orphaned (:func:`on_parent_exit`), which is how
it sees its first process die, even by SIGKILL; a copy that dies is started again after
``RESTART_AFTER_S``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import structlog

log = structlog.get_logger("sealmark.serve")

RESTART_AFTER_S = 1.0
POLL_S = 0.5


class ServingProcesses:
    """``count`` copies of ``<serve_command> --worker-of <this pid> SERVICES`` with ``environ``,
    each with the extra variables ``per_copy[n]`` gives it (n = 1..count). ``serve_command`` is
    the application's serve command (the core does not know the application)."""

    def __init__(
        self,
        count: int,
        services: Sequence[str],
        environ: Mapping[str, str],
        serve_command: Sequence[str],
        per_copy: Mapping[int, Mapping[str, str]] | None = None,
    ) -> None:
        self._argv = [*serve_command, "--worker-of", str(os.getpid()), *services]
        self._environ = dict(environ)
        self._per_copy = per_copy or {}
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        for n in range(1, count + 1):
            self._procs[n] = self._spawn(n)
        self._watcher = threading.Thread(target=self._watch, name="serving-processes", daemon=True)
        self._watcher.start()

    @property
    def thread_ids(self) -> tuple[int, ...]:
        """Native ids of the threads that start copies (a pinned server leaves them free)."""
        return (self._watcher.native_id,) if self._watcher.native_id is not None else ()

    def terminate(self) -> None:
        """Stop restarting copies and SIGTERM those alive: each drains its streams meanwhile."""
        self._stopping.set()
        self._watcher.join(POLL_S * 4)
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def stop(self, grace_s: float) -> None:
        """:meth:`terminate`, then wait for the copies; SIGKILL what is left after ``grace_s``
        and ten seconds more."""
        self.terminate()
        deadline = time.monotonic() + grace_s + 10
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("serve.copy_killed", pid=proc.pid, after_s=grace_s + 10)
                proc.kill()
                proc.wait()

    def _spawn(self, n: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self._argv, env={**self._environ, **self._per_copy.get(n, {})}, stdin=subprocess.DEVNULL
        )
        log.info("serve.copy_started", copy=n, pid=proc.pid)
        return proc

    def _watch(self) -> None:
        while not self._stopping.wait(POLL_S):
            with self._lock:
                gone = [(n, p) for n, p in self._procs.items() if p.poll() is not None]
            for n, proc in gone:
                log.error("serve.copy_exited", copy=n, pid=proc.pid, code=proc.returncode)
                if self._stopping.wait(RESTART_AFTER_S):
                    return
                with self._lock:
                    self._procs[n] = self._spawn(n)


def on_parent_exit(parent: int, act: Callable[[], None], poll_s: float = POLL_S) -> None:
    """Call ``act()`` on a thread of its own once this process is no longer ``parent``'s child.
    A parent killed with SIGKILL cannot stop its children, and a child blocked elsewhere never
    notices: poll, and leave when orphaned rather than hold ports, keys and memory forever.
    ``parent`` is given, not read here: a parent that died before this call would otherwise be
    taken for the orphan's new parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        act()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
