"""Citus compatibility, checked without Citus (issue 20): the migrations and the SQL the
adapters send follow the rules of docs/citus.md, and every table is listed in
deploy/citus/distribute.sql. The planted cases show that each rule does fail."""

from __future__ import annotations

import re

import pytest

from tests.support import citus_rules
from tests.support.citus_rules import (
    DISTRIBUTE_SQL,
    Layout,
    adapter_sql,
    layout,
    migration_files,
    migration_violations,
    parse_layout,
    sql_in_source,
    sql_violations,
)


def test_distribute_sql_lists_the_layout() -> None:
    plan = layout()
    assert plan.distributed["codes"] == "code_key"
    assert plan.distributed["containment"] == "child_key"
    assert plan.distributed["domain_events"] == "tenant_id"
    assert {"tenants", "products", "api_tokens"} <= plan.reference
    assert plan.local == {"schema_migrations"}
    assert not set(plan.distributed) & plan.reference
    assert plan.groups["scans"] == plan.groups["codes"] == "codes"
    assert plan.groups["alerts"] == plan.groups["domain_events"] == "domain_events"
    assert set(plan.groups) == set(plan.distributed)


def test_distribute_sql_is_one_guarded_line_per_table() -> None:
    """Idempotent by construction: each call runs only while its table is not yet what the
    line makes it; one line per table, so adding a table is adding a line."""
    calls = [
        line
        for line in DISTRIBUTE_SQL.read_text("utf-8").splitlines()
        if re.match(r"SELECT create_(reference|distributed)_table", line)
    ]
    plan = layout()
    assert len(calls) == len(plan.reference) + len(plan.distributed)
    for line in calls:
        table = re.search(r"_table\('(\w+)'", line).group(1)  # type: ignore[union-attr]
        assert f"WHERE logicalrelid = '{table}'::regclass AND " in line, line
        assert "WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition" in line, line
    heads = ("'codes', 'code_key'", "'domain_events', 'tenant_id'")
    for line in calls:
        if "create_distributed_table" in line and not any(h in line for h in heads):
            assert re.search(r"colocate_with => '(codes|domain_events)'", line), line


def test_the_migrations_keep_the_citus_rules() -> None:
    assert migration_violations() == []


def test_the_adapters_sql_keeps_the_citus_rules() -> None:
    assert sql_violations() == []


def test_the_adapters_sql_is_collected() -> None:
    """The rules see the statements that matter: hot reads, locks, the walks."""
    statements = [sql for _, sql in adapter_sql()]
    assert len(statements) > 100
    joined = "\n".join(" ".join(s.split()) for s in statements)
    for expected in (
        "FROM codes WHERE code_key IN (",  # verify by code
        "SELECT parent_key FROM containment WHERE child_key = $1::text",  # parent of code
        "UPDATE codes SET state = state WHERE code_key = ANY(%s)",  # line report locks
        "INSERT INTO tlog_queue",  # the trigger's replacement
        "FROM tlog_heads WHERE tenant_id = %s FOR UPDATE",  # a conditional clause
    ):
        assert expected in joined, expected


PLAN = Layout(frozenset({"tenants"}), {"codes": "code_key", "events": "tenant_id"}, frozenset())
BASE = (
    1,
    "0001_base.sql",
    "CREATE TABLE tenants (id text PRIMARY KEY);"
    " CREATE TABLE codes (code_key text PRIMARY KEY, tenant_id text REFERENCES tenants (id));"
    " CREATE TABLE events (id bigint, tenant_id text, PRIMARY KEY (tenant_id, id));",
)


def test_a_clean_planted_schema_passes() -> None:
    assert migration_violations([BASE], PLAN) == []


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "CREATE TRIGGER t AFTER INSERT ON codes FOR EACH ROW EXECUTE FUNCTION f();",
            "creates a trigger",
        ),
        (
            "CREATE FUNCTION f(p text) RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;",
            "creates a SQL function",
        ),
        ("CREATE TABLE links (k text PRIMARY KEY);", "table links is not listed"),
        (
            "ALTER TABLE events DROP CONSTRAINT events_pkey, ADD PRIMARY KEY (id);",
            "key events_pkey (id) lacks the distribution column tenant_id",
        ),
        (
            "CREATE UNIQUE INDEX codes_serial ON codes (tenant_id, code_key, x);"
            " CREATE UNIQUE INDEX events_kind ON events (kind);",
            "key events_kind (kind) lacks the distribution column tenant_id",
        ),
        (
            "ALTER TABLE events ADD CONSTRAINT events_once UNIQUE (id);",
            "key events_once (id) lacks",
        ),
        (
            "CREATE TABLE tenants2 (id text PRIMARY KEY, c text REFERENCES codes (code_key));",
            "not listed",
        ),
        (
            "CREATE VIEW v AS WITH RECURSIVE r(k) AS (SELECT 1 UNION SELECT k FROM r) SELECT 1;",
            "creates a recursive CTE",
        ),
    ],
)
def test_a_planted_migration_violation_fails(sql: str, expected: str) -> None:
    planted = (30, "0030_planted.sql", sql)
    found = migration_violations([BASE, planted], PLAN)
    assert any(expected in v for v in found), found


