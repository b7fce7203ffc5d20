"""Issuance benchmarks: signed, durable codes streamed over gRPC from a real server process."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import psycopg2

from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.bench.registry import Bar, Measurement, benchmark
from sealmark_app.bench.suite import server_rss_mb, suite_server


@contextmanager
def issuer_server() -> Iterator[tuple[str, str, str]]:
    """`sealmark serve issuer` on a fresh database. Yields (target, line token, gtin)."""
    with suite_server(["issuer"]) as suite:
        yield suite.target, suite.tokens["line"], suite.gtin


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
    with issuer_server() as (target, token, gtin):
        _stream(target, token, gtin, 5000)  # warm up: key unsealed, pool open
        count, seconds = _stream(target, token, gtin, 100_000)
        return Measurement(
            count / seconds,
            "codes/s",
            server_rss_mb(target),
            {"codes": count, "seconds": round(seconds, 3)},
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


__all__ = ["issue_codes_per_s", "pool_100k_seconds", "psycopg2"]
