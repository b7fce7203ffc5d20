"""Issuance benchmarks: signed, durable codes streamed over gRPC from a real server process.

``issue_codes_per_s`` also reports where the CPU went, per code, in the same run: the serving
process, its minting workers, PostgreSQL (the postmaster and every backend) and this client
(from ``/proc``, Linux). On a machine of ``cpus`` cores the throughput cannot pass
``cpus / (sum of those)``: the detail shows how far the ratio bar is from what they allow.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import psycopg2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.bench.registry import Bar, Measurement, benchmark
from sealmark_app.bench.suite import server_rss_mb, suite_server

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


@contextmanager
def issuer_server() -> Iterator[tuple[str, str, str]]:
    """`sealmark serve issuer` on a fresh database. Yields (target, line token, gtin)."""
    with suite_server(["issuer"]) as suite:
        yield suite.target, suite.tokens["line"], suite.gtin


@contextmanager
def issuer_suite() -> Iterator[tuple[str, str, str, str]]:
    """:func:`issuer_server` and its database's DSN: (target, line token, gtin, dsn)."""
    with suite_server(["issuer"]) as suite:
        yield suite.target, suite.tokens["line"], suite.gtin, suite.dsn


def _stat(pid: int) -> list[str]:
    """``/proc/PID/stat`` fields after the command name (field 3 on); [] once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return []


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return kids
    for tid in tids:
        try:
            kids += [int(k) for k in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except FileNotFoundError:
            continue
    return kids


def _tree_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds of ``pid`` itself, and of its children (live ones plus those reaped)."""
    fields = _stat(pid)
    if not fields:
        return 0.0, 0.0
    own = (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime
    reaped = (int(fields[13]) + int(fields[14])) * _TICK_S  # cutime, cstime
    live = 0.0
    for kid in _children(pid):
        kid_fields = _stat(kid)
        if kid_fields:
            live += (int(kid_fields[11]) + int(kid_fields[12])) * _TICK_S
    return own, reaped + live


def _listener_pid(target: str) -> int:
    port = target.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    return int(out.stdout.split("pid=", 1)[1].split(",", 1)[0])


def _postmaster_pid(dsn: str) -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            row = cur.fetchone()
            assert row is not None
            backend = int(row[0])
    finally:
        conn.close()
    for line in Path(f"/proc/{backend}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise RuntimeError("no postmaster found")


class _CpuMeter:
    """CPU seconds spent by the server, its workers, PostgreSQL and this process since
    :meth:`start`, as µs per code."""

    def __init__(self, target: str, dsn: str) -> None:
        self._server = _listener_pid(target)
        self._postmaster = _postmaster_pid(dsn)
        self._start: tuple[float, ...] = ()

    def _now(self) -> tuple[float, ...]:
        server, workers = _tree_cpu_s(self._server)
        postmaster, backends = _tree_cpu_s(self._postmaster)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return server, workers, postmaster + backends, usage.ru_utime + usage.ru_stime

    def start(self) -> None:
        self._start = self._now()

    def per_code(self, codes: int) -> dict[str, float | int | str]:
        spent = [b - a for a, b in zip(self._start, self._now(), strict=True)]
        names = ("server", "workers", "postgres", "client")
        detail: dict[str, float | int | str] = {
            f"cpu_us_{name}": round(1e6 * s / codes, 1)
            for name, s in zip(names, spent, strict=True)
        }
        detail["cpu_us_total"] = round(1e6 * sum(spent) / codes, 1)
        cpus = len(os.sched_getaffinity(0))
        detail["cpus"] = cpus
        detail["workers"] = len(_minting_workers(self._server))
        # What the CPU spent allows on this many cores, were every core busy all the time, and
        # the ratio to one core's signing that allows. CPU time, unlike the wall-clock rates,
        # hardly moves when other work shares the machine.
        detail["cpu_bound_codes_per_s"] = round(cpus * codes / sum(spent))
        sign_us = _sign_cpu_us()
        detail["sign_cpu_us"] = round(sign_us, 1)
        detail["ratio_bound"] = round(cpus * sign_us / (1e6 * sum(spent) / codes), 3)
        return detail


def _sign_cpu_us(count: int = 4000) -> float:
    """CPU µs of one Ed25519 signature (the baseline's signer and message), on this thread."""
    key = Ed25519PrivateKey.generate()
    message = b"sealmark-code-v1\n09520123456788\nA1B2C3D4E5F6G7\nBENCH1\n301231\n01"
    started = time.thread_time()
    for _ in range(count):
        key.sign(message)
    return 1e6 * (time.thread_time() - started) / count


def _minting_workers(pid: int) -> list[int]:
    """The children of ``pid`` that are multiprocessing workers (not its resource tracker)."""
    kids = []
    for kid in _children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{kid}/cmdline").read_bytes():
                kids.append(kid)
        except FileNotFoundError:
            continue
    return kids


def _workers_rss_mb(target: str) -> float:
    total = 0
    for kid in _minting_workers(_listener_pid(target)):
        try:
            for line in Path(f"/proc/{kid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return round(total / 1024, 1)


def _stream(target: str, token: str, gtin: str, quantity: int) -> tuple[int, float]:
    with grpc.insecure_channel(
        target, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    ) as channel:
        stub = issuer_pb2_grpc.IssuerStub(channel)
        started = time.perf_counter()
        received = 0
        for response in stub.IssueCodes(
            issuer_pb2.IssueCodesRequest(
                request_id="bench-" + os.urandom(6).hex(),
                gtin=gtin,
                lot="BENCH1",
                expiry="301231",
                quantity=quantity,
                line_id="L1",
                work_order="WO1",
                batch_size=5000,
            ),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=600,
        ):
            received += len(response.codes)
        return received, time.perf_counter() - started


@benchmark(
    "issue_codes_per_s",
    baseline="ed25519_sign_per_s",
    description="signed + durable + streamed codes/s over gRPC (100k request)",
    bar=Bar(1.5, of="ratio"),
)
def issue_codes_per_s() -> Measurement:
    with issuer_suite() as (target, token, gtin, dsn):
        _stream(target, token, gtin, 5000)  # warm up: key unsealed, pool open
        meter = _CpuMeter(target, dsn)
        meter.start()
        count, seconds = _stream(target, token, gtin, 100_000)
        return Measurement(
            count / seconds,
            "codes/s",
            server_rss_mb(target),
            {"codes": count, "seconds": round(seconds, 3), **meter.per_code(count)},
        )


@benchmark(
    "issue_500k_rss_mb",
    description="peak RSS of the serving process over a 500k-code IssueCodes stream (its minting"
    " workers apart, in the detail)",
    bar=Bar(512, at_least=False),
)
def issue_500k_rss_mb() -> Measurement:
    with issuer_server() as (target, token, gtin):
        _stream(target, token, gtin, 5000)
        count, seconds = _stream(target, token, gtin, 500_000)
        assert count == 500_000
        peak = server_rss_mb(target)
        assert peak is not None, "no server process found"
        return Measurement(
            peak,
            "MB",
            peak,
            {
                "codes": count,
                "seconds": round(seconds, 3),
                "codes_per_s": round(count / seconds),
                "workers_peak_rss_mb": _workers_rss_mb(target),
            },
        )


@benchmark(
    "pool_100k_seconds",
    description="a 100k-code pool durable and streamed",
    bar=Bar(5, at_least=False),
)
def pool_100k_seconds() -> Measurement:
    with issuer_server() as (target, token, gtin):
        _stream(target, token, gtin, 1000)
        count, seconds = _stream(target, token, gtin, 100_000)
        assert count == 100_000
        return Measurement(seconds, "s", server_rss_mb(target))


__all__ = ["issue_500k_rss_mb", "issue_codes_per_s", "pool_100k_seconds"]
