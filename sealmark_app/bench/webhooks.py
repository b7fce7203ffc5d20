"""Does the webhook outbox slow verification? First genuine scans are the only scans that
write to it (alerts are rare), and they write in the scan log's batch, off the request path
(verifier/scanlog.py), so it should not: measured here on the verification benches' server.

Both lines scan codes never scanned before, one scan each (every one a first genuine scan):
``verify_rps_first_scans`` while the bench brand has no endpoint (the outbox writer then costs
one endpoint lookup per batch), ``verify_rps_first_scans_webhooks`` after it registered one
for first scans (an event and a delivery per scan, in the batch's transaction). The two are
measured in alternating slices, so other load on the machine falls on both alike. Nothing
delivers during the run (the bench server runs no Audit): the write is what is measured."""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass, field

import grpc
import psycopg2

from sealmark.v1 import issuer_pb2, issuer_pb2_grpc, verifier_pb2
from sealmark_app.bench.load import LoadResult, closed_loop
from sealmark_app.bench.registry import Bar, Measurement, benchmark
from sealmark_app.bench.suite import GTIN, TENANT, server_rss_mb
from sealmark_app.bench.verification import CONCURRENCY, Prepared, _prepared

FRESH = 20_000  # fresh codes per line: more than a run scans on this machine
SLICES, SLICE_S = 4, 2.5  # per line, alternating with the other line's slices
ENDPOINT = "we_benchbenchbenchb"


def _fresh_codes(prepared: Prepared, count: int) -> list[str]:
    suite = prepared.suite
    line = [("authorization", f"Bearer {suite.tokens['line']}")]
    with grpc.insecure_channel(suite.target) as channel:
        issuer = issuer_pb2_grpc.IssuerStub(channel)
        codes = [
            c
            for r in issuer.IssueCodes(
                issuer_pb2.IssueCodesRequest(
                    request_id="bench-h-" + os.urandom(4).hex(),
                    gtin=GTIN,
                    lot="BENCHH",
                    expiry="301231",
                    quantity=count,
                    line_id="bench",
                    work_order="WO-bench-hooks",
                ),
                metadata=line,
                timeout=300,
            )
            for c in r.codes
        ]
        list(
            issuer.ReportCommissioned(
                iter(
                    [
                        issuer_pb2.CodeBatch(
                            batch_id="bench-hc-" + os.urandom(4).hex(),
                            gtin=GTIN,
                            serials=[c.serial for c in codes[i : i + 1000]],
                        )
                        for i in range(0, len(codes), 1000)
                    ]
                ),
                metadata=line,
                timeout=300,
            )
        )
    return [c.digital_link for c in codes]


@dataclass
class _Line:
    payloads: list[str]
    calls: int = 0
    seconds: float = 0.0
    first: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _slice(prepared: Prepared, line: _Line) -> LoadResult:
    """One slice of first scans on ``line``'s codes, continuing where its last slice ended."""
    offset = line.calls

    def verify(i: int) -> object:
        n = offset + i
        request = verifier_pb2.VerifyRequest(
            payload=line.payloads[n % len(line.payloads)],
            context=verifier_pb2.ClientContext(session_id=f"first-{n}", region="DE"),
        )
        response = prepared.stubs[i % CONCURRENCY].Verify(request, timeout=5)
        if response.verdict == verifier_pb2.VERDICT_AUTHENTIC:
            with line.lock:
                line.first += 1
        elif response.verdict != verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE:
            raise RuntimeError(f"unexpected verdict {response.verdict}")
        return response

    result = closed_loop(verify, seconds=SLICE_S, concurrency=CONCURRENCY)
    line.calls += result.calls
    line.seconds += result.seconds
    line.errors += result.errors
    return result


@functools.cache
def _interleaved() -> tuple[Prepared, dict[str, Measurement]]:
    """Both lines measured in alternating slices (without, with, without, with…), so load
    from anything else on the machine falls on both alike."""
    prepared = _prepared()
    lines = {
        "without": _Line(_fresh_codes(prepared, FRESH)),
        "with": _Line(_fresh_codes(prepared, FRESH)),
    }
    results: dict[str, list[LoadResult]] = {"without": [], "with": []}
    events: dict[str, int] = {"without": 0, "with": 0}
    for _ in range(SLICES):
        for name in ("without", "with"):
            _set_endpoint(prepared.suite.dsn, present=name == "with")
            before = _outbox_events(prepared.suite.dsn)
            results[name].append(_slice(prepared, lines[name]))
            time.sleep(0.3)  # the scan log's last batches of the slice
            events[name] += _outbox_events(prepared.suite.dsn) - before
    _set_endpoint(prepared.suite.dsn, present=False)
    rss = server_rss_mb(prepared.suite.target)
    out = {}
    for name, line in lines.items():
        parts = results[name]
        merged = LoadResult(
            sum(r.calls for r in parts),
            sum(r.errors for r in parts),
            sum(r.seconds for r in parts),
            [ms for r in parts for ms in r.latencies_ms],
        )
        out[name] = Measurement(
            line.calls / line.seconds,
            "rps",
            rss,
            {
                "p99_ms": round(merged.percentile(0.99), 3),
                "errors": line.errors,
                "first_scans": line.first,
                "outbox_events": events[name],
                "slices": SLICES,
            },
            merged.histogram(),
        )
    return prepared, out


def _outbox_events(dsn: str) -> int:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM webhook_events WHERE tenant_id = %s", (TENANT,))
        return int(cur.fetchone()[0])  # type: ignore[index]


def _set_endpoint(dsn: str, present: bool) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM webhook_endpoints WHERE tenant_id = %s", (TENANT,))
        if present:
            cur.execute(
                "INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, events, secret,"
                " created_at, secret_set_at) VALUES (%s, %s, 'https://hooks.example.com/in',"
                " '{code.first_genuine_scan}', %s, now(), now())",
                (TENANT, ENDPOINT, "bench-secret-" + "0" * 24),
            )


@benchmark(
    "verify_rps_first_scans",
    description=f"Verify calls/s, every one a code's first scan, no webhook endpoint, {CONCURRENCY}"
    " clients",
)
def verify_rps_first_scans() -> Measurement:
    return _interleaved()[1]["without"]


@benchmark(
    "verify_rps_first_scans_webhooks",
    baseline="verify_rps_first_scans",
    description="the same with an endpoint subscribed to first scans: an outbox event and a"
    " delivery per scan, written with the scan log's batch",
    bar=Bar(0.9, of="ratio"),
)
def verify_rps_first_scans_webhooks() -> Measurement:
    return _interleaved()[1]["with"]
