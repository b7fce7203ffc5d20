"""Verification benchmarks on a real server (`sealmark serve issuer verifier` with one serving
process per core, SEALMARK_PROCESSES): throughput against a same-I/O baseline served by the
very same processes (:mod:`sealmark_app.bench.io_service`), p99 at half of that peak, how p99
grows from 100,000 to 10,000,000 stored codes, and the same throughput with the scan state on a
3-master Redis Cluster. The load is eight clients on a connection each, as for the echo.

The throughput codes are real: issued (signed) and commissioned through the Issuer, each scanned
from a session of its own (so they stay AUTHENTIC_SEEN_BEFORE, the common case of a hot code).
The filler codes that make up the stored count are inserted straight into PostgreSQL; the
growth ratio scans random filler codes of the whole stored set, signed by the bench with the
tenant's key (:mod:`sealmark_app.bench.codes`), each once: the Verifier's read of a row among
ten million, and a first scan (its state rebuilt from the scan log). The bench tenant's
per-client rate limit is lifted (one load generator is one client address).
"""

from __future__ import annotations

import atexit
import functools
import os
import random
import socket
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg2

from sealmark.v1 import issuer_pb2, issuer_pb2_grpc, verifier_pb2, verifier_pb2_grpc
from sealmark_app.bench import io_service
from sealmark_app.bench.codes import filler_serial, sample_numbers, signed_links, tenant_signer
from sealmark_app.bench.load import LoadResult, client_channels, closed_loop, merged
from sealmark_app.bench.redis_cluster import redis_cluster
from sealmark_app.bench.registry import Bar, Measurement, benchmark
from sealmark_app.bench.suite import (
    GTIN,
    TENANT,
    BenchSuite,
    server_rss_mb,
    store_commissioned_codes,
    suite_for_process,
)

SCANNED = 2_000  # real codes the throughput load cycles through
SMALL, LARGE = 100_000, 10_000_000  # stored codes for the growth ratio
GROWTH_WARM, GROWTH_TIMED = 4_000, 20_000  # fresh codes scanned per stored size
CONCURRENCY = 8  # clients, a connection each, as the echo baseline
SECONDS = 8.0
ROUNDS = 4  # the peaks: Verify and its same-I/O baseline alternate, SECONDS / 2 each round
# Serving processes (SEALMARK_PROCESSES): one per core, as a deployment of the public
# verifier on this box would run; the kernel spreads the clients' connections over them.
PROCESSES = os.cpu_count() or 1
_GOOD = (verifier_pb2.VERDICT_AUTHENTIC, verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE)


@dataclass
class Prepared:
    suite: BenchSuite
    channels: list[grpc.Channel]  # one per load thread, a connection each
    stubs: list[verifier_pb2_grpc.VerifierStub]
    payloads: list[str]
    code_keys: list[str]  # the same codes' keys, for the same-I/O baseline
    page_port: int = 0  # the consumer page of the same server (sealmark_app.bench.page)
    stored: int = 0
    peak: LoadResult | None = None
    io_peak: LoadResult | None = None
    half_load: dict[int, LoadResult] = field(default_factory=dict)  # stored codes -> result
    scanned_fill: set[int] = field(default_factory=set)  # filler numbers scanned so far


def _issue_and_commission(suite: BenchSuite, channel: grpc.Channel) -> list[tuple[str, str]]:
    """(Digital Link, serial) of :data:`SCANNED` codes issued and commissioned."""
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    line = [("authorization", f"Bearer {suite.tokens['line']}")]
    responses = issuer.IssueCodes(
        issuer_pb2.IssueCodesRequest(
            request_id="bench-v-" + os.urandom(4).hex(),
            gtin=GTIN,
            lot="BENCHV",
            expiry="301231",
            quantity=SCANNED,
            line_id="bench",
            work_order="WO-bench-verify",
        ),
        metadata=line,
        timeout=120,
    )
    codes = [c for r in responses for c in r.codes]
    acks = list(
        issuer.ReportCommissioned(
            iter(
                [
                    issuer_pb2.CodeBatch(
                        batch_id="bench-c-" + os.urandom(4).hex(),
                        gtin=GTIN,
                        serials=[c.serial for c in codes[i : i + 1000]],
                    )
                    for i in range(0, len(codes), 1000)
                ]
            ),
            metadata=line,
            timeout=120,
        )
    )
    if sum(a.accepted for a in acks) != SCANNED:
        raise RuntimeError(f"commissioned {sum(a.accepted for a in acks)} of {SCANNED}")
    return [(c.digital_link, c.serial) for c in codes]


