"""Aggregation benchmarks on a real server process with 1,000,000 commissioned codes stored:
packing through PackStream (durable, acknowledged per event), exploding a full pallet
(1,440 items in 60 cases) and finding the top parent of an item, both over gRPC.

The three share one prepared server (seeding a million codes takes a while); it is stopped
when the process exits.
"""

from __future__ import annotations

import functools
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from sealmark.v1 import aggregator_pb2, aggregator_pb2_grpc, common_pb2, issuer_pb2, issuer_pb2_grpc
from sealmark_app.bench.load import gc_paused, histogram_ms
from sealmark_app.bench.registry import Bar, Measurement, benchmark
from sealmark_app.bench.suite import (
    GTIN,
    PREFIX,
    BenchSuite,
    server_rss_mb,
    settle,
    store_commissioned_codes,
    suite_for_process,
)

STORED = 1_000_000
ITEMS_PER_CASE = 24
CASES_PER_PALLET = 60
CASES = 2_400  # 57,600 links by PackStream; then 40 pallets of 60 cases
LINES = 2  # concurrent PackStream lines


@dataclass
class Prepared:
    suite: BenchSuite
    channel: grpc.Channel
    stub: aggregator_pb2_grpc.AggregatorStub
    metadata: list[tuple[str, str]]
    pack_seconds: float = 0.0
    links: int = 0
    pallets: list[str] | None = None
    packed_items: list[str] | None = None


def _serial(i: int) -> str:
    return f"B{i:013d}"


def _item(serial: str) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=GTIN, serial=serial))


def _box(sscc: str) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(sscc=sscc)


def _ssccs(prepared: Prepared, count: int) -> list[str]:
    response = issuer_pb2_grpc.IssuerStub(prepared.channel).AllocateSsccs(
        issuer_pb2.AllocateSsccsRequest(
            request_id="bench-" + os.urandom(4).hex(),
            company_prefix=PREFIX,
            extension_digit=1,
            quantity=count,
        ),
        metadata=prepared.metadata,
        timeout=60,
    )
    return list(response.ssccs)


def _pack_events(
    cases: list[str], first_item: int, level: int
) -> Iterator[aggregator_pb2.PackStreamRequest]:
    for n, case in enumerate(cases):
        start = first_item + n * ITEMS_PER_CASE
        yield aggregator_pb2.PackStreamRequest(
            pack=aggregator_pb2.PackRequest(
                event_id=f"pack-{case}",
                parent=_box(case),
                children=[_item(_serial(i)) for i in range(start, start + ITEMS_PER_CASE)],
                parent_level=level,  # type: ignore[arg-type]
                line_id="bench",
            )
        )


def _run_stream(prepared: Prepared, events: list[aggregator_pb2.PackStreamRequest]) -> int:
    acks = prepared.stub.PackStream(iter(events), metadata=prepared.metadata, timeout=600)
    failed = [a for a in acks if not a.ok]
    if failed:
        raise RuntimeError(f"pack failed: {failed[0].error_code} {failed[0].error_message}")
    return len(events)


