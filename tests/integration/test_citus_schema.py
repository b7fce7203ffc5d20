"""The migrated schema on a real server, against deploy/citus/distribute.sql (issue 20): no
trigger or function is left, every table is listed, every primary and unique key of a
distributed table holds its distribution column, foreign keys stay within what Citus allows,
and the static parser of tests/support/citus_rules.py reads the same keys the server has."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from tests.pg_fixtures import with_dbname
from tests.support.citus import CITUS_DSN, create_citus_database, distribute, drop_citus_database
from tests.support.citus_rules import layout, parse_migrations

pytestmark = pytest.mark.integration


def _rows(dsn: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    conn.close()
    return rows


_NOT_EXTENSION = (
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"
)


def test_no_trigger_and_no_function_is_left(pg_dsn: str) -> None:
    triggers = _rows(
        pg_dsn,
        "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE NOT t.tgisinternal AND n.nspname = 'public'" + _NOT_EXTENSION.format(oid="t.oid"),
    )
    assert triggers == []
    functions = _rows(
        pg_dsn,
        "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public'" + _NOT_EXTENSION.format(oid="p.oid"),
    )
    assert functions == []


def _tables(dsn: str) -> set[str]:
    rows = _rows(
        dsn,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        + _NOT_EXTENSION.format(oid="c.oid"),
    )
    return {str(r[0]) for r in rows}


def _unique_keys(dsn: str) -> dict[str, set[tuple[str, ...]]]:
    rows = _rows(
        dsn,
        "SELECT t.relname, array_agg(a.attname ORDER BY k.n) FROM pg_index i"
        " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
        " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum"
        " WHERE i.indisunique AND n.nspname = 'public' AND NOT t.relispartition"
        " GROUP BY t.relname, i.indexrelid",
    )
    keys: dict[str, set[tuple[str, ...]]] = {}
    for table, cols in rows:
        keys.setdefault(str(table), set()).add(tuple(cols))  # type: ignore[arg-type]
    return keys


def test_every_table_is_listed_in_distribute_sql(pg_dsn: str) -> None:
    plan = layout()
    missing = sorted(t for t in _tables(pg_dsn) if not plan.known(t))
    assert missing == [], f"add a line to deploy/citus/distribute.sql for {missing}"
    stale = sorted(t for t in [*plan.reference, *plan.distributed] if t not in _tables(pg_dsn))
    assert stale == []


def test_distributed_keys_hold_the_distribution_column(pg_dsn: str) -> None:
    plan = layout()
    keys = _unique_keys(pg_dsn)
    wrong = [
        (table, cols)
        for table, column in sorted(plan.distributed.items())
        for cols in sorted(keys.get(table, set()))
        if column not in cols
    ]
    assert wrong == []
    nullable = _rows(
        pg_dsn,
        "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND NOT a.attnotnull AND (c.relname, a.attname) IN ("
        + ", ".join(f"('{t}', '{c}')" for t, c in plan.distributed.items())
        + ")",
    )
    assert nullable == []  # Citus refuses NULL in a distribution column


def test_foreign_keys_are_ones_citus_allows(pg_dsn: str) -> None:
    plan = layout()
    rows = _rows(
        pg_dsn,
        "SELECT s.relname, t.relname,"
        " ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = s.oid"
        "  AND attnum = ANY(f.conkey)),"
        " ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = t.oid"
        "  AND attnum = ANY(f.confkey))"
        " FROM pg_constraint f JOIN pg_class s ON s.oid = f.conrelid"
        " JOIN pg_class t ON t.oid = f.confrelid"
        " WHERE f.contype = 'f' AND NOT s.relispartition AND f.conparentid = 0",
    )
    assert rows, "the schema has foreign keys (to the reference tables)"
    for source, target, cols, target_cols in rows:
        if source in plan.reference:
            assert target in plan.reference, (source, target)
        if source in plan.distributed and target in plan.distributed:
            assert cols == [plan.distributed[str(source)]], (source, target, cols)
            assert target_cols == [plan.distributed[str(target)]], (source, target)


def test_the_static_parser_reads_the_keys_the_server_has(pg_dsn: str) -> None:
    """tests/unit/test_citus_rules.py checks keys from the migration text: it must agree with
    what the migrations really leave, or it would check the wrong thing."""
    parsed = {t: set(k.values()) for t, k in parse_migrations().keys.items()}
    server = _unique_keys(pg_dsn)
    server.pop("schema_migrations", None)  # made by the migrator, not by a migration
    assert parsed == {t: server.get(t, set()) for t in _tables(pg_dsn) - {"schema_migrations"}}


if CITUS_DSN:  # collected only when a coordinator is named (docs/citus.md)

    def test_distribute_sql_run_twice_changes_nothing() -> None:
        """On the coordinator: a second run of deploy/citus/distribute.sql leaves every
        table's distribution, co-location, shards and the logs' privileges as they were."""
        assert CITUS_DSN is not None
        pg_admin_dsn = CITUS_DSN
        name = f"sealmark_test_{uuid.uuid4().hex[:12]}"
        dsn = with_dbname(pg_admin_dsn, name)
        create_citus_database(pg_admin_dsn, name, dsn, migrate=True)
        try:
            state = (
                "SELECT logicalrelid::text, partmethod, colocationid, repmodel,"
                " (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid)"
                " FROM pg_dist_partition p ORDER BY 1"
            )
            acl = (
                "SELECT relname, relacl::text FROM pg_class"
                " WHERE relname IN ('domain_events', 'tlog_entries') ORDER BY 1"
            )
            before = (_rows(dsn, state), _rows(dsn, acl))
            distribute(dsn)
            assert (_rows(dsn, state), _rows(dsn, acl)) == before
            plan = layout()
            kinds = {str(r[0]): (r[1], r[3]) for r in before[0]}
            assert all(kinds[t] == ("h", "s") for t in plan.distributed)
            assert all(kinds[t] == ("n", "t") for t in plan.reference)
            assert all("sealmark_service=ar/" in str(r[1]) for r in before[1])
        finally:
            drop_citus_database(pg_admin_dsn, name)