def _fill_to(dsn: str, total: int, have: int) -> int:
    """Filler codes until ``total`` are stored (numbers ``have`` .. ``total - 1``)."""
    store_commissioned_codes(dsn, have, total, serial_prefix="F", lot="FILL")
    return total


def _lift_rate_limit(dsn: str) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO verify_rules (tenant_id, max_sessions, travel_kmh, travel_min_km,"
            " guess_limit, guess_window_s, rate_per_minute, changed_at)"
            " VALUES (%s, 3, 1000, 50, 20, 600, 1000000, now())",
            (TENANT,),
        )
    conn.close()


def verify_call(
    stubs: list[verifier_pb2_grpc.VerifierStub], payloads: list[str], session: str = "bench"
) -> Callable[[int], object]:
    """Verify code ``i % len(payloads)`` on stub ``i % len(stubs)``, each code from a session
    of its own; a verdict other than a genuine one raises."""

    def verify(i: int) -> object:
        n = i % len(payloads)
        request = verifier_pb2.VerifyRequest(
            payload=payloads[n],
            context=verifier_pb2.ClientContext(session_id=f"{session}-{n}", region="DE"),
        )
        response = stubs[i % len(stubs)].Verify(request, timeout=5)
        if response.verdict not in _GOOD:
            raise RuntimeError(f"unexpected verdict {response.verdict}")
        return response

    return verify


def io_call(channels: list[grpc.Channel], code_keys: list[str]) -> Callable[[int], object]:
    """The same-I/O baseline's call for code ``i % len(code_keys)``; a code it does not find
    raises (the baseline must read real rows)."""
    lookups = [c.unary_unary(io_service.METHOD) for c in channels]
    keys = [k.encode() for k in code_keys]

    def lookup(i: int) -> object:
        state = lookups[i % len(lookups)](keys[i % len(keys)], timeout=5)
        if not state:
            raise RuntimeError(f"no stored code {code_keys[i % len(keys)]}")
        return state

    return lookup


def alternate(
    calls: dict[str, Callable[[int], object]], *, seconds: float, rounds: int
) -> dict[str, LoadResult]:
    """Drive each of ``calls`` for ``seconds`` in all, in ``rounds`` rounds that alternate
    them (the first of a round changes each time), so that both share the passing load of a
    shared machine: what a baseline measured minutes before could not."""
    parts: dict[str, list[LoadResult]] = {name: [] for name in calls}
    names = list(calls)
    for n in range(rounds):
        for name in names if n % 2 == 0 else names[::-1]:
            parts[name].append(
                closed_loop(calls[name], seconds=seconds / rounds, concurrency=CONCURRENCY)
            )
    return {name: merged(results) for name, results in parts.items()}


def checked(result: LoadResult, what: str) -> LoadResult:
    """``result``, unless more than 1 % of its calls failed (a wrong verdict, a timeout):
    figures of failing calls would measure the failure."""
    if result.errors > 0.01 * (result.calls + result.errors):
        raise RuntimeError(
            f"{what}: {result.errors} of {result.calls + result.errors} calls failed"
        )
    return result


def _start(settings: dict[str, str]) -> Prepared:
    """A verify server (the same-I/O baseline beside it) with :data:`SCANNED` real codes and
    filler up to :data:`SMALL` stored, warmed."""
    suite, channel = suite_for_process(
        ["issuer", "verifier"],
        {"SEALMARK_PROCESSES": str(PROCESSES), **settings},
        command=io_service.COMMAND,
    )
    _lift_rate_limit(suite.dsn)
    codes = _issue_and_commission(suite, channel)
    random.Random(5).shuffle(codes)  # noqa: S311 - a reproducible order, not a secret
    channels = client_channels(suite.target, CONCURRENCY)
    atexit.register(lambda: [c.close() for c in channels])
    stubs = [verifier_pb2_grpc.VerifierStub(c) for c in channels]
    prepared = Prepared(suite, channels, stubs, [c[0] for c in codes], [GTIN + c[1] for c in codes])
    prepared.stored = _fill_to(suite.dsn, SMALL, SCANNED)
    calls = _peak_calls(prepared)
    alternate(calls, seconds=4.0, rounds=2)  # warm: connections, plans, Redis, scripts
    return prepared


