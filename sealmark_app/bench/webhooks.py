"""Does the webhook outbox slow verification? First genuine scans are the only scans that
write to it (alerts are rare), and they write in the scan log's batch, off the request path
(verifier/scanlog.py), so it should not: measured here on the verification benches' server.

Both lines scan codes never scanned before, one scan each (every one a first genuine scan):
``verify_rps_first_scans`` while the bench brand has no endpoint (the outbox writer then costs
one endpoint lookup per batch), ``verify_rps_first_scans_webhooks`` after it registered one
for first scans (an event and a delivery per scan, in the batch's transaction). Nothing
delivers during the run (the bench server runs no Audit): the write is what is measured."""

from __future__ import annotations

import functools
import os
import time

import grpc
import psycopg2

from sealmark.v1 import issuer_pb2, issuer_pb2_grpc, verifier_pb2
from sealmark_app.bench.load import closed_loop
from sealmark_app.bench.registry import Bar, Measurement, benchmark
from sealmark_app.bench.suite import GTIN, TENANT, server_rss_mb
from sealmark_app.bench.verification import CONCURRENCY, Prepared, _prepared

FRESH = 20_000  # fresh codes per line: more than a run scans on this machine
SECONDS = 5.0
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


def _first_scans(prepared: Prepared, payloads: list[str]) -> Measurement:
    first = 0

    def verify(i: int) -> object:
        nonlocal first
        request = verifier_pb2.VerifyRequest(
            payload=payloads[i % len(payloads)],
            context=verifier_pb2.ClientContext(session_id=f"first-{i}", region="DE"),
        )
        response = prepared.stubs[i % CONCURRENCY].Verify(request, timeout=5)
        if response.verdict == verifier_pb2.VERDICT_AUTHENTIC:
            first += 1
        elif response.verdict != verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE:
            raise RuntimeError(f"unexpected verdict {response.verdict}")
        return response

    result = closed_loop(verify, seconds=SECONDS, concurrency=CONCURRENCY)
    time.sleep(0.5)  # the scan log's last batches
    return Measurement(
        result.rps,
        "rps",
        server_rss_mb(prepared.suite.target),
        {
            "p99_ms": round(result.percentile(0.99), 3),
            "errors": result.errors,
            "first_scans": first,
            "outbox_events": _outbox_events(prepared.suite.dsn),
        },
        result.histogram(),
    )


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


@functools.cache
def _codes() -> tuple[Prepared, list[str], list[str]]:
    prepared = _prepared()
    return prepared, _fresh_codes(prepared, FRESH), _fresh_codes(prepared, FRESH)


@benchmark(
    "verify_rps_first_scans",
    description=f"Verify calls/s, every one a code's first scan, no webhook endpoint, {CONCURRENCY}"
    " clients",
)
def verify_rps_first_scans() -> Measurement:
    prepared, without, _ = _codes()
    _set_endpoint(prepared.suite.dsn, present=False)
    return _first_scans(prepared, without)


@benchmark(
    "verify_rps_first_scans_webhooks",
    baseline="verify_rps_first_scans",
    description="the same with an endpoint subscribed to first scans: an outbox event and a"
    " delivery per scan, written with the scan log's batch",
    bar=Bar(0.9, of="ratio"),
)
def verify_rps_first_scans_webhooks() -> Measurement:
    prepared, _, fresh = _codes()
    _set_endpoint(prepared.suite.dsn, present=True)
    try:
        return _first_scans(prepared, fresh)
    finally:
        _set_endpoint(prepared.suite.dsn, present=False)
