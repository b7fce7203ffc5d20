"""Audit benchmarks on a real server process: the EPCIS 2.0 export of a large event history,
streamed over gRPC, with the server's peak RSS (PRODUCT.md: exports stay streams)."""

from __future__ import annotations

import functools
import io
import json
import time
from dataclasses import dataclass

import grpc
import psycopg2

from sealmark.gs1.checkdigit import check_digit
from sealmark.v1 import audit_pb2, audit_pb2_grpc
from sealmark_app.bench.registry import Bar, Measurement, benchmark
from sealmark_app.bench.suite import (
    GTIN,
    PREFIX,
    TENANT,
    BenchSuite,
    server_rss_mb,
    suite_for_process,
)

EVENTS = 100_000  # packing events of 4 items each
CHILDREN = 4


@dataclass
class Prepared:
    suite: BenchSuite
    channel: grpc.Channel
    rss_idle_mb: float | None


def _sscc(n: int) -> str:
    body = "1" + PREFIX + f"{n:0{16 - len(PREFIX)}d}"
    return body + str(check_digit(body))


def _store_events(dsn: str) -> None:
    """EVENTS recorded packing events, written straight to PostgreSQL (as the Aggregator
    records them), in one COPY."""
    rows = io.StringIO()
    for n in range(EVENTS):
        payload = {
            "parent": "sscc:" + _sscc(n),
            "parent_level": "case",
            "children": [f"{GTIN}X{n * CHILDREN + c:012d}" for c in range(CHILDREN)],
            "line_id": "bench",
            "event_time": "2026-11-01T08:00:00+08:00",
            "time_zone_offset": "+08:00",
        }
        text = json.dumps(payload).replace("\\", "\\\\")
        rows.write(
            f"{TENANT}\taggregation.packed\tevent:x{n}\t2026-11-01 00:00:00+00\t{text}\tx{n}\n"
        )
    rows.seek(0)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.copy_expert(
            "COPY domain_events (tenant_id, kind, subject, occurred_at, payload, request_id)"
            " FROM STDIN",
            rows,
        )
        # Queued for the transparency log as the Aggregator's append queues them.
        cur.execute(
            "INSERT INTO tlog_queue (tenant_id, event_id) SELECT tenant_id, id"
            " FROM domain_events WHERE tenant_id = %s AND kind = 'aggregation.packed'",
            (TENANT,),
        )


@functools.cache
def _prepared() -> Prepared:
    suite, channel = suite_for_process(["audit"])
    _store_events(suite.dsn)
    return Prepared(suite, channel, server_rss_mb(suite.target))


@benchmark(
    "epcis_export_events_per_s",
    description="EPCIS 2.0 export of 100,000 packing events (400,000 identifiers) over gRPC,"
    " streamed; detail gives the server's RSS before and its peak after",
    bar=Bar(512, of="peak_rss_mb", at_least=False),
)
def epcis_export_events_per_s() -> Measurement:
    prepared = _prepared()
    stub = audit_pb2_grpc.AuditStub(prepared.channel)
    metadata = [("authorization", f"Bearer {prepared.suite.tokens['admin']}")]
    started = time.perf_counter()
    events = size = 0
    for chunk in stub.ExportEpcis(audit_pb2.ExportEpcisRequest(), metadata=metadata, timeout=3600):
        size += len(chunk.data)
        events = chunk.events_so_far
    seconds = time.perf_counter() - started
    if events < EVENTS:
        raise RuntimeError(f"exported {events} events, stored {EVENTS}")
    peak = server_rss_mb(prepared.suite.target)
    return Measurement(
        round(events / seconds, 1),
        "events/s",
        peak_rss_mb=peak,
        detail={
            "events": events,
            "megabytes": round(size / 1e6, 1),
            "seconds": round(seconds, 1),
            "server_rss_idle_mb": prepared.rss_idle_mb or 0.0,
        },
    )
