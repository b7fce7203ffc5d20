"""The PostgreSQL adapter against real servers: the system one and the embedded one."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from sealmark.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StorageFault,
    Unavailable,
)
from sealmark.storage.embedded import EmbeddedServers
from sealmark.storage.migrate import Migration, MigrationError, apply_migrations, load_migrations
from sealmark.storage.ports import UnitOfWorkFactory
from sealmark.storage.postgres import PostgresDatabase, PostgresUnitOfWork, connect, retrying
from sealmark.tenancy.model import Product
from tests.pg_fixtures import create_database, drop_database
from tests.storage_contract import StorageContract, gtin_under, tenant

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["system", "embedded"])
def server_admin_dsn(request: pytest.FixtureRequest, system_pg_dsn: str | None) -> str:
    if request.param == "system":
        if system_pg_dsn is None:
            # No system server on this machine: the embedded one stands in, so the suite still
            # runs against a real server (recorded in the test id, never skipped).
            servers: EmbeddedServers = request.getfixturevalue("embedded_servers")
            return servers.database_url
        return system_pg_dsn
    servers = request.getfixturevalue("embedded_servers")
    return servers.database_url


@pytest.fixture(scope="module")
def database(server_admin_dsn: str) -> Iterator[PostgresDatabase]:
    dsn = create_database(server_admin_dsn)
    db = PostgresDatabase(dsn, pool_size=4)
    yield db
    db.close()
    drop_database(server_admin_dsn, dsn)


class TestPostgresStorage(StorageContract):
    @pytest.fixture
    def uow_factory(self, database: PostgresDatabase) -> UnitOfWorkFactory:
        return database.unit_of_work


def _tables(dsn: str) -> set[str]:
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in cur.fetchall()}


def test_migrations_on_empty_database_then_rerun(server_admin_dsn: str) -> None:
    dsn = create_database(server_admin_dsn, migrate=False)
    try:
        assert "tenants" not in _tables(dsn)
        applied = apply_migrations(dsn)
        assert applied == [m.version for m in load_migrations()]
        assert {"tenants", "products", "api_tokens", "domain_events", "codes"} <= _tables(dsn)
        assert apply_migrations(dsn) == []
        with connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT version, checksum FROM schema_migrations ORDER BY version")
            assert cur.fetchall() == [(m.version, m.checksum) for m in load_migrations()]
    finally:
        drop_database(server_admin_dsn, dsn)


def test_changed_migration_is_detected(pg_dsn: str) -> None:
    changed = [Migration(m.version, m.name, m.sql + "\n-- edited\n") for m in load_migrations()]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(pg_dsn, changed)


def test_migrations_from_four_processes_at_once(pg_admin_dsn: str) -> None:
    dsn = create_database(pg_admin_dsn, migrate=False)
    code = (
        "import sys; from sealmark.storage.migrate import apply_migrations;"
        " print(len(apply_migrations(sys.argv[1])))"
    )
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, dsn],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], results
        counts = sorted(int(out.strip()) for out, _ in results)
        assert counts == [0, 0, 0, len(load_migrations())]
        with connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [r[0] for r in cur.fetchall()] == [m.version for m in load_migrations()]
    finally:
        drop_database(pg_admin_dsn, dsn)


def test_domain_events_are_append_only(pg_dsn: str) -> None:
    """By privilege (migration 0018, no trigger: Citus cannot distribute a table with one):
    the services' role appends and reads the event log and the transparency log, and can
    neither change nor remove a row of them. Checked as a login member of that role, as the
    services connect (on Citus the coordinator reaches the workers as that user)."""
    with connect(pg_dsn) as admin, admin.cursor() as cur:
        admin.autocommit = True
        with contextlib.suppress(psycopg2.errors.DuplicateObject):
            cur.execute("CREATE ROLE sealmark_test_writer LOGIN IN ROLE sealmark_service")
    admin.close()
    with psycopg2.connect(pg_dsn, user="sealmark_test_writer") as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO domain_events (tenant_id, kind, subject, occurred_at)"
            " VALUES ('t', 'k', 's', now()) RETURNING id"
        )
        event_id = cur.fetchone()[0]  # type: ignore[index]
        conn.commit()
        cur.execute("SELECT count(*) FROM domain_events WHERE id = %s", (event_id,))
        assert cur.fetchone() == (1,)
        for statement in (
            "UPDATE domain_events SET kind = 'x' WHERE id = %s",
            "DELETE FROM domain_events WHERE id = %s",
            "TRUNCATE domain_events",
            "UPDATE tlog_entries SET data = 'x' WHERE idx = %s",
            "DELETE FROM tlog_entries WHERE idx = %s",
            "TRUNCATE tlog_entries",
        ):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="permission denied"):
                cur.execute(statement, (event_id,))
            conn.rollback()
        # What the services do write, they may: queue and consume the log's queue.
        cur.execute("INSERT INTO tlog_queue (tenant_id, event_id) VALUES ('t', %s)", (event_id,))
        cur.execute("DELETE FROM tlog_queue WHERE tenant_id = 't' RETURNING event_id")
        assert cur.fetchall() == [(event_id,)]


def test_failed_migration_is_rolled_back_whole(pg_dsn: str) -> None:
    broken = Migration(9999, "broken", "CREATE TABLE half_done (x int);\nSELECT no_such_column;")
    with pytest.raises(MigrationError, match=r"9999_broken\.sql failed"):
        apply_migrations(pg_dsn, [*load_migrations(), broken])
    assert "half_done" not in _tables(pg_dsn)
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM schema_migrations WHERE version = 9999")
        assert cur.fetchone() == (0,)


def test_codes_table_is_hash_partitioned_with_key_check(pg_dsn: str) -> None:
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT partstrat, partnatts FROM pg_partitioned_table"
            " WHERE partrelid = 'codes'::regclass"
        )
        assert cur.fetchone() == ("h", 1)
        cur.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'codes'::regclass")
        assert cur.fetchone() == (16,)
        cur.execute(
            "INSERT INTO codes (code_key, tenant_id, gtin, serial, state)"
            " VALUES ('09520123456788ABC', 't', '09520123456788', 'ABC', 'allocated')"
        )
        cur.execute("SELECT pg_get_partkeydef('codes'::regclass)")
        assert cur.fetchone() == ("HASH (code_key)",)
        cur.execute(
            "SELECT tableoid::regclass::text FROM codes WHERE code_key = %s", ("09520123456788ABC",)
        )
        assert cur.fetchone()[0].startswith("codes_p")  # type: ignore[index]
        bad_rows = [
            ("wrong", "09520123456788", "XYZ"),  # key is not gtin || serial
            # a 13-digit GTIN is space-padded by char(14) and || drops the padding, so this
            # row's key would collide with ('09520123456788', 'X'): the GTIN CHECK refuses it
            ("09520123456788X", "0952012345678", "8X"),
            ("09520123456788" + "S" * 21, "09520123456788", "S" * 21),  # serial over 20
        ]
        for key, gtin, serial in bad_rows:
            cur.execute("SAVEPOINT s")
            with pytest.raises(psycopg2.errors.CheckViolation):
                cur.execute(
                    "INSERT INTO codes (code_key, tenant_id, gtin, serial, state)"
                    " VALUES (%s, 't', %s, %s, 'allocated')",
                    (key, gtin, serial),
                )
            cur.execute("ROLLBACK TO SAVEPOINT s")
        conn.rollback()


def test_duplicate_is_already_exists(database: PostgresDatabase) -> None:
    with database.unit_of_work() as uow:
        uow.execute("CREATE TEMP TABLE d (k int PRIMARY KEY)")
        uow.execute("INSERT INTO d VALUES (1)")
        with pytest.raises(AlreadyExists):
            uow.execute("INSERT INTO d VALUES (1)")


def test_serialization_failure_is_aborted_and_retrying_recovers(pg_dsn: str) -> None:
    db = PostgresDatabase(pg_dsn, pool_size=4)
    try:
        with db.unit_of_work() as setup:
            setup.execute("CREATE TABLE IF NOT EXISTS counter (id int PRIMARY KEY, n int)")
            setup.execute("INSERT INTO counter VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET n = 0")
            setup.commit()
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def bump() -> None:
            with db.unit_of_work() as uow:
                uow.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                uow.execute("SELECT n FROM counter WHERE id = 1")
                barrier.wait(timeout=10)
                try:
                    uow.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
                    uow.commit()
                except BaseException as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=bump) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(errors) == 1 and isinstance(errors[0], Aborted), errors

        calls = {"n": 0}

        def flaky() -> str:
            calls["n"] += 1
            if calls["n"] < 3:
                raise Aborted("conflict")
            return "done"

        assert retrying(flaky) == "done" and calls["n"] == 3
    finally:
        db.close()


def test_driver_errors_are_translated_in_one_place(database: PostgresDatabase) -> None:
    with database.unit_of_work() as uow:
        with pytest.raises(InvalidArgument):
            uow.execute("SELECT 1 / 0")  # 22012
        uow.rollback()
        with pytest.raises(StorageFault) as fault:  # a bug: named, the SQLSTATE only shown
            uow.execute("SELEC 1")
        assert fault.value.sqlstate == "42601"
        assert str(fault.value) == "storage fault (SQLSTATE 42601)"
        assert "SELEC" in fault.value.detail
        assert isinstance(fault.value.__cause__, psycopg2.errors.SyntaxError)
        uow.rollback()
        with pytest.raises(NotFound):  # 23503, the referenced row is missing
            uow.execute(
                "INSERT INTO products (gtin, tenant_id, name, pack_level, serial_alphabet,"
                " serial_length, pin_length) VALUES ('09520000000003', 'ghost', 'n', 'item',"
                " 'numeric', 12, 6)"
            )


def test_a_citus_duplicate_key_is_already_exists(database: PostgresDatabase) -> None:
    """A Citus coordinator reports a worker's duplicate key as XX000 with PostgreSQL's own
    message; raised here by the real server with that SQLSTATE and text."""
    citus = (
        "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE ="
        " 'duplicate key value violates unique constraint \"codes_pkey_102008\"'; END $$"
    )
    other = "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE = 'lost a shard'; END $$"
    with database.unit_of_work() as uow:
        with pytest.raises(AlreadyExists, match="duplicate key value"):
            uow.execute(citus)
        uow.rollback()
        with pytest.raises(StorageFault) as fault:  # any other XX000 stays a fault
            uow.execute(other)
        assert fault.value.sqlstate == "XX000"
        uow.rollback()
        with pytest.raises(AlreadyExists):
            uow.execute("CREATE TEMP TABLE t_dup (k int PRIMARY KEY)")
            uow.execute("INSERT INTO t_dup VALUES (1), (1)")  # the ordinary 23505


def test_deleting_a_referenced_row_is_failed_precondition(database: PostgresDatabase) -> None:
    a = tenant()
    gtin = gtin_under(a.company_prefixes[0])
    with database.unit_of_work() as uow:
        uow.tenants.add(a)
        uow.products.add(Product(a.id, gtin, "Tonic"))
        uow.execute("DELETE FROM tenant_prefixes WHERE tenant_id = %s", (a.id,))
        with pytest.raises(FailedPrecondition):  # 23503, the row is still referenced
            uow.execute("DELETE FROM tenants WHERE id = %s", (a.id,))


def test_statement_timeout_is_unavailable_within_the_deadline(pg_dsn: str) -> None:
    db = PostgresDatabase(pg_dsn, pool_size=1, statement_timeout_ms=200)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable), db.unit_of_work() as uow:
            uow.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 2
        db.ping()  # the connection survived the cancelled statement
    finally:
        db.close()


def test_retrying_makes_conflicting_writers_both_succeed(pg_dsn: str) -> None:
    db = PostgresDatabase(pg_dsn, pool_size=4)
    try:
        with db.unit_of_work() as setup:
            setup.execute("CREATE TABLE IF NOT EXISTS tally (id int PRIMARY KEY, n int)")
            setup.execute("INSERT INTO tally VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET n = 0")
            setup.commit()
        barrier = threading.Barrier(2)
        attempts: list[int] = []

        def bump() -> None:
            with db.unit_of_work() as uow:
                attempts.append(1)
                uow.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                uow.execute("SELECT n FROM tally WHERE id = 1")
                if len(attempts) <= 2:
                    barrier.wait(timeout=10)  # first round: both read before either writes
                uow.execute("UPDATE tally SET n = n + 1 WHERE id = 1")
                uow.commit()

        threads = [threading.Thread(target=retrying, args=(bump,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        with db.unit_of_work() as uow:
            assert uow.execute("SELECT n FROM tally WHERE id = 1") == [(2,)]
        assert len(attempts) == 3  # one of the two conflicted once and was retried
    finally:
        db.close()


def test_pool_is_lazy_and_bounded(pg_dsn: str) -> None:
    db = PostgresDatabase(pg_dsn, pool_size=1, acquire_timeout_s=0.3)
    name = psycopg2.extensions.parse_dsn(pg_dsn)["dbname"]

    def sessions() -> int:
        with connect(pg_dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'sealmark' AND pid <> pg_backend_pid()",
                (name,),
            )
            return int(cur.fetchone()[0])  # type: ignore[index]

    try:
        before = sessions()
        db2 = PostgresDatabase(pg_dsn, pool_size=8)
        assert sessions() == before  # constructing connects nothing
        db2.ping()
        assert sessions() == before + 1  # first use opens one connection, not eight
        db2.close()
        with db.unit_of_work(), pytest.raises(Unavailable, match="pool exhausted"):
            db.unit_of_work().__enter__()
    finally:
        db.close()


def test_unreachable_server_is_unavailable_quickly() -> None:
    started = time.monotonic()
    db = PostgresDatabase("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=2)
    with pytest.raises(Unavailable):
        db.ping()
    assert time.monotonic() - started < 10


def test_connection_broken_mid_transaction_is_discarded(pg_dsn: str) -> None:
    db = PostgresDatabase(pg_dsn, pool_size=1)
    try:
        with pytest.raises(Unavailable), db.unit_of_work() as uow:
            pid = uow.execute("SELECT pg_backend_pid()")[0][0]
            uow.execute("CREATE TEMP TABLE scratch (x int)")
            with connect(pg_dsn) as admin, admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            time.sleep(0.2)
            uow.execute("INSERT INTO scratch VALUES (1)")
        with db.unit_of_work() as uow:  # the only pool slot got a fresh connection
            assert uow.execute("SELECT pg_backend_pid()")[0][0] != pid
    finally:
        db.close()


def test_broken_idle_connection_is_discarded(pg_dsn: str) -> None:
    db = PostgresDatabase(pg_dsn, pool_size=1)
    try:
        with db.unit_of_work() as uow:
            pid = uow.execute("SELECT pg_backend_pid()")[0][0]
        with connect(pg_dsn) as admin, admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)
        with pytest.raises(Unavailable), db.unit_of_work() as uow:
            uow.execute("SELECT 1")
        with db.unit_of_work() as uow:  # the pool of one made a fresh connection
            assert uow.execute("SELECT 1") == [(1,)]
            assert uow.execute("SELECT pg_backend_pid()")[0][0] != pid
    finally:
        db.close()


def test_unit_of_work_outside_block_is_an_error(database: PostgresDatabase) -> None:
    uow = PostgresUnitOfWork(database)
    with pytest.raises(RuntimeError):
        uow.execute("SELECT 1")


class _Recording:
    """A connection (or cursor) that records each query it sends: one per round trip."""

    def __init__(self, inner: Any, sent: list[bytes]) -> None:
        self._inner = inner
        self._sent = sent

    def cursor(self) -> _Recording:
        return _Recording(self._inner.cursor(), self._sent)

    def __enter__(self) -> _Recording:
        return self

    def __exit__(self, *_: object) -> None:
        self._inner.close()

    def execute(self, query: str | bytes, params: object = None) -> None:
        self._sent.append(self._inner.mogrify(query, params))
        self._inner.execute(query, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _round_trips(uow: PostgresUnitOfWork, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The queries ``uow`` sends from now on."""
    sent: list[bytes] = []
    recording = _Recording(uow.connection, sent)
    monkeypatch.setattr(uow, "_connection", lambda: recording)
    return sent


