"""Verification benchmarks on a real server (`sealmark serve issuer verifier` with one serving
process per core, SEALMARK_PROCESSES): throughput against the bare echo baseline, p99 at half
of that peak, and how p99 grows from 100,000 to 10,000,000 stored codes. The load is eight
clients on a connection each, as for the baseline.

The scanned codes are real: issued (signed) and commissioned through the Issuer, each scanned
from a session of its own (so they stay AUTHENTIC_SEEN_BEFORE, the common case). The filler
codes that make up the stored count are inserted straight into PostgreSQL. The bench tenant's
per-client rate limit is lifted (one load generator is one client address).
"""

from __future__ import annotations

import atexit
import functools
import os
import random
import socket
from dataclasses import dataclass, field

import grpc
import psycopg2

from sealmark.v1 import issuer_pb2, issuer_pb2_grpc, verifier_pb2, verifier_pb2_grpc
from sealmark_app.bench.load import LoadResult, client_channels, closed_loop
from sealmark_app.bench.registry import Bar, Measurement, benchmark
from sealmark_app.bench.suite import (
    GTIN,
    TENANT,
    BenchSuite,
    server_rss_mb,
    store_commissioned_codes,
    suite_for_process,
)

SCANNED = 2_000  # real codes the load cycles through
SMALL, LARGE = 100_000, 10_000_000  # stored codes for the growth ratio
CONCURRENCY = 8  # clients, a connection each, as the echo baseline
SECONDS = 8.0
# Serving processes (SEALMARK_PROCESSES): one per core, as a deployment of the public
# verifier on this box would run; the kernel spreads the clients' connections over them.
PROCESSES = os.cpu_count() or 1


@dataclass
class Prepared:
    suite: BenchSuite
    stubs: list[verifier_pb2_grpc.VerifierStub]  # one per load thread, a connection each
    payloads: list[str]
    page_port: int = 0  # the consumer page of the same server (sealmark_app.bench.page)
    stored: int = 0
    peak: LoadResult | None = None
    half_load: dict[int, LoadResult] = field(default_factory=dict)  # stored codes -> result


def _issue_and_commission(suite: BenchSuite, channel: grpc.Channel) -> list[str]:
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
    return [c.digital_link for c in codes]


def _fill_to(dsn: str, total: int, have: int) -> int:
    """Filler codes until ``total`` are stored."""
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


def _call(prepared: Prepared) -> functools.partial[object]:
    def verify(i: int) -> object:
        n = i % len(prepared.payloads)
        request = verifier_pb2.VerifyRequest(
            payload=prepared.payloads[n],
            context=verifier_pb2.ClientContext(session_id=f"bench-{n}", region="DE"),
        )
        response = prepared.stubs[i % CONCURRENCY].Verify(request, timeout=5)
        if response.verdict not in (
            verifier_pb2.VERDICT_AUTHENTIC,
            verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE,
        ):
            raise RuntimeError(f"unexpected verdict {response.verdict}")
        return response

    return functools.partial(verify)


@functools.cache
def _prepared() -> Prepared:
    page_port = _free_port()
    suite, channel = suite_for_process(
        ["issuer", "verifier"],
        {"SEALMARK_PROCESSES": str(PROCESSES), "SEALMARK_VERIFY_HTTP_PORT": str(page_port)},
    )
    _lift_rate_limit(suite.dsn)
    payloads = _issue_and_commission(suite, channel)
    random.Random(5).shuffle(payloads)  # noqa: S311 - a reproducible order, not a secret
    channels = client_channels(suite.target, CONCURRENCY)
    atexit.register(lambda: [c.close() for c in channels])
    stubs = [verifier_pb2_grpc.VerifierStub(c) for c in channels]
    prepared = Prepared(suite, stubs, payloads, page_port)
    prepared.stored = _fill_to(suite.dsn, SMALL, SCANNED)
    call = _call(prepared)
    closed_loop(call, seconds=2.0, concurrency=CONCURRENCY)  # warm: connections, plans, Redis
    prepared.peak = closed_loop(call, seconds=SECONDS, concurrency=CONCURRENCY)
    return prepared


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
            _call(prepared), seconds=SECONDS, concurrency=CONCURRENCY, rate_per_s=rate
        )
    return prepared.half_load[prepared.stored]


@benchmark(
    "verify_rps",
    baseline="grpc_echo_rps",
    description=f"Verify calls/s over gRPC, {CONCURRENCY} clients, 100k codes stored",
    bar=Bar(0.5, of="ratio"),
)
def verify_rps() -> Measurement:
    prepared = _prepared()
    assert prepared.peak is not None
    peak = prepared.peak
    return Measurement(
        peak.rps,
        "rps",
        server_rss_mb(prepared.suite.target),
        {
            "p50_ms": round(peak.percentile(0.5), 3),
            "p99_ms": round(peak.percentile(0.99), 3),
            "errors": peak.errors,
            "stored": prepared.stored,
            "processes": PROCESSES,
        },
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


@benchmark(
    "verify_p99_growth",
    description="Verify p99 at half load with 10M codes stored / with 100k",
    bar=Bar(1.5, at_least=False),
)
def verify_p99_growth() -> Measurement:
    prepared = _prepared()
    small = _half_load(prepared) if prepared.stored == SMALL else prepared.half_load[SMALL]
    prepared.stored = _fill_to(prepared.suite.dsn, LARGE, prepared.stored)
    closed_loop(_call(prepared), seconds=2.0, concurrency=CONCURRENCY)  # warm again
    large = _half_load(prepared)
    return Measurement(
        large.percentile(0.99) / small.percentile(0.99),
        "ratio",
        server_rss_mb(prepared.suite.target),
        {
            "p99_ms_100k": round(small.percentile(0.99), 3),
            "p99_ms_10m": round(large.percentile(0.99), 3),
            "p50_ms_100k": round(small.percentile(0.5), 3),
            "p50_ms_10m": round(large.percentile(0.5), 3),
            "errors": small.errors + large.errors,
        },
        large.histogram(),
    )
