"""Mixed load (issue 22, item 4): a line issuing and two lines packing while consumers verify,
on one server (`sealmark serve issuer aggregator verifier`, one serving process per core), each
figure next to its solo figure from the same server and run.

- Verify: eight clients paced at half of Verify's peak on this server, real codes scanned
  from a session each (as ``verify_p99_ms_half_load``); p99 solo, then under the mix.
- Pack: two PackStream lines packing 24 commissioned items a case (durable, acknowledged per
  event), for :data:`SECONDS`; links per second solo, then under the mix.
- Issue: one line streaming 10,000-code IssueCodes requests back to back, signed and durable;
  codes per second solo and under the mix, in the detail of both mixed lines.

The mix runs all three at once for :data:`SECONDS`. The solo figures are the baselines
(``solo_verify_p99_ms``, ``solo_pack_links_per_s``), so each mixed line's ratio is mixed over
solo: above 1 the verify p99 grew, below 1 packing slowed.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from sealmark.v1 import (
    aggregator_pb2,
    aggregator_pb2_grpc,
    common_pb2,
    issuer_pb2,
    issuer_pb2_grpc,
    verifier_pb2_grpc,
)
from sealmark_app.bench.codes import filler_serial
from sealmark_app.bench.load import LoadResult, client_channels, closed_loop
from sealmark_app.bench.registry import Measurement, benchmark
from sealmark_app.bench.suite import (
    GTIN,
    PREFIX,
    BenchSuite,
    server_rss_mb,
    settle,
    store_commissioned_codes,
    suite_for_process,
)
from sealmark_app.bench.verification import (
    CONCURRENCY,
    PROCESSES,
    SECONDS,
    _issue_and_commission,
    _lift_rate_limit,
    verify_call,
)

ITEMS_PER_CASE = 24
IN_FLIGHT = 64  # pack events a line sends ahead of its acknowledgements (two full groups)
PACK_LINES = 2
PACK_ITEMS = 400_000  # commissioned items to pack: solo and mixed runs take fresh ones
ISSUE_QUANTITY = 10_000
SSCC_CHUNK = 5_000


@dataclass
class Stock:
    """Fresh cases and items for the pack lines, handed out once each (thread-safe)."""

    ssccs: list[str]
    next_case: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[str, int]:
        """A fresh case and the number of its first item."""
        with self.lock:
            n = self.next_case
            if n >= len(self.ssccs) or (n + 1) * ITEMS_PER_CASE > PACK_ITEMS:
                raise RuntimeError(f"the bench ran out of fresh cases after {n}")
            self.next_case += 1
        return self.ssccs[n], n * ITEMS_PER_CASE


def pack_requests(
    take: Callable[[], tuple[str, int]],
    deadline: float,
    clock: Callable[[], float],
    window: threading.Semaphore,
) -> Iterator[aggregator_pb2.PackStreamRequest]:
    """Pack events of fresh cases, one after another, until ``clock()`` passes ``deadline``;
    each waits for a slot of ``window`` (released by its acknowledgement), so the line keeps a
    bounded number of events in flight, as a line that waits for its acks does: gRPC would
    otherwise buffer whatever the generator makes, and the stream would outlive its deadline
    by all the server has not read yet."""
    while clock() < deadline:
        if not window.acquire(timeout=60):
            raise RuntimeError("no pack acknowledged for 60 s")
        if clock() >= deadline:
            window.release()
            return
        case, first = take()
        yield aggregator_pb2.PackStreamRequest(
            pack=aggregator_pb2.PackRequest(
                event_id=f"mix-{case}",
                parent=common_pb2.CodeRef(sscc=case),
                children=[
                    common_pb2.CodeRef(
                        sgtin=common_pb2.Sgtin(gtin=GTIN, serial=filler_serial(i, "M"))
                    )
                    for i in range(first, first + ITEMS_PER_CASE)
                ],
                parent_level=common_pb2.PACK_LEVEL_CASE,
                line_id="bench-mix",
            )
        )


@dataclass(frozen=True)
class Throughput:
    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


@dataclass
class Prepared:
    suite: BenchSuite
    channel: grpc.Channel
    metadata: list[tuple[str, str]]
    verify: Callable[[int], object]
    stock: Stock
    rate: float = 0.0
    figures: dict[str, LoadResult | Throughput] = field(default_factory=dict)


def _pack_line(prepared: Prepared, seconds: float) -> Throughput:
    """One PackStream line for ``seconds``: links acknowledged, and the time to the last."""
    stub = aggregator_pb2_grpc.AggregatorStub(prepared.channel)
    window = threading.BoundedSemaphore(IN_FLIGHT)
    started = time.perf_counter()
    events = pack_requests(prepared.stock.take, started + seconds, time.perf_counter, window)
    acks = stub.PackStream(events, metadata=prepared.metadata, timeout=seconds + 120)
    done = 0
    for ack in acks:
        if not ack.ok:
            raise RuntimeError(f"pack failed: {ack.error_code} {ack.error_message}")
        window.release()
        done += 1
    return Throughput(done * ITEMS_PER_CASE, time.perf_counter() - started)


def _pack(prepared: Prepared, seconds: float) -> Throughput:
    """:data:`PACK_LINES` lines at once; links/s of them all."""
    results: list[Throughput] = []
    threads = [
        threading.Thread(target=lambda: results.append(_pack_line(prepared, seconds)))
        for _ in range(PACK_LINES)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(results) != PACK_LINES:
        raise RuntimeError("a pack line failed (see its traceback above)")
    return Throughput(sum(r.count for r in results), max(r.seconds for r in results))


def _issue(prepared: Prepared, seconds: float) -> Throughput:
    """One line's IssueCodes requests back to back until ``seconds`` have passed."""
    stub = issuer_pb2_grpc.IssuerStub(prepared.channel)
    started = time.perf_counter()
    codes = 0
    for n in itertools.count():
        if time.perf_counter() - started >= seconds:
            break
        for response in stub.IssueCodes(
            issuer_pb2.IssueCodesRequest(
                request_id=f"bench-mix-{os.urandom(4).hex()}-{n}",
                gtin=GTIN,
                lot="MIXISSUE",
                expiry="301231",
                quantity=ISSUE_QUANTITY,
                line_id="bench-mix",
                work_order="WO-bench-mix",
                batch_size=5000,
            ),
            metadata=prepared.metadata,
            timeout=120,
        ):
            codes += len(response.codes)
    return Throughput(codes, time.perf_counter() - started)