def test_deferred_statements_travel_with_the_next_one_in_order(
    database: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    with database.unit_of_work() as uow:
        uow.execute("CREATE TEMP TABLE later (n int, note text)")
        sent = _round_trips(uow, monkeypatch)
        uow.defer("INSERT INTO later VALUES (1, %s)", ("100%; it's 'quoted'",))
        uow.defer("INSERT INTO later VALUES (2, 'two')")
        assert sent == []  # nothing has left yet
        rows = uow.execute("SELECT n, note FROM later WHERE n >= %s ORDER BY n", (1,))
        assert rows == [(1, "100%; it's 'quoted'"), (2, "two")]
        assert len(sent) == 1  # one round trip carried all three
        uow.defer("INSERT INTO later VALUES (3, 'three')")
        uow.commit()  # what is deferred is sent before the commit
        assert len(sent) == 2 and sent[1].startswith(b"INSERT INTO later VALUES (3")
        assert uow.execute("SELECT count(*) FROM later") == [(3,)]


def test_a_deferred_error_is_raised_by_the_next_statement(database: PostgresDatabase) -> None:
    with database.unit_of_work() as uow:
        uow.execute("CREATE TEMP TABLE later_pk (k int PRIMARY KEY)")
        uow.execute("INSERT INTO later_pk VALUES (1)")
        uow.execute("SAVEPOINT s")
        uow.defer("INSERT INTO later_pk VALUES (1)")  # a duplicate, not seen yet
        with pytest.raises(AlreadyExists):
            uow.execute("SELECT 1")
        uow.execute("ROLLBACK TO SAVEPOINT s")  # the failed statement was sent: not again
        assert uow.execute("SELECT count(*) FROM later_pk") == [(1,)]


def test_rollback_drops_what_is_deferred(database: PostgresDatabase) -> None:
    with database.unit_of_work() as uow:
        uow.execute("CREATE TABLE IF NOT EXISTS later_kept (n int)")
        uow.execute("TRUNCATE later_kept")
        uow.commit()
        uow.defer("INSERT INTO later_kept VALUES (1)")
        uow.rollback()
        uow.execute("INSERT INTO later_kept VALUES (2)")
        uow.commit()
        assert uow.execute("SELECT n FROM later_kept") == [(2,)]
    with database.unit_of_work() as uow:
        uow.defer("INSERT INTO later_kept VALUES (3)")  # left unsent at the block's end
    with database.unit_of_work() as uow:
        assert uow.execute("SELECT n FROM later_kept") == [(2,)]
        uow.execute("DROP TABLE later_kept")
        uow.commit()


def test_deferred_prepared_statement_and_raw_connection(database: PostgresDatabase) -> None:
    with database.unit_of_work() as uow:
        uow.execute("CREATE TEMP TABLE later_prep (n int)")
        uow.defer_prepared("later_prep_add", "INSERT INTO later_prep VALUES ($1::int)", (7,))
        with uow.connection.cursor() as cur:  # the raw connection sends what is deferred first
            cur.execute("SELECT n FROM later_prep")
            assert cur.fetchall() == [(7,)]
