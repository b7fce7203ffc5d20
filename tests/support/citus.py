"""A Citus coordinator for the integration suites (docs/citus.md).

When ``SEALMARK_TEST_CITUS_DSN`` names a coordinator (its ``postgres`` database holding the
extension and the worker nodes, as docs/citus.md sets it up), each integration test that
uses a database runs twice: on plain PostgreSQL and on that coordinator. A database made
there exists on the coordinator and on every worker, carries the extension and the nodes,
and is migrated and then distributed by deploy/citus/distribute.sql, as a deployment is.
Without the variable nothing of this is collected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg2

from sealmark.storage.migrate import apply_migrations

CITUS_DSN = os.environ.get("SEALMARK_TEST_CITUS_DSN")
# Fewer shards than Citus's default 32 make each test database quicker to distribute; two
# workers still hold several shards each, so every cross-shard path is exercised.
SHARDS = int(os.environ.get("SEALMARK_TEST_CITUS_SHARDS", "8"))
DISTRIBUTE_SQL = Path(__file__).resolve().parents[2] / "deploy" / "citus" / "distribute.sql"

_ROLE = (
    "DO $$ BEGIN CREATE ROLE sealmark_service NOLOGIN;"
    " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
)


def is_citus(dsn: str) -> bool:
    """Whether ``dsn``'s database has the Citus extension."""
    with psycopg2.connect(dsn, connect_timeout=3) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
        found = cur.fetchone() is not None
    conn.close()
    return found


def _nodes(admin_dsn: str) -> tuple[tuple[str, int], list[tuple[str, int]]]:
    """(coordinator, workers) as (host, port), from the admin database's node list."""
    with psycopg2.connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT nodename, nodeport, groupid FROM pg_dist_node WHERE noderole = 'primary'"
            " ORDER BY groupid"
        )
        rows = cur.fetchall()
    conn.close()
    coordinator = [(h, p) for h, p, g in rows if g == 0]
    workers = [(h, p) for h, p, g in rows if g != 0]
    if not coordinator or not workers:
        raise RuntimeError(f"{admin_dsn}: want a coordinator and workers in pg_dist_node")
    return coordinator[0], workers


def _node_dsn(admin_dsn: str, host: str, port: int, dbname: str) -> str:
    params = psycopg2.extensions.parse_dsn(admin_dsn)
    user = params.get("user", "postgres")
    return f"host={host} port={port} user={user} dbname={dbname}"


def _run(dsn: str, *statements: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def distribute(dsn: str) -> None:
    """Run deploy/citus/distribute.sql on ``dsn`` (its psql meta-commands left out)."""
    sql = "\n".join(
        line for line in DISTRIBUTE_SQL.read_text("utf-8").splitlines() if not line.startswith("\\")
    )
    _run(dsn, f"SET citus.shard_count = {SHARDS}; " + sql)


def create_citus_database(admin_dsn: str, name: str, dsn: str, *, migrate: bool) -> None:
    """Create database ``name`` on the coordinator and every worker of ``admin_dsn``'s
    cluster, with the extension and the nodes; migrated and distributed if ``migrate``."""
    (chost, cport), workers = _nodes(admin_dsn)
    for host, port in [(chost, cport), *workers]:
        _run(_node_dsn(admin_dsn, host, port, "postgres"), f'CREATE DATABASE "{name}"', _ROLE)
        _run(_node_dsn(admin_dsn, host, port, name), "CREATE EXTENSION citus")
    _run(
        dsn,
        f"SELECT citus_set_coordinator_host('{chost}', {cport})",
        *(f"SELECT citus_add_node('{host}', {port})" for host, port in workers),
    )
    if migrate:
        apply_migrations(dsn)
        distribute(dsn)


def drop_citus_database(admin_dsn: str, name: str) -> None:
    """Drop database ``name`` on the coordinator and every worker."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"unexpected database name {name!r}")
    (chost, cport), workers = _nodes(admin_dsn)
    for host, port in [(chost, cport), *workers]:
        _run(
            _node_dsn(admin_dsn, host, port, "postgres"),
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        )
