"""PostgreSQL adapter: connection pool, unit of work, and the one place where driver errors
become Sealmark errors.

Translation (``translate_db_error``), the only mapping of driver errors in Sealmark:

=====================================================  ===================
SQLSTATE / driver condition                            Sealmark error
=====================================================  ===================
40001 serialization failure, 40P01 deadlock,           Aborted (retry)
55P03 lock not available
08xxx connection, 53xxx resources, 57P0x shutdown,     Unavailable (retry)
57014 cancelled (statement timeout), and
OperationalError/InterfaceError without SQLSTATE
(connection refused, lost, timed out, closed)
23505 unique violation (and Citus's XX000 "duplicate   AlreadyExists
key value violates unique constraint")
23503 foreign key: referenced row missing              NotFound
23503 foreign key: row still referenced                FailedPrecondition
22xxx data exception, 23502 not null, 23514 check      InvalidArgument
anything else (a bug: syntax, undefined column …;     StorageFault (INTERNAL,
0A000 a feature the backend lacks, e.g. Citus)        SQLSTATE only shown)
=====================================================  ===================

Nothing here connects at import or construction: the pool opens connections on first use.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.pool

from sealmark.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SealmarkError,
    StorageFault,
    Unavailable,
)
from sealmark.storage.postgres_repos import (
    PgClientCerts,
    PgEvents,
    PgProducts,
    PgTenants,
    PgTokens,
)

T = TypeVar("T")
S = TypeVar("S")
Connection = psycopg2.extensions.connection


_CITUS_DUPLICATE = "duplicate key value violates unique constraint"


def is_duplicate_key(exc: psycopg2.Error) -> bool:
    """A unique violation: SQLSTATE 23505, or the XX000 a Citus coordinator raises when a
    worker refused a duplicate key (a COPY into a distributed table)."""
    code = getattr(exc, "pgcode", None) or ""
    if code == "XX000":
        return _CITUS_DUPLICATE in (getattr(exc, "pgerror", None) or str(exc))
    return code == "23505"


def translate_db_error(exc: psycopg2.Error) -> SealmarkError:
    """Map a driver error to the Sealmark error tree (see the module table).

    Use as ``raise translate_db_error(exc) from exc``. An error outside the table becomes a
    StorageFault (INTERNAL, its SQLSTATE in the message, the server's text kept for the log):
    it is a bug or a missing backend feature, not a condition callers can act on.
    """
    code = getattr(exc, "pgcode", None) or ""
    detail = (getattr(exc, "pgerror", None) or str(exc)).strip().splitlines()[0:1]
    message = detail[0] if detail else type(exc).__name__
    if code in ("40001", "40P01", "55P03"):
        return Aborted(f"concurrent update conflict, retry: {message}")
    if code[:2] in ("08", "53") or code.startswith("57P") or code == "57014":
        return Unavailable(f"database unavailable: {message}")
    if not code and isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return Unavailable(f"database unavailable: {message}")
    if is_duplicate_key(exc):
        return AlreadyExists(message)
    if code == "23503":
        if "still referenced" in (getattr(exc.diag, "message_detail", None) or ""):
            return FailedPrecondition(message)
        return NotFound(message)
    if code.startswith("22") or code in ("23502", "23514"):
        column = getattr(exc.diag, "column_name", None) or "database"
        return InvalidArgument(column, message)
    return StorageFault(code, message)


def connect(
    dsn: str, *, connect_timeout_s: float = 3.0, statement_timeout_ms: int = 0
) -> Connection:
    """One connection outside the pool (migrations, admin). Raises Unavailable if the server
    cannot be reached within ``connect_timeout_s``."""
    options = f"-c statement_timeout={statement_timeout_ms}" if statement_timeout_ms else ""
    try:
        conn: Connection = psycopg2.connect(
            dsn,
            connect_timeout=max(1, round(connect_timeout_s)),
            options=options,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=3,
            keepalives_count=3,
            application_name="sealmark",
        )
    except psycopg2.Error as exc:
        raise translate_db_error(exc) from exc
    return conn


def retrying(fn: Callable[[], T], *, attempts: int = 5, base_delay_s: float = 0.01) -> T:
    """Call ``fn``; on a retryable error (Aborted, Unavailable) call it again after a jittered
    exponential backoff, at most ``attempts`` calls in all; the last error propagates.

    ``fn`` must keep no state between attempts (it opens its own unit of work). A commit lost
    with the connection raises Unavailable with an unknown outcome, so ``fn`` must also be
    safe to run twice (idempotent by request id, as Sealmark writes are).
    """
    if attempts < 1:
        raise ValueError(f"attempts: {attempts}, want >= 1")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except SealmarkError as exc:
            if not exc.retryable or attempt == attempts:
                raise
            time.sleep(base_delay_s * (2 ** (attempt - 1)) * (0.5 + random.random()))  # noqa: S311
    raise AssertionError("unreachable")


class PostgresDatabase:
    """Owns the pool of one DSN. Thread-safe; connections are made lazily, never at construction.

    Every connection carries ``connect_timeout`` and ``statement_timeout``, and TCP keepalives,
    so a dead or hung server gives Unavailable within a bounded time instead of a hang. At most
    ``pool_size`` connections exist; a caller waits up to ``acquire_timeout_s`` for a free one.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 8,
        connect_timeout_s: float = 3.0,
        statement_timeout_ms: int = 5000,
        acquire_timeout_s: float | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size: {pool_size}, want >= 1")
        self.dsn = dsn
        self._size = pool_size
        self._connect_timeout = connect_timeout_s
        self._statement_timeout = statement_timeout_ms
        self._acquire_timeout = acquire_timeout_s or max(connect_timeout_s, 1.0)
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._slots = threading.BoundedSemaphore(pool_size)
        self._lock = threading.Lock()

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                # A Citus coordinator plans a statement over several shards only with its
                # parameters bound (a generic plan fails: "could not create distributed
                # plan"), and never picks a generic plan of its own: there the default
                # plan_cache_mode is both correct and what force_generic_plan is for here.
                plans = "" if self._is_citus() else " -c plan_cache_mode=force_generic_plan"
                pool = psycopg2.pool.ThreadedConnectionPool(
                    0,  # open nothing now: the first unit of work connects
                    self._size,
                    self.dsn,
                    connect_timeout=max(2, round(self._connect_timeout)),
                    # Only execute_prepared statements are affected: their plans must not
                    # depend on one call's array sizes (a custom plan for 1,440 keys picks a
                    # hash join over every partition of codes; the generic plan probes the
                    # primary key per key, whatever the table's size).
                    # random_page_cost: the default 4 prices a disk seek; on SSD or cached data
                    # it made a recursive walk of containment scan the whole table (5 ms)
                    # instead of probing the parent index per case (0.3 ms).
                    options=f"-c statement_timeout={self._statement_timeout}{plans}"
                    " -c random_page_cost=1.1",
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=3,
                    keepalives_count=3,
                    application_name="sealmark",
                )
                # psycopg2 keeps at most ``minconn`` idle connections and closes the rest on
                # return; keep them all (the semaphore bounds how many exist).
                pool.minconn = self._size
                self._pool = pool
            return self._pool

    def _is_citus(self) -> bool:
        """Whether the database is a Citus coordinator's (one probe, when the pool opens)."""
        conn = psycopg2.connect(
            self.dsn,
            connect_timeout=max(2, round(self._connect_timeout)),
            application_name="sealmark",
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
                return cur.fetchone() is not None
        finally:
            conn.close()

    def acquire(self) -> Connection:
        """Borrow a connection. Raises Unavailable when none frees up in time or the server
        cannot be reached."""
        if not self._slots.acquire(timeout=self._acquire_timeout):
            raise Unavailable("no free database connection (pool exhausted)")
        try:
            conn: Connection = self._get_pool().getconn()
        except psycopg2.Error as exc:
            self._slots.release()
            raise translate_db_error(exc) from exc
        except BaseException:
            self._slots.release()
            raise
        return conn

    def release(self, conn: Connection, *, broken: bool) -> None:
        """Give a connection back; a broken one is closed and dropped, never reused."""
        try:
            with self._lock:
                pool = self._pool
            if pool is None:  # closed meanwhile
                conn.close()
            else:
                try:
                    pool.putconn(conn, close=broken or bool(conn.closed))
                except psycopg2.pool.PoolError:  # from a pool closed and reopened meanwhile
                    conn.close()
        finally:
            self._slots.release()

    def unit_of_work(self) -> PostgresUnitOfWork:
        """A new unit of work (it borrows a connection only when entered)."""
        return PostgresUnitOfWork(self)

    def reads(self) -> PostgresUnitOfWork:
        """A unit of work for reads only: each statement is its own transaction (autocommit),
        which saves the BEGIN/ROLLBACK round trip of a one-statement lookup on a hot path.
        Nothing is written through it (``commit`` refuses)."""
        return PostgresUnitOfWork(self, reads_only=True)

    def ping(self) -> None:
        """Return if a trivial query succeeds; raise Unavailable otherwise."""
        with self.unit_of_work() as uow:
            uow.execute("SELECT 1")

    def close(self) -> None:
        """Close every connection. The object stays usable: the next unit of work reconnects."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.closeall()


# Names of the statements prepared on each connection (prepared statements live as long as
# the session, whatever becomes of the transaction that prepared them).
_PREPARED: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()


class PostgresUnitOfWork:
    """One transaction on a pooled connection (READ COMMITTED unless the caller issues
    ``SET TRANSACTION`` first). Leaving the block without ``commit()`` rolls back; a connection
    that broke is discarded, not returned to the pool. Not reentrant: one ``with`` at a time."""

    def __init__(self, database: PostgresDatabase, *, reads_only: bool = False) -> None:
        self._database = database
        self._reads_only = reads_only
        self._conn: Connection | None = None
        self._deferred: list[bytes] = []  # statements to send in front of the next one
        self.tenants = PgTenants(self)
        self.products = PgProducts(self)
        self.tokens = PgTokens(self)
        self.client_certs = PgClientCerts(self)
        self.events = PgEvents(self)

    def __enter__(self) -> Self:
        if self._conn is not None:
            raise RuntimeError("unit of work entered twice")
        self._conn = self._database.acquire()
        if self._reads_only:
            self._conn.autocommit = True  # a client-side switch: no round trip when idle
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        self._deferred.clear()
        if conn is None:
            return
        broken = bool(conn.closed)
        if not broken:
            try:
                if self._reads_only:
                    conn.autocommit = False
                else:
                    conn.rollback()  # no-op after commit; discards anything uncommitted
            except psycopg2.Error:
                broken = True
        self._database.release(conn, broken=broken)

    @property
    def connection(self) -> Connection:
        """The transaction's raw connection, for bulk work (execute_values, COPY), with the
        deferred statements sent first. Driver errors raised through it must be passed to
        :func:`translate_db_error`."""
        conn = self._connection()
        if self._deferred:
            self.execute("SELECT 1")
        return conn

    def _connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._conn

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement, after the deferred ones (same round trip); return its rows
        (empty for statements without a result)."""
        try:
            with self._connection().cursor() as cur:
                if self._deferred:
                    query = b"; ".join([*self._deferred, cur.mogrify(sql, params)])
                    self._deferred.clear()  # sent, whatever the outcome
                    cur.execute(query)
                else:
                    cur.execute(sql, params)
                return cur.fetchall() if cur.description is not None else []
        except psycopg2.Error as exc:
            raise translate_db_error(exc) from exc

    def defer(self, sql: str, params: Any = None) -> None:
        """Send ``sql`` later, in front of this unit's next statement (or its commit) and in
        the same round trip: for statements whose result no one reads (SAVEPOINT, an insert
        without RETURNING). Statements keep their order. An error of a deferred statement is
        raised by that next statement; a rollback drops what is still unsent."""
        with self._connection().cursor() as cur:
            self._deferred.append(cur.mogrify(sql, params))

    def execute_prepared(
        self, name: str, sql: str, params: tuple[Any, ...]
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` (with ``$1``… placeholders, typed by casts) as the server-side prepared
        statement ``name``, prepared once per connection. For hot statements on the
        partitioned tables, where planning costs more than running (16 partitions)."""
        return self.execute(self._prepared(name, sql, params), params)

    def defer_prepared(self, name: str, sql: str, params: tuple[Any, ...]) -> None:
        """:meth:`execute_prepared`, sent later like :meth:`defer`."""
        self.defer(self._prepared(name, sql, params), params)

    def _prepared(self, name: str, sql: str, params: tuple[Any, ...]) -> str:
        """The EXECUTE of ``name`` for ``params``, preparing ``sql`` as ``name`` first if this
        connection has not yet (PREPARE is not transactional: it is sent at once)."""
        conn = self._connection()
        prepared = _PREPARED.setdefault(conn, set())
        if name not in prepared:
            try:
                with conn.cursor() as cur:
                    cur.execute(f"PREPARE {name} AS {sql}")
            except psycopg2.Error as exc:
                raise translate_db_error(exc) from exc
            prepared.add(name)
        marks = ", ".join(["%s"] * len(params))
        return f"EXECUTE {name} ({marks})" if params else f"EXECUTE {name}"

    def commit(self) -> None:
        """Make this unit's writes durable. Raises Aborted on a serialization failure found at
        commit, Unavailable if the connection is lost (the outcome is then unknown)."""
        if self._reads_only:
            raise RuntimeError("a reads() unit of work writes nothing: use unit_of_work()")
        conn = self.connection  # sends what is deferred
        try:
            conn.commit()
        except psycopg2.Error as exc:
            raise translate_db_error(exc) from exc

    def rollback(self) -> None:
        """Discard this unit's writes; the unit stays usable for a new transaction."""
        self._deferred.clear()
        try:
            self._connection().rollback()
        except psycopg2.Error as exc:
            raise translate_db_error(exc) from exc


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_value(value: Any) -> str:
    """One field in PostgreSQL COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


class StoreOpener(Generic[S]):
    """What every service's PostgreSQL storage does the same way: open its store over a unit of
    work of one database. ``store(uow, writable)`` makes the service's store.

    ``transaction()`` commits when the block exits normally and rolls back when it raises;
    ``reads()`` gives an autocommit, read-only store (``writable`` False);
    ``retrying(fn)`` runs ``fn`` again after Aborted (see :func:`retrying`)."""

    def __init__(
        self, database: PostgresDatabase, store: Callable[[PostgresUnitOfWork, bool], S]
    ) -> None:
        self._db = database
        self._store = store

    @contextmanager
    def transaction(self) -> Iterator[S]:
        with self._db.unit_of_work() as uow:
            yield self._store(uow, True)
            uow.commit()

    @contextmanager
    def reads(self) -> Iterator[S]:
        with self._db.reads() as uow:
            yield self._store(uow, False)

    def retrying(self, fn: Callable[[], T]) -> T:
        return retrying(fn)
