"""A closed-loop gRPC load driver shared by every RPS/latency benchmark, so that a service's
numbers and the echo baseline's are produced by the same client code."""

from __future__ import annotations

import bisect
import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc


@contextmanager
def gc_paused() -> Iterator[None]:
    """The load generator's garbage collector off while it times, as ``timeit`` does: its
    pauses are not the server's latency."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def client_channels(
    target: str, count: int, credentials: grpc.ChannelCredentials | None = None
) -> list[grpc.Channel]:
    """``count`` channels to ``target``, each on a connection of its own (gRPC Python shares
    one connection between equal channels unless told not to): the load of ``count`` separate
    clients, which a server of several processes can spread (one connection, one process).
    Load thread ``n`` of :func:`closed_loop` uses channel ``i % count`` for its call ``i``.
    With ``credentials`` they speak TLS (:func:`tls_credentials`)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    if credentials is None:
        return [grpc.insecure_channel(target, options=options) for _ in range(count)]
    return [grpc.secure_channel(target, credentials, options=options) for _ in range(count)]


def tls_credentials(
    ca: Path, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """TLS for :func:`client_channels`: trust ``ca``; with ``cert`` and ``key``, mutual TLS."""
    return grpc.ssl_channel_credentials(
        ca.read_bytes(),
        key.read_bytes() if key else None,
        cert.read_bytes() if cert else None,
    )


@dataclass(frozen=True)
class LoadResult:
    calls: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def histogram(self) -> list[tuple[float, int]]:
        return histogram_ms(self.latencies_ms)


def merged(results: list[LoadResult]) -> LoadResult:
    """Several runs of one load as one: calls, errors, seconds and latencies added up."""
    return LoadResult(
        sum(r.calls for r in results),
        sum(r.errors for r in results),
        sum(r.seconds for r in results),
        [latency for r in results for latency in r.latencies_ms],
    )


# Bucket bounds in ms, a factor of √2 apart from 0.125 ms to about 23 s: fine enough to see a
# tail, few enough to print on one JSON line.
BOUNDS_MS = tuple(round(0.125 * 2 ** (i / 2), 4) for i in range(36))


def histogram_ms(latencies_ms: list[float]) -> list[tuple[float, int]]:
    """(upper bound, count) of the buckets from the first to the last one used; a latency
    above the last bound counts in the last bucket."""
    counts = [0] * len(BOUNDS_MS)
    for latency in latencies_ms:
        counts[min(bisect.bisect_left(BOUNDS_MS, latency), len(BOUNDS_MS) - 1)] += 1
    used = [i for i, n in enumerate(counts) if n]
    if not used:
        return []
    return [(BOUNDS_MS[i], counts[i]) for i in range(used[0], used[-1] + 1)]


def closed_loop(
    call: Callable[[int], object],
    *,
    seconds: float,
    concurrency: int,
    rate_per_s: float | None = None,
) -> LoadResult:
    """Run ``call(i)`` from ``concurrency`` threads for ``seconds``; with ``rate_per_s`` each
    thread paces itself so the total offered rate is about that (for latency at a set load).
    Thread ``n`` makes the calls ``i`` with ``i % concurrency == n``. Timed with
    :func:`gc_paused` (the collection it starts with is not part of ``seconds``)."""
    deadline = 0.0  # set once the collector is paused
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"calls": 0, "errors": 0}
    interval = concurrency / rate_per_s if rate_per_s else 0.0

    def worker(offset: int) -> None:
        mine: list[float] = []
        errors = 0
        i = offset
        next_at = time.perf_counter()
        while True:
            now = time.perf_counter()
            if now >= deadline:
                break
            if interval:
                if now < next_at:
                    time.sleep(next_at - now)
                next_at += interval
            t0 = time.perf_counter()
            try:
                call(i)
            except Exception:
                errors += 1
            mine.append((time.perf_counter() - t0) * 1000)
            i += concurrency
        with lock:
            latencies.extend(mine)
            counts["calls"] += len(mine) - errors
            counts["errors"] += errors

    with gc_paused():
        started = time.perf_counter()
        deadline = started + seconds
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return LoadResult(counts["calls"], counts["errors"], time.perf_counter() - started, latencies)
