"""The two baselines every later bar is a ratio of."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealmark.server.affinity import usable_cpus
from sealmark_app.bench.certs import write_bench_pki
from sealmark_app.bench.echo_server import METHOD
from sealmark_app.bench.load import LoadResult, client_channels, closed_loop, tls_credentials
from sealmark_app.bench.registry import Measurement, benchmark, self_peak_rss_mb

# A message the size of the issuer's canonical code bytes (GTIN, serial, lot, expiry, key id).
_SAMPLE_MESSAGE = (
    b"sealmark-code-v1\x0009520123456788\x00A1B2C3D4E5F6G7H8\x00LOT-2026-11\x00261130\x00k1"
)


@benchmark("ed25519_sign_per_s", description="raw Ed25519 signs per second, one core")
def ed25519_sign_per_s(seconds: float = 2.0) -> Measurement:
    key = Ed25519PrivateKey.generate()
    sign = key.sign
    for _ in range(200):  # warm up
        sign(_SAMPLE_MESSAGE)
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(500):
            sign(_SAMPLE_MESSAGE)
        count += 500
    elapsed = time.perf_counter() - started
    return Measurement(count / elapsed, "signs/s", self_peak_rss_mb())


@benchmark(
    "grpc_echo_rps",
    description="bare unary echo server (one process), same gRPC flavour, this box;"
    " 8 clients, a connection each",
)
def grpc_echo_rps() -> Measurement:
    return _echo_rps(cpu=None)


@benchmark(
    "grpc_echo_pinned_rps",
    description="grpc_echo_rps with the echo server held to one CPU, as each verify_rps serving"
    " process is (SEALMARK_CPU_AFFINITY=auto); shown for comparison, no bar",
)
def grpc_echo_pinned_rps() -> Measurement:
    return _echo_rps(cpu=usable_cpus()[0])


@benchmark(
    "grpc_echo_tls_rps",
    baseline="grpc_echo_rps",
    description="grpc_echo_rps over TLS (ECDSA P-256 server certificate, the services' reloading"
    " credentials); ratio to the plaintext echo of the same run",
)
def grpc_echo_tls_rps() -> Measurement:
    return _echo_over_tls(mutual=False)


@benchmark(
    "grpc_echo_mtls_rps",
    baseline="grpc_echo_rps",
    description="grpc_echo_tls_rps with client certificates (mutual TLS); ratio to the plaintext"
    " echo of the same run",
)
def grpc_echo_mtls_rps() -> Measurement:
    return _echo_over_tls(mutual=True)


def _echo_over_tls(*, mutual: bool, rounds: int = 4) -> Measurement:
    """The TLS echo for 5 s (the line's value, against the registry's plaintext baseline), then
    ``rounds`` pairs of 1-s rounds alternating a plaintext and the TLS echo, both servers up
    (one idles while the other is driven): ``paired_ratio`` in the detail compares them under
    the same passing load of a shared box, which a baseline measured minutes before cannot."""
    with tempfile.TemporaryDirectory(prefix="sealmark-bench-tls-") as tmp:
        pki = write_bench_pki(Path(tmp))
        server = ["--cert", str(pki.server_cert), "--key", str(pki.server_key)]
        if mutual:
            server += ["--client-ca", str(pki.ca)]
            credentials = tls_credentials(pki.ca, pki.client_cert, pki.client_key)
        else:
            credentials = tls_credentials(pki.ca)
        with _echo_load(None, server, credentials) as tls, _echo_load(None) as plain:
            measured = tls(5.0)
            paired: dict[str, list[LoadResult]] = {"tls": [], "plain": []}
            for n in range(rounds):
                order = (
                    (("tls", tls), ("plain", plain)) if n % 2 else (("plain", plain), ("tls", tls))
                )
                for name, load in order:
                    paired[name].append(load(1.0))
    detail = _latency_detail(measured)
    detail["paired_ratio"] = round(_rps(paired["tls"]) / _rps(paired["plain"]), 4)
    detail["paired_rounds"] = rounds
    return Measurement(measured.rps, "rps", self_peak_rss_mb(), detail)


def _rps(results: list[LoadResult]) -> float:
    return sum(r.calls for r in results) / sum(r.seconds for r in results)


def _echo_rps(cpu: int | None, seconds: float = 5.0) -> Measurement:
    with _echo_load(cpu) as load:
        result = load(seconds)
    return Measurement(result.rps, "rps", self_peak_rss_mb(), _latency_detail(result))


def _latency_detail(result: LoadResult) -> dict[str, float | int | str]:
    return {
        "p50_ms": round(result.percentile(0.5), 3),
        "p99_ms": round(result.percentile(0.99), 3),
        "errors": result.errors,
    }


@contextmanager
def _echo_load(
    cpu: int | None,
    server_args: list[str] | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    concurrency: int = 8,
) -> Iterator[Callable[[float], LoadResult]]:
    """An echo server subprocess and ``concurrency`` clients on it, warmed up; yields a function
    that drives it closed-loop for some seconds."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sealmark_app.bench.echo_server",
            *([] if cpu is None else [str(cpu)]),
            *(server_args or []),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(next(line for line in proc.stdout if line.strip().isdigit()))  # past logs
        channels = client_channels(f"127.0.0.1:{port}", concurrency, credentials)
        try:
            echoes = [channel.unary_unary(METHOD) for channel in channels]
            for channel in channels:
                grpc.channel_ready_future(channel).result(timeout=10)
            payload = b"x" * 120

            def echo(i: int) -> object:
                return echoes[i % concurrency](payload, timeout=5)

            def drive(seconds: float) -> LoadResult:
                return closed_loop(echo, seconds=seconds, concurrency=concurrency)

            drive(0.5)
            yield drive
        finally:
            for channel in channels:
                channel.close()
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)