def _verify_half_load(prepared: Prepared) -> LoadResult:
    return closed_loop(
        prepared.verify, seconds=SECONDS, concurrency=CONCURRENCY, rate_per_s=prepared.rate
    )


def _ssccs(prepared: Prepared, count: int) -> list[str]:
    stub = issuer_pb2_grpc.IssuerStub(prepared.channel)
    found: list[str] = []
    while len(found) < count:
        response = stub.AllocateSsccs(
            issuer_pb2.AllocateSsccsRequest(
                request_id="bench-mix-" + os.urandom(4).hex(),
                company_prefix=PREFIX,
                extension_digit=2,
                quantity=min(SSCC_CHUNK, count - len(found)),
            ),
            metadata=prepared.metadata,
            timeout=60,
        )
        found += response.ssccs
    return found


@functools.cache
def _prepared() -> Prepared:
    suite, channel = suite_for_process(
        ["issuer", "aggregator", "verifier"],
        {"SEALMARK_PROCESSES": str(PROCESSES), "SEALMARK_VERIFY_HTTP_PORT": "0"},
    )
    _lift_rate_limit(suite.dsn)
    payloads = [link for link, _ in _issue_and_commission(suite, channel)]
    store_commissioned_codes(suite.dsn, 0, PACK_ITEMS, serial_prefix="M", lot="MIX")
    channels = client_channels(suite.target, CONCURRENCY)
    atexit.register(lambda: [c.close() for c in channels])
    stubs = [verifier_pb2_grpc.VerifierStub(c) for c in channels]
    prepared = Prepared(
        suite,
        channel,
        [("authorization", f"Bearer {suite.tokens['line']}")],
        verify_call(stubs, payloads, "mix"),
        Stock([]),
    )
    prepared.stock.ssccs = _ssccs(prepared, PACK_ITEMS // ITEMS_PER_CASE)
    settle(suite.dsn, "codes", "ssccs")
    # Warm: connections, plans, the signing key, scripts.
    closed_loop(prepared.verify, seconds=2.0, concurrency=CONCURRENCY)
    _pack(prepared, 1.0)
    _issue(prepared, 0.1)
    prepared.rate = closed_loop(prepared.verify, seconds=SECONDS, concurrency=CONCURRENCY).rps / 2
    return _run(prepared)


def _run(prepared: Prepared) -> Prepared:
    figures = prepared.figures
    figures["verify_solo"] = _verify_half_load(prepared)
    figures["pack_solo"] = _pack(prepared, SECONDS)
    figures["issue_solo"] = _issue(prepared, SECONDS)
    mixed: dict[str, Throughput] = {}
    workers = [
        threading.Thread(target=lambda: mixed.__setitem__("pack", _pack(prepared, SECONDS))),
        threading.Thread(target=lambda: mixed.__setitem__("issue", _issue(prepared, SECONDS))),
    ]
    for t in workers:
        t.start()
    figures["verify_mixed"] = _verify_half_load(prepared)
    for t in workers:
        t.join()
    if set(mixed) != {"pack", "issue"}:
        raise RuntimeError("a line of the mix failed (see its traceback above)")
    figures["pack_mixed"], figures["issue_mixed"] = mixed["pack"], mixed["issue"]
    return prepared


def _load(prepared: Prepared, name: str) -> LoadResult:
    result = prepared.figures[name]
    assert isinstance(result, LoadResult)
    return result


def _throughput(prepared: Prepared, name: str) -> Throughput:
    result = prepared.figures[name]
    assert isinstance(result, Throughput)
    return result


def _context(prepared: Prepared) -> dict[str, float | int | str]:
    return {
        "verify_rate_rps": round(prepared.rate, 1),
        "issue_codes_per_s_solo": round(_throughput(prepared, "issue_solo").per_s, 1),
        "issue_codes_per_s_mixed": round(_throughput(prepared, "issue_mixed").per_s, 1),
        "processes": PROCESSES,
    }


def _verify_measurement(prepared: Prepared, name: str) -> Measurement:
    result = _load(prepared, name)
    return Measurement(
        result.percentile(0.99),
        "ms",
        server_rss_mb(prepared.suite.target),
        {
            "p50_ms": round(result.percentile(0.5), 3),
            "rps": round(result.rps, 1),
            "errors": result.errors,
            **_context(prepared),
        },
        result.histogram(),
    )


def _pack_measurement(prepared: Prepared, name: str) -> Measurement:
    result = _throughput(prepared, name)
    return Measurement(
        result.per_s,
        "links/s",
        server_rss_mb(prepared.suite.target),
        {
            "links": result.count,
            "seconds": round(result.seconds, 3),
            "lines": PACK_LINES,
            **_context(prepared),
        },
    )


@benchmark(
    "solo_verify_p99_ms",
    description="Verify p99 at half its peak on the mixed-load server, nothing else running",
)
def solo_verify_p99_ms() -> Measurement:
    return _verify_measurement(_prepared(), "verify_solo")


@benchmark(
    "mixed_verify_p99_ms",
    baseline="solo_verify_p99_ms",
    description="Verify p99 at the same rate while a line issues and two lines pack; ratio"
    " to solo_verify_p99_ms of the same server",
)
def mixed_verify_p99_ms() -> Measurement:
    return _verify_measurement(_prepared(), "verify_mixed")


@benchmark(
    "solo_pack_links_per_s",
    description=f"item->case links/s, {PACK_LINES} PackStream lines on the mixed-load server,"
    " nothing else running",
)
def solo_pack_links_per_s() -> Measurement:
    return _pack_measurement(_prepared(), "pack_solo")


@benchmark(
    "mixed_pack_links_per_s",
    baseline="solo_pack_links_per_s",
    description=f"item->case links/s, {PACK_LINES} PackStream lines, while a line issues and"
    " consumers verify at half load; ratio to solo_pack_links_per_s of the same server",
)
def mixed_pack_links_per_s() -> Measurement:
    return _pack_measurement(_prepared(), "pack_mixed")