def _peak_calls(prepared: Prepared) -> dict[str, Callable[[int], object]]:
    return {
        "verify": verify_call(prepared.stubs, prepared.payloads),
        "io": io_call(prepared.channels, prepared.code_keys),
    }


def _measure_peaks(prepared: Prepared) -> Prepared:
    peaks = alternate(_peak_calls(prepared), seconds=SECONDS, rounds=ROUNDS)
    prepared.peak = checked(peaks["verify"], "verify_rps")
    prepared.io_peak = checked(peaks["io"], "verify_io_baseline_rps")
    return prepared


@functools.cache
def _prepared() -> Prepared:
    page_port = _free_port()
    prepared = _start({"SEALMARK_VERIFY_HTTP_PORT": str(page_port)})
    prepared.page_port = page_port
    return _measure_peaks(prepared)


@functools.cache
def _prepared_on_cluster() -> Prepared:
    """The same server and load with the scan state on a 3-master Redis Cluster started for
    it (stopped at exit, after the server)."""
    stack = ExitStack()
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sealmark-bench-rc-")))
    cluster = stack.enter_context(redis_cluster(workdir, replicas=0))
    atexit.register(stack.close)  # registered before the server's: runs after it
    prepared = _start(
        {"SEALMARK_REDIS_CLUSTER_NODES": cluster.seeds, "SEALMARK_VERIFY_HTTP_PORT": "0"}
    )
    return _measure_peaks(prepared)


def _free_port() -> int:
    """A port free now, for the server's consumer page (not 8080: other servers may have it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _half_load(prepared: Prepared) -> LoadResult:
    if prepared.stored not in prepared.half_load:
        assert prepared.peak is not None
        rate = prepared.peak.rps / 2
        prepared.half_load[prepared.stored] = closed_loop(
            verify_call(prepared.stubs, prepared.payloads),
            seconds=SECONDS,
            concurrency=CONCURRENCY,
            rate_per_s=rate,
        )
    return prepared.half_load[prepared.stored]


def _peak_detail(peak: LoadResult, prepared: Prepared) -> dict[str, float | int | str]:
    return {
        "p50_ms": round(peak.percentile(0.5), 3),
        "p99_ms": round(peak.percentile(0.99), 3),
        "errors": peak.errors,
        "stored": prepared.stored,
        "processes": PROCESSES,
        "rounds": ROUNDS,
    }


@benchmark(
    "verify_io_baseline_rps",
    description=f"the I/O of a verification alone (one PK SELECT, one EVALSHA) served by the"
    f" verify_rps server's own processes, interceptor and pools; {CONCURRENCY} clients,"
    " rounds alternating with verify_rps",
)
def verify_io_baseline_rps() -> Measurement:
    prepared = _prepared()
    assert prepared.io_peak is not None
    peak = prepared.io_peak
    return Measurement(
        peak.rps,
        "rps",
        server_rss_mb(prepared.suite.target),
        _peak_detail(peak, prepared),
        peak.histogram(),
    )


@benchmark(
    "verify_rps",
    baseline="verify_io_baseline_rps",
    description=f"Verify calls/s over gRPC, {CONCURRENCY} clients, 100k codes stored; ratio to"
    " the same-I/O baseline of the same server",
    bar=Bar(0.8, of="ratio"),
)
def verify_rps() -> Measurement:
    prepared = _prepared()
    assert prepared.peak is not None
    peak = prepared.peak
    return Measurement(
        peak.rps,
        "rps",
        server_rss_mb(prepared.suite.target),
        _peak_detail(peak, prepared),
        peak.histogram(),
    )


@benchmark(
    "verify_p99_ms_half_load",
    description="Verify p99 at half the peak rate, 100k codes stored",
    bar=Bar(20, at_least=False),
)
def verify_p99_ms_half_load() -> Measurement:
    prepared = _prepared()
    if prepared.stored != SMALL:
        raise RuntimeError("run verify_p99_ms_half_load before verify_p99_growth")
    result = _half_load(prepared)
    return Measurement(
        result.percentile(0.99),
        "ms",
        server_rss_mb(prepared.suite.target),
        {
            "p50_ms": round(result.percentile(0.5), 3),
            "rps": round(result.rps, 1),
            "errors": result.errors,
        },
        result.histogram(),
    )


def _fresh_scans(prepared: Prepared, rate: float, seed: int) -> LoadResult:
    """Half-load scans of random filler codes of everything stored, each scanned once: a
    warm-up on :data:`GROWTH_WARM` of them, then :data:`SECONDS` timed on others."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    numbers = sample_numbers(
        rng, SCANNED, prepared.stored, GROWTH_WARM + GROWTH_TIMED, prepared.scanned_fill
    )
    prepared.scanned_fill.update(numbers)
    links = signed_links(tenant_signer(prepared.suite.dsn), [filler_serial(n) for n in numbers])
    session = f"growth-{prepared.stored}"
    warm = verify_call(prepared.stubs, links[:GROWTH_WARM], session + "w")
    closed_loop(warm, seconds=2.0, concurrency=CONCURRENCY, rate_per_s=rate)
    timed = verify_call(prepared.stubs, links[GROWTH_WARM:], session)
    result = checked(
        closed_loop(timed, seconds=SECONDS, concurrency=CONCURRENCY, rate_per_s=rate),
        f"verify_p99_growth with {prepared.stored:,} stored",
    )
    if result.calls + result.errors > GROWTH_TIMED:
        raise RuntimeError(f"{GROWTH_TIMED} fresh codes are too few for {result.rps:.0f} rps")
    return result


