"""Versioned schema migrations, applied at startup.

Files ``migrations/NNNN_name.sql`` are applied in version order, each in its own transaction,
while holding a PostgreSQL advisory lock, so several processes starting at once are safe: one
applies, the others wait and then find nothing to do. Each applied migration's SHA-256 is
recorded; if an applied file later changes, startup stops with :class:`MigrationError`. A
migration that fails is rolled back whole (PostgreSQL DDL is transactional) and raises
MigrationError naming the file. Files hold plain SQL without BEGIN/COMMIT; versions are never
reused and applied files are never edited: a change is a new file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg2

from sealmark.errors import FailedPrecondition
from sealmark.storage.postgres import connect, translate_db_error

# An arbitrary constant: the advisory lock id that serialises migrations.
_LOCK_ID = 0x5EA1_0001
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(FailedPrecondition):
    """The database's applied migrations disagree with this build's files, or one failed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations() -> list[Migration]:
    """This build's migrations, in version order."""
    found = []
    for entry in resources.files("sealmark.storage").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


def apply_migrations(dsn: str, migrations: list[Migration] | None = None) -> list[int]:
    """Apply what is missing; return the versions applied now (empty when up to date).

    Raises MigrationError on a checksum mismatch, Unavailable when the server is unreachable.
    """
    wanted = load_migrations() if migrations is None else migrations
    conn = connect(dsn, connect_timeout_s=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
            try:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                cur.execute("SELECT version, checksum FROM schema_migrations")
                applied = dict(cur.fetchall())
                done: list[int] = []
                for migration in wanted:
                    if migration.version in applied:
                        if applied[migration.version] != migration.checksum:
                            raise MigrationError(
                                f"migration {migration.filename} was changed after it was applied"
                                f" (recorded sha256 {applied[migration.version][:12]}…, file"
                                f" {migration.checksum[:12]}…); add a new migration instead"
                            )
                        continue
                    _apply_one(conn, migration)
                    done.append(migration.version)
                return done
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    except psycopg2.Error as exc:
        raise translate_db_error(exc) from exc
    finally:
        conn.close()


def _apply_one(conn: psycopg2.extensions.connection, migration: Migration) -> None:
    """Run one migration and record it in the same transaction: all of it or none of it."""
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(migration.sql)
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
        conn.commit()
    except psycopg2.Error as exc:
        conn.rollback()
        translated = translate_db_error(exc)
        if translated.retryable:
            raise translated from exc  # the server went away: retry later, not a bad file
        raise MigrationError(
            f"migration {migration.filename} failed and was rolled back: {str(exc).strip()}"
        ) from exc
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True
