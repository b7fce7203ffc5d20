"""A Sealmark server in its own process on a free port, as users run it: how the end-to-end
tests that kill, restart or reconfigure a server reach it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.procs import processes_in

ROOT = Path(__file__).resolve().parents[2]


class ServeProcess:
    """``sealmark serve SERVICES…`` with ``env``; ``target`` is its gRPC host:port once up."""

    def __init__(self, env: dict[str, str], services: tuple[str, ...] = ("issuer",)) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sealmark_app.cli.main", "serve", *services],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            found = re.search(r"Sealmark is up: gRPC ([\d.]+:\d+)", line)
            if found:
                self.target = found.group(1)
                return
        raise AssertionError(f"serve {' '.join(services)} did not start:\n" + "".join(lines))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def issuer_env(pg_dsn: str, redis_url: str, name: str, **extra: str) -> dict[str, str]:
    """The environment of a ``sealmark serve`` child on this test's PostgreSQL and Redis: no
    inherited SEALMARK_ variable, every port 0, secrets named after the test, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    env.update(
        SEALMARK_DATABASE_URL=pg_dsn,
        SEALMARK_REDIS_URL=redis_url,
        SEALMARK_GRPC_PORT="0",
        SEALMARK_METRICS_PORT="0",
        SEALMARK_LOG_LEVEL="WARNING",
        SEALMARK_SECRET_PEPPER=f"{name}-test-pepper-0123",
        SEALMARK_KEY_PASSPHRASE=f"{name}-test-passphrase",
    )
    env.update(extra)
    return env


IssuerProcess = ServeProcess  # ``sealmark serve issuer``, the usual case


class DemoServe:
    """``sealmark serve --seed-demo`` on the embedded default in ``data_dir``, every port 0,
    as ``make run`` starts it; in a session of its own, so that :meth:`interrupt` signals its
    whole process group as Ctrl-C on a terminal does. ``output`` is what it printed up to
    "Stop with Ctrl-C"; :meth:`wait` collects the rest."""

    def __init__(self, data_dir: Path, *, grace_s: float = 10, timeout_s: float = 120) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
        env.update(
            SEALMARK_DATA_DIR=str(data_dir),
            SEALMARK_GRPC_PORT="0",
            SEALMARK_METRICS_PORT="0",
            SEALMARK_VERIFY_HTTP_PORT="0",
            SEALMARK_DASHBOARD_HTTP_PORT="0",
            SEALMARK_SHUTDOWN_GRACE_S=str(grace_s),
        )
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sealmark_app.cli.main", "serve", "--seed-demo"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Stop with Ctrl-C"):
                break
        self.output = "".join(lines)
        up = re.search(r"Sealmark is up: gRPC ([\d.]+):(\d+)", self.output)
        page = re.search(r"consumer page: http://[^:/\s]+:(\d+)/", self.output)
        tokens = dict(
            re.findall(r"^  (admin|line|logistics|auditor)\s+(smk_\S+)$", self.output, re.M)
        )
        if not (up and page and lines[-1].startswith("Stop with Ctrl-C")):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("serve did not come up:\n" + self.output)
        self.port, self.page_port, self.tokens = int(up.group(2)), int(page.group(1)), tokens
        dashboard = re.search(r"brand dashboard: (http://[^/\s]+)/", self.output)
        self.dashboard_url = dashboard.group(1) if dashboard else ""
        self.target = f"127.0.0.1:{self.port}"

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout_s: float) -> str:
        """Everything printed after "Stop with Ctrl-C" until the process ended. Raises
        subprocess.TimeoutExpired when it has not ended within ``timeout_s``."""
        rest, _ = self.proc.communicate(timeout=timeout_s)
        return rest

    def close(self) -> None:
        """SIGKILL the process group if it is still there (a failed test), then stop what the
        embedded servers left behind: a hung server must not leave them running."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate(timeout=30)
        for pid in processes_in(self.data_dir):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def embedded_data_dir() -> Iterator[Path]:
    """A fresh data dir for the embedded servers, outside pytest's temporary tree: the
    embedded PostgreSQL runs as another user, and pytest (any concurrent session of this
    user) resets that tree's root to mode 0700, which locks the server out of its own
    data dir mid-test ("pg_ctl: could not access directory")."""
    path = Path(tempfile.mkdtemp(prefix="sealmark-e2e-"))
    try:
        yield path / "data"
    finally:
        shutil.rmtree(path, ignore_errors=True)