def test_a_trigger_dropped_later_still_counts_only_while_defined() -> None:
    """An old migration's trigger is fine once a later one drops it; one left is not."""
    old = (
        8,
        "0008_old.sql",
        "CREATE TRIGGER t1 AFTER UPDATE ON codes FOR EACH STATEMENT EXECUTE FUNCTION f();",
    )
    assert migration_violations([BASE, old], PLAN) == [
        "trigger t1 is still defined after the migrations"
    ]
    dropped = (18, "0018_drop.sql", "DROP TRIGGER t1 ON codes;")
    assert migration_violations([BASE, old, dropped], PLAN) == []


def test_a_foreign_key_between_distributed_tables_off_their_columns_fails() -> None:
    plan = Layout(frozenset(), {"codes": "code_key", "scans": "code_key"}, frozenset())
    files = [
        (1, "0001.sql", "CREATE TABLE codes (code_key text PRIMARY KEY, id text UNIQUE);"),
        (
            2,
            "0002.sql",
            "CREATE TABLE scans (code_key text, v text, c text REFERENCES codes (id),"
            " PRIMARY KEY (code_key, v));",
        ),
    ]
    found = migration_violations(files, plan)
    assert any("scans.c references distributed codes(id)" in v for v in found), found


SOURCE = """
_WALK = "WITH RECURSIVE up(k) AS (SELECT parent_key FROM containment) SELECT k FROM up"

class Store:
    def lock(self, keys, lock):
        locking = " FOR UPDATE" if lock else ""
        self._uow.execute("SELECT state FROM codes WHERE code_key = ANY(%s)" + locking, (keys,))

    def one(self, key):
        self._uow.execute("SELECT state FROM codes WHERE code_key = %s FOR UPDATE", (key,))

    def move(self, old, new):
        self._uow.execute("UPDATE containment SET child_key = %s WHERE child_key = %s", (new, old))

    def chain(self, key):
        self._uow.execute_prepared("c", "SELECT aggregation_chain($1::text)", (key,))

    def other(self):
        self._uow.execute("SELECT count(*) FROM webhook_outbox")

    def counts(self, t, w):
        self._uow.execute("SELECT c.state FROM issue_requests r JOIN codes c"
                          " ON c.request_id = r.request_id WHERE r.tenant_id = %s", (t,))

    def upsert(self, v):
        self._uow.execute("INSERT INTO scans (code_key, v) VALUES (%s, %s)"
                          " ON CONFLICT (v) DO NOTHING", (v, v))
"""


@pytest.mark.parametrize(
    "expected",
    [
        "_WALK: a recursive CTE",
        ":7: FOR UPDATE/SHARE on codes without code_key = <one value>",
        ":13: UPDATE sets containment.child_key, its distribution column",
        ":16: calls the SQL function aggregation_chain",
        ":19: table webhook_outbox is not listed",
        ":22: one statement over tables of different co-location groups (codes, events)",
        ":26: ON CONFLICT (v) on scans lacks code_key",
    ],
)
def test_planted_adapter_sql_violations_fail(expected: str) -> None:
    plan = Layout(
        frozenset(),
        {
            "codes": "code_key",
            "containment": "child_key",
            "scans": "code_key",
            "issue_requests": "tenant_id",
        },
        frozenset(),
        {"codes": "codes", "containment": "codes", "scans": "codes", "issue_requests": "events"},
    )
    found = sql_violations(sql_in_source(SOURCE, "planted.py"), plan, {"aggregation_chain"})
    assert any(expected in v for v in found), found
    # The lock by one key (line 10) is allowed: one shard.
    assert not any(":10:" in v for v in found), found


def test_the_parser_reads_every_migration() -> None:
    """Each migration file is read (a file the parser skipped would escape every rule)."""
    names = [name for _, name, _ in migration_files()]
    assert names[0] == "0001_foundation.sql"
    assert "0019_distribution_keys.sql" in names
    assert "codes" in citus_rules.parse_migrations().keys


def test_parse_layout_ignores_comments() -> None:
    text = (
        "-- SELECT create_reference_table('example')\n"
        "SELECT create_reference_table('tenants') WHERE NOT EXISTS (x);\n"
        "SELECT create_distributed_table('codes', 'code_key') WHERE NOT EXISTS (x);\n"
        "-- Local (coordinator only): schema_migrations, other.\n"
    )
    plan = parse_layout(text)
    assert plan.reference == {"tenants"}
    assert plan.distributed == {"codes": "code_key"}
    assert plan.local == {"schema_migrations", "other"}
