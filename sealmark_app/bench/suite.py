"""A Sealmark server process for benchmarks: a fresh embedded PostgreSQL and Redis, one tenant
with one product and tokens, and `sealmark serve SERVICE…` on them in a subprocess."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg2

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
TENANT = "bench"
PREFIX = "9520123"
GTIN = "09520123456788"


@dataclass(frozen=True)
class BenchSuite:
    target: str
    tokens: dict[str, str]  # role -> bearer token
    gtin: str
    dsn: str


SERVE = (sys.executable, "-m", "sealmark_app.cli.main", "serve")


def server_environment(
    dsn: str, redis_url: str, settings: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The bench server's environment: this one without its ``SEALMARK_*`` variables, the
    database, Redis (``redis_url``, unless ``settings`` name a Redis Cluster instead), any free
    ports, the bench's secrets, then ``settings``."""
    extra = dict(settings or {})
    redis = {} if "SEALMARK_REDIS_CLUSTER_NODES" in extra else {"SEALMARK_REDIS_URL": redis_url}
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")},
        "SEALMARK_DATABASE_URL": dsn,
        **redis,
        "SEALMARK_GRPC_PORT": "0",
        "SEALMARK_METRICS_PORT": "0",
        "SEALMARK_LOG_LEVEL": "WARNING",
        **_SECRETS,
        **extra,
    }


@contextmanager
def suite_server(
    services: list[str],
    settings: dict[str, str] | None = None,
    *,
    command: Sequence[str] = SERVE,
) -> Iterator[BenchSuite]:
    """The suite's ``services`` in a subprocess on a fresh embedded database, with tenant
    ``bench`` (prefix 9520123), product 09520123456788 and a token per role; a signing key
    when the Issuer is among them. ``settings``: more ``SEALMARK_*`` variables (with
    ``SEALMARK_REDIS_CLUSTER_NODES``, that cluster instead of the embedded Redis).
    ``command``: how ``sealmark serve`` is started (the bench's same-I/O baseline beside the
    services: :data:`sealmark_app.bench.io_service.COMMAND`)."""
    with tempfile.TemporaryDirectory(prefix="sealmark-bench-") as tmp:
        servers = start_embedded(Path(tmp) / "data")
        server = None
        try:
            dsn = servers.database_url
            apply_migrations(dsn)
            tokens = _seed(dsn)
            env = server_environment(dsn, servers.redis_url, settings)
            server = subprocess.Popen(
                [*command, *services],
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
                raise RuntimeError("bench server did not start")
            if "issuer" in services:
                with grpc.insecure_channel(target) as channel:
                    issuer_pb2_grpc.IssuerStub(channel).RotateKey(
                        issuer_pb2.RotateKeyRequest(),
                        metadata=[("authorization", f"Bearer {tokens['admin']}")],
                        timeout=30,
                    )
            yield BenchSuite(target, tokens, GTIN, dsn)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
                if server.stdout is not None:
                    server.stdout.close()
            servers.stop()


def suite_for_process(
    services: list[str],
    settings: dict[str, str] | None = None,
    *,
    command: Sequence[str] = SERVE,
) -> tuple[BenchSuite, grpc.Channel]:
    """:func:`suite_server` and a channel to it, kept for the rest of the process (several
    benchmarks share one prepared server) and stopped at exit. Registered after the embedded
    servers' own atexit hook, so it runs first: the service stops, and flushes what it holds,
    while PostgreSQL is still there."""
    stack = ExitStack()
    suite = stack.enter_context(suite_server(services, settings, command=command))
    atexit.register(stack.close)
    return suite, stack.enter_context(grpc.insecure_channel(suite.target))


def store_commissioned_codes(
    dsn: str, first: int, stop: int, *, serial_prefix: str, lot: str
) -> None:
    """Store commissioned codes of the bench product straight in PostgreSQL (serials
    ``serial_prefix`` + 13 digits, numbers ``first`` .. ``stop - 1``; unsigned: filler that
    makes up a stored count), a million per transaction; then :func:`settle`."""
    conn = psycopg2.connect(dsn)
    try:
        for start in range(first, stop, 1_000_000):
            with conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, expiry, state,"
                    " issued_at, updated_at)"
                    " SELECT %s || s, %s, %s, s, %s, '2030-12-31', 'commissioned', now(), now()"
                    " FROM (SELECT %s || lpad(i::text, 13, '0') AS s"
                    "       FROM generate_series(%s, %s - 1) i) t",
                    (GTIN, TENANT, GTIN, lot, serial_prefix, start, min(stop, start + 1_000_000)),
                )
    finally:
        conn.close()
    settle(dsn, "codes")


def settle(dsn: str, *tables: str) -> None:
    """Bring a database just bulk-loaded to the steady state of one that grew to the same
    size over time, before anything is timed: VACUUM ANALYZE ``tables`` (as autovacuum would
    have by then), then CHECKPOINT, so that writing out the load's dirty pages is not done by
    the background writer and checkpointer while a benchmark runs."""
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"VACUUM ANALYZE {', '.join(tables)}")
            cur.execute("CHECKPOINT")
    finally:
        conn.close()


def _seed(dsn: str) -> dict[str, str]:
    db = PostgresDatabase(dsn)
    clock = SystemClock()
    try:
        usecases.create_tenant(
            db.unit_of_work,
            clock,
            tenant_id=TENANT,
            name="Bench",
            company_prefixes=[PREFIX],
            resolver_host="id.bench.example",
        )
        usecases.add_product(
            db.unit_of_work,
            clock,
            tenant_id=TENANT,
            gtin=GTIN,
            name="Bench",
            serial_alphabet="alnum-safe",
            serial_length=14,
        )
        return {
            role: usecases.create_token(
                db.unit_of_work, clock, os.urandom, tenant_id=TENANT, roles=[role], name=role
            )[1]
            for role in ("line", "logistics", "admin")
        }
    finally:
        db.close()


def server_rss_mb(target: str) -> float | None:
    """Peak RSS of the process listening on ``target``'s port (Linux)."""
    port = target.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    if "pid=" not in out.stdout:
        return None
    pid = out.stdout.split("pid=", 1)[1].split(",", 1)[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None
