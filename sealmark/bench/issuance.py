"""Issuance benchmarks: signed, durable codes streamed over gRPC from a real server process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import psycopg2

from sealmark.bench.registry import Measurement, benchmark
from sealmark.clock import SystemClock
from sealmark.storage.embedded import start_embedded
from sealmark.storage.migrate import apply_migrations
from sealmark.storage.postgres import PostgresDatabase
from sealmark.tenancy import usecases
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc

_SECRETS = {
    "SEALMARK_SECRET_PEPPER": "bench-pepper-0123456789",
    "SEALMARK_KEY_PASSPHRASE": "bench-passphrase",
}


@contextmanager
def issuer_server() -> Iterator[tuple[str, str, str]]:
    """A fresh database on an embedded server, and `sealmark serve issuer` on it in a
    subprocess. Yields (target, line token, gtin)."""
    with tempfile.TemporaryDirectory(prefix="sealmark-bench-") as tmp:
        servers = start_embedded(Path(tmp) / "data")
        server = None
        try:
            dsn = servers.database_url
            apply_migrations(dsn)
            db = PostgresDatabase(dsn)
            clock = SystemClock()
            usecases.create_tenant(
                db.unit_of_work,
                clock,
                tenant_id="bench",
                name="Bench",
                company_prefixes=["9520123"],
                resolver_host="id.bench.example",
            )
            usecases.add_product(
                db.unit_of_work,
                clock,
                tenant_id="bench",
                gtin="09520123456788",
                name="Bench",
                serial_alphabet="alnum-safe",
                serial_length=14,
            )
            line = usecases.create_token(
                db.unit_of_work, clock, os.urandom, tenant_id="bench", roles=["line"], name="line"
            )[1]
            admin = usecases.create_token(
                db.unit_of_work, clock, os.urandom, tenant_id="bench", roles=["admin"], name="admin"
            )[1]
            db.close()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")},
                "SEALMARK_DATABASE_URL": dsn,
                "SEALMARK_REDIS_URL": servers.redis_url,
                "SEALMARK_GRPC_PORT": "0",
                "SEALMARK_METRICS_PORT": "0",
                "SEALMARK_LOG_LEVEL": "WARNING",
                **_SECRETS,
            }
            server = subprocess.Popen(
                [sys.executable, "-m", "sealmark.cli.main", "serve", "issuer"],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert server.stdout is not None
            target = ""
            for line_out in server.stdout:
                if "Sealmark is up: gRPC " in line_out:
                    target = line_out.split("gRPC ", 1)[1].split(" ", 1)[0]
                    break
            if not target:
                raise RuntimeError("issuer server did not start")
            with grpc.insecure_channel(target) as channel:
                issuer_pb2_grpc.IssuerStub(channel).RotateKey(
                    issuer_pb2.RotateKeyRequest(),
                    metadata=[("authorization", f"Bearer {admin}")],
                    timeout=30,
                )
            yield target, line, "09520123456788"
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            servers.stop()


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


def _server_rss_mb(target: str) -> float | None:
    port = target.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    if "pid=" not in out.stdout:
        return None
    pid = out.stdout.split("pid=", 1)[1].split(",", 1)[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


@benchmark(
    "issue_codes_per_s",
    baseline="ed25519_sign_per_s",
    description="signed + durable + streamed codes/s over gRPC (100k request)",
)
def issue_codes_per_s() -> Measurement:
    with issuer_server() as (target, token, gtin):
        _stream(target, token, gtin, 5000)  # warm up: key unsealed, pool open
        count, seconds = _stream(target, token, gtin, 100_000)
        return Measurement(
            count / seconds,
            "codes/s",
            _server_rss_mb(target),
            {"codes": count, "seconds": round(seconds, 3)},
        )


@benchmark("pool_100k_seconds", description="a 100k-code pool durable and streamed (bar: <= 5 s)")
def pool_100k_seconds() -> Measurement:
    with issuer_server() as (target, token, gtin):
        _stream(target, token, gtin, 1000)
        count, seconds = _stream(target, token, gtin, 100_000)
        assert count == 100_000
        return Measurement(seconds, "s", _server_rss_mb(target))


__all__ = ["issue_codes_per_s", "pool_100k_seconds", "psycopg2"]
