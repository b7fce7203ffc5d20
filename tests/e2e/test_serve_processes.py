"""`sealmark serve` with SEALMARK_PROCESSES=2: a copy of the server shares the gRPC and the
consumer page's ports, takes its share of the connections, is started again when it dies, and
never outlives the first process (stopped, or killed)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from tests.support.procs import processes_in

pytestmark = pytest.mark.e2e

CONNECTIONS = 16  # all on one of two processes: 2 * 2**-16, never seen


@dataclass
class Served:
    proc: subprocess.Popen[str]
    data_dir: Path
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = 60, after: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(pattern, "".join(self.lines[after:]))
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in:\n{self.output()}")

    def copies(self) -> list[int]:
        """Live processes whose parent is the first one and that run ``serve --worker``."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[1]) == self.proc.pid and b"--worker" in cmdline:
                found.append(int(entry))
        return found


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    env.update(
        SEALMARK_DATA_DIR=str(tmp_path / "data"),
        SEALMARK_GRPC_PORT="0",
        SEALMARK_METRICS_PORT="0",
        SEALMARK_VERIFY_HTTP_PORT="0",
        SEALMARK_DASHBOARD_HTTP_PORT="0",
        SEALMARK_SHUTDOWN_GRACE_S="2",
        SEALMARK_PROCESSES="2",
        SEALMARK_MINT_PROCESSES="0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealmark_app.cli.main", "serve", "--seed-demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(proc, tmp_path / "data")

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            served.lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        served.wait_for(r"Stop with Ctrl-C", timeout_s=120)
        served.wait_for(r"serve\.copy_up")
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in [*served.copies(), *processes_in(served.data_dir)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _listeners(port: int) -> set[int]:
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def _metric(url: str, method: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local test server
        text = response.read().decode()
    found = re.search(
        r'sealmark_rpc_total\{code="OK",method="' + re.escape(method) + r'"\} ([\d.]+)', text
    )
    return float(found.group(1)) if found else 0.0


def test_two_processes_share_the_ports_and_the_calls(served: Served) -> None:
    output = served.output()
    port = int(served.wait_for(r"Sealmark is up: gRPC [\d.]+:(\d+)").group(1))
    page_port = int(served.wait_for(r"consumer page: http://[\w.]+:(\d+)/").group(1))
    [copy] = served.copies()
    assert _listeners(port) == {served.proc.pid, copy}
    assert _listeners(page_port) == {served.proc.pid, copy}

    first_metrics = re.search(r"metrics (http://\S+/metrics)", output)
    copy_port = served.wait_for(r"serve\.copy_up\s+grpc_port=(\d+) metrics=(\d+)")
    assert first_metrics and int(copy_port.group(1)) == port
    copy_metrics = f"http://127.0.0.1:{copy_port.group(2)}/metrics"

    admin = re.search(r"admin\s+(smk_[a-z2-7]{12}_\S+)", output)
    assert admin
    method = "/sealmark.v1.Issuer/ListProducts"
    for _ in range(CONNECTIONS):  # separate clients: a connection each
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            listed = issuer_pb2_grpc.IssuerStub(channel).ListProducts(
                issuer_pb2.ListProductsRequest(),
                metadata=[("authorization", f"Bearer {admin.group(1)}")],
                timeout=10,
            )
            assert [p.gtin for p in listed.products] == ["09520123456788"]
    by_first = _metric(first_metrics.group(1), method)
    by_copy = _metric(copy_metrics, method)
    assert by_first + by_copy == CONNECTIONS
    assert by_first > 0 and by_copy > 0, (by_first, by_copy)

    # A copy that dies is started again, on the same ports.
    os.kill(copy, signal.SIGKILL)
    seen = len(served.lines)
    served.wait_for(r"serve\.copy_exited", after=seen)
    served.wait_for(r"serve\.copy_up", after=seen)
    [again] = served.copies()
    assert again != copy
    assert _listeners(port) == {served.proc.pid, again}

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=60) == 0, served.output()
    deadline = time.monotonic() + 10
    while (served.copies() or processes_in(served.data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served.copies() == []
    assert processes_in(served.data_dir) == []
    assert not Path(f"/proc/{again}").exists()


def test_a_copy_ends_when_the_first_process_is_killed(served: Served) -> None:
    [copy] = served.copies()
    served.proc.kill()  # SIGKILL: nothing of it runs to tell the copy
    served.proc.wait()
    deadline = time.monotonic() + 15
    while Path(f"/proc/{copy}").exists() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap it if it became ours
            os.waitpid(copy, os.WNOHANG)
        time.sleep(0.1)
    status = Path(f"/proc/{copy}/stat")
    assert not status.exists() or status.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert "serve.parent_gone" in served.output()


def _threads(pid: int) -> list[int]:
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]


def test_each_process_runs_on_a_cpu_of_its_own(served: Served) -> None:
    usable = sorted(os.sched_getaffinity(0))
    served.wait_for(r"serve\.pinned(?s:.*)serve\.pinned")  # both processes said so
    first, [copy] = served.proc.pid, served.copies()
    by_thread = {tid: os.sched_getaffinity(tid) for tid in _threads(first)}
    free = [tid for tid, cpus in by_thread.items() if cpus != {usable[0]}]
    # All of the first process's threads but the one that restarts copies.
    assert len(free) == 1 and by_thread[free[0]] == set(usable), by_thread
    assert all(os.sched_getaffinity(tid) == {usable[1 % len(usable)]} for tid in _threads(copy))
    # The embedded PostgreSQL and Redis the first process started keep every CPU.
    embedded = processes_in(served.data_dir)
    assert embedded and all(os.sched_getaffinity(pid) == set(usable) for pid in embedded)

    # A copy started again (from that free thread) is given the same CPU.
    os.kill(copy, signal.SIGKILL)
    seen = len(served.lines)
    served.wait_for(r"serve\.copy_up", after=seen)
    served.wait_for(r"serve\.pinned", after=seen)
    [again] = served.copies()
    assert all(os.sched_getaffinity(tid) == {usable[1 % len(usable)]} for tid in _threads(again))
