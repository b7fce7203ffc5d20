"""PostgreSQL adapter: connection pool, unit of work, and the one place where driver errors
become Sealmark errors.

Translation (``translate_db_error``):

=====================================================  ===================
SQLSTATE / driver condition                            Sealmark error
=====================================================  ===================
40001 serialization failure, 40P01 deadlock            Aborted (retry)
08xxx, 57P0x, OperationalError/InterfaceError (no      Unavailable (retry)
SQLSTATE: connection refused, lost, timed out)
23505 unique violation                                 AlreadyExists
23503 foreign key violation                            NotFound
22xxx data exception, 23514 check violation            InvalidArgument
57014 query cancelled (statement timeout)              Unavailable
=====================================================  ===================
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.pool

from sealmark.errors import (
    Aborted,
    AlreadyExists,
    InvalidArgument,
    NotFound,
    SealmarkError,
    Unavailable,
)

T = TypeVar("T")
Connection = psycopg2.extensions.connection


def translate_db_error(exc: psycopg2.Error) -> SealmarkError | psycopg2.Error:
    """Map a driver error to the Sealmark error tree; unknown errors are returned unchanged."""
    code = getattr(exc, "pgcode", None) or ""
    detail = (getattr(exc, "pgerror", None) or str(exc)).strip().splitlines()[0:1]
    message = detail[0] if detail else type(exc).__name__
    if code in ("40001", "40P01"):
        return Aborted(f"concurrent update conflict, retry: {message}")
    if code.startswith("08") or code.startswith("57P") or code == "57014":
        return Unavailable(f"database unavailable: {message}")
    if not code and isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return Unavailable(f"database unavailable: {message}")
    if code == "23505":
        return AlreadyExists(message)
    if code == "23503":
        return NotFound(message)
    if code.startswith("22") or code == "23514":
        return InvalidArgument("database", message)
    return exc


def connect(
    dsn: str, *, connect_timeout_s: float = 3.0, statement_timeout_ms: int = 0
) -> Connection:
    """One connection. Raises Unavailable if the server cannot be reached in time."""
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
        raise Unavailable(f"cannot connect to PostgreSQL: {str(exc).strip()}") from exc
    return conn


def retrying(fn: Callable[[], T], *, attempts: int = 5, base_delay_s: float = 0.01) -> T:
    """Run ``fn`` again on Aborted/Unavailable, with jittered exponential backoff.

    ``fn`` must keep no state between attempts (build a fresh unit of work inside it).
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (Aborted, Unavailable):
            if attempt == attempts:
                raise
            time.sleep(base_delay_s * (2 ** (attempt - 1)) * (0.5 + random.random()))  # noqa: S311
    raise AssertionError("unreachable")


class PostgresDatabase:
    """Owns the pool. Thread-safe; connections are made lazily, never at construction."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 8,
        connect_timeout_s: float = 3.0,
        statement_timeout_ms: int = 5000,
    ) -> None:
        self.dsn = dsn
        self._size = pool_size
        self._connect_timeout = connect_timeout_s
        self._statement_timeout = statement_timeout_ms
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._slots = threading.BoundedSemaphore(pool_size)
        self._lock = threading.Lock()

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = psycopg2.pool.ThreadedConnectionPool(
                    # minconn = maxconn: psycopg2 closes returned connections beyond minconn.
                    self._size,
                    self._size,
                    self.dsn,
                    connect_timeout=max(1, round(self._connect_timeout)),
                    options=f"-c statement_timeout={self._statement_timeout}",
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=3,
                    keepalives_count=3,
                    application_name="sealmark",
                )
            return self._pool

    def acquire(self) -> Connection:
        """Borrow a connection (waits for a free slot up to the connect timeout)."""
        if not self._slots.acquire(timeout=max(self._connect_timeout, 1.0)):
            raise Unavailable("no free database connection (pool exhausted)")
        try:
            conn: Connection = self._get_pool().getconn()
        except psycopg2.Error as exc:
            self._slots.release()
            raise Unavailable(f"cannot connect to PostgreSQL: {str(exc).strip()}") from exc
        except BaseException:
            self._slots.release()
            raise
        return conn

    def release(self, conn: Connection, *, broken: bool) -> None:
        """Give a connection back; a broken one is closed and dropped, not reused."""
        try:
            pool = self._get_pool()
            pool.putconn(conn, close=broken or bool(conn.closed))
        finally:
            self._slots.release()

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self)

    def ping(self) -> None:
        """Raises Unavailable unless a trivial query succeeds."""
        with self.unit_of_work() as uow:
            uow.execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None


class PostgresUnitOfWork:
    """One transaction on a pooled connection. Rolls back unless ``commit()`` was called."""

    def __init__(self, database: PostgresDatabase) -> None:
        from sealmark.storage import postgres_repos as repos

        self._database = database
        self._conn: Connection | None = None
        self.tenants = repos.PgTenants(self)
        self.products = repos.PgProducts(self)
        self.tokens = repos.PgTokens(self)
        self.events = repos.PgEvents(self)

    def __enter__(self) -> Self:
        self._conn = self._database.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        broken = bool(conn.closed)
        if not broken:
            try:
                conn.rollback()  # no-op after commit; discards anything uncommitted
            except psycopg2.Error:
                broken = True
        self._database.release(conn, broken=broken)

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._conn

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (empty for statements without a result)."""
        try:
            with self.connection.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description is not None else []
        except psycopg2.Error as exc:
            raise translate_db_error(exc) from exc

    def commit(self) -> None:
        try:
            self.connection.commit()
        except psycopg2.Error as exc:
            raise translate_db_error(exc) from exc

    def rollback(self) -> None:
        try:
            self.connection.rollback()
        except psycopg2.Error as exc:
            raise translate_db_error(exc) from exc