@benchmark(
    "verify_p99_growth",
    description="Verify p99 at half load, random first scans of 10M stored codes / of 100k",
    bar=Bar(1.5, at_least=False),
)
def verify_p99_growth() -> Measurement:
    prepared = _prepared()
    assert prepared.peak is not None
    if prepared.stored != SMALL:
        raise RuntimeError("verify_p99_growth runs once per process")
    rate = prepared.peak.rps / 2
    small = _fresh_scans(prepared, rate, seed=100)
    prepared.stored = _fill_to(prepared.suite.dsn, LARGE, prepared.stored)
    large = _fresh_scans(prepared, rate, seed=10_000)
    return Measurement(
        large.percentile(0.99) / small.percentile(0.99),
        "ratio",
        server_rss_mb(prepared.suite.target),
        {
            "p99_ms_100k": round(small.percentile(0.99), 3),
            "p99_ms_10m": round(large.percentile(0.99), 3),
            "p50_ms_100k": round(small.percentile(0.5), 3),
            "p50_ms_10m": round(large.percentile(0.5), 3),
            "rps_100k": round(small.rps, 1),
            "rps_10m": round(large.rps, 1),
            "errors": small.errors + large.errors,
        },
        large.histogram(),
    )


@benchmark(
    "verify_rps_redis_cluster",
    baseline="verify_rps",
    description="verify_rps with the scan state on a 3-master Redis Cluster (local"
    " redis-server processes), same server shape and load; ratio to verify_rps on one Redis;"
    " paired_ratio: both servers in alternating rounds",
)
def verify_rps_redis_cluster() -> Measurement:
    prepared = _prepared_on_cluster()
    assert prepared.peak is not None and prepared.io_peak is not None
    peak = prepared.peak
    detail = _peak_detail(peak, prepared)
    detail["io_baseline_rps"] = round(prepared.io_peak.rps, 1)
    detail["io_ratio"] = round(peak.rps / prepared.io_peak.rps, 4)
    # verify_rps ran earlier in the run; both servers driven in alternating rounds now
    # compare them under the same passing load.
    single = _prepared()
    paired = alternate(
        {
            "cluster": verify_call(prepared.stubs, prepared.payloads),
            "single": verify_call(single.stubs, single.payloads),
        },
        seconds=SECONDS,
        rounds=ROUNDS,
    )
    cluster_rps = checked(paired["cluster"], "verify_rps_redis_cluster").rps
    single_rps = checked(paired["single"], "verify_rps").rps
    detail["paired_cluster_rps"] = round(cluster_rps, 1)
    detail["paired_single_rps"] = round(single_rps, 1)
    detail["paired_ratio"] = round(cluster_rps / single_rps, 4)
    detail["paired_single_stored"] = single.stored
    return Measurement(
        peak.rps, "rps", server_rss_mb(prepared.suite.target), detail, peak.histogram()
    )