@functools.cache
def _prepared() -> Prepared:
    suite, channel = suite_for_process(["issuer", "aggregator"])
    store_commissioned_codes(suite.dsn, 0, STORED, serial_prefix="B", lot="BENCH1")
    prepared = Prepared(
        suite,
        channel,
        aggregator_pb2_grpc.AggregatorStub(channel),
        [("authorization", f"Bearer {suite.tokens['line']}")],
    )
    cases = _ssccs(prepared, CASES)
    # Warm up (connections, plans) on items the timed run does not use.
    warm = _ssccs(prepared, 20)
    _run_stream(
        prepared,
        list(_pack_events(warm, CASES * ITEMS_PER_CASE, common_pb2.PACK_LEVEL_CASE)),
    )
    share = CASES // LINES
    streams = [
        list(_pack_events(cases[n * share : (n + 1) * share], n * share * ITEMS_PER_CASE, 3))
        for n in range(LINES)
    ]
    threads = [threading.Thread(target=_run_stream, args=(prepared, s)) for s in streams]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    prepared.pack_seconds = time.perf_counter() - started
    prepared.links = CASES * ITEMS_PER_CASE
    # Pallets of 60 full cases: 1,440 items each.
    pallets = _ssccs(prepared, CASES // CASES_PER_PALLET)
    _run_stream(
        prepared,
        [
            aggregator_pb2.PackStreamRequest(
                pack=aggregator_pb2.PackRequest(
                    event_id=f"pallet-{pallet}",
                    parent=_box(pallet),
                    children=[
                        _box(c) for c in cases[p * CASES_PER_PALLET : (p + 1) * CASES_PER_PALLET]
                    ],
                    parent_level=common_pb2.PACK_LEVEL_PALLET,
                )
            )
            for p, pallet in enumerate(pallets)
        ],
    )
    prepared.pallets = pallets
    prepared.packed_items = [_serial(i) for i in range(prepared.links)]
    settle(suite.dsn, "containment", "ssccs", "codes")
    return prepared


def _p99_ms(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000


@benchmark(
    "pack_links_per_s",
    description=f"item->case links/s through PackStream, {LINES} lines, durable, 1M codes stored",
    bar=Bar(10_000),
)
def pack_links_per_s() -> Measurement:
    prepared = _prepared()
    return Measurement(
        prepared.links / prepared.pack_seconds,
        "links/s",
        server_rss_mb(prepared.suite.target),
        {"links": prepared.links, "seconds": round(prepared.pack_seconds, 3), "lines": LINES},
    )


def _latency(prepared: Prepared, calls: int, warm: int, call: Callable[[int], None]) -> Measurement:
    """p99 of ``calls`` timed calls after ``warm`` untimed ones (plans, connections), timed
    with :func:`gc_paused`. Callers take enough calls that the p99 is not decided by two or
    three of them."""
    samples = []
    with gc_paused():
        for n in range(warm + calls):
            started = time.perf_counter()
            call(n)
            if n >= warm:
                samples.append(time.perf_counter() - started)
    return Measurement(
        _p99_ms(samples),
        "ms",
        server_rss_mb(prepared.suite.target),
        {"p50_ms": round(statistics.median(samples) * 1000, 3), "calls": len(samples)},
        histogram_ms([s * 1000 for s in samples]),
    )


@benchmark(
    "pallet_explode_p99_ms",
    description="ListChildren(all levels) of a 1,440-item pallet over gRPC, p99",
    bar=Bar(10, at_least=False),
)
def pallet_explode_p99_ms() -> Measurement:
    prepared = _prepared()
    pallets = prepared.pallets or []
    rng = random.Random(7)  # noqa: S311 - a reproducible sample, not a secret

    def explode(_: int) -> None:
        pallet = rng.choice(pallets)
        request = aggregator_pb2.ListChildrenRequest(
            parent=_box(pallet), all_levels=True, page=common_pb2.PageRequest(page_size=1000)
        )
        pages = prepared.stub.ListChildren(request, metadata=prepared.metadata, timeout=30)
        count = sum(len(page.children) for page in pages)
        if count != CASES_PER_PALLET * (ITEMS_PER_CASE + 1):
            raise RuntimeError(f"pallet {pallet} exploded to {count} units")

    return _latency(prepared, 1000, 50, explode)


@benchmark(
    "top_parent_p99_ms",
    description="GetAncestors (top pallet) of a packed item over gRPC, p99",
    bar=Bar(2, at_least=False),
)
def top_parent_p99_ms() -> Measurement:
    prepared = _prepared()
    items = prepared.packed_items or []
    rng = random.Random(11)  # noqa: S311 - a reproducible sample, not a secret

    def top(_: int) -> None:
        serial = rng.choice(items)
        request = aggregator_pb2.GetAncestorsRequest(code=_item(serial))
        response = prepared.stub.GetAncestors(request, metadata=prepared.metadata, timeout=10)
        if len(response.ancestors) != 2:
            raise RuntimeError(f"item {serial} has {len(response.ancestors)} ancestors")

    return _latency(prepared, 5000, 200, top)
