"""PostgreSQL adapter of the Issuer's storage port (:mod:`issuer.ports`): the transaction, and
the keys, issuance requests and code rows. The SQL of line reports is in
:mod:`issuer.postgres_lines`. Driver errors become :mod:`sealmark.errors` through
:func:`sealmark.storage.postgres.translate_db_error`, as everywhere."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg2
import psycopg2.errors

from issuer.domain.records import CodeRow, IssueRequestRow, Minted, StoredKey
from issuer.postgres_lines import PgLineStore
from issuer.postgres_links import PgProductLinkStore
from sealmark.crypto.keys import SealedKey
from sealmark.errors import NotFound
from sealmark.storage.postgres import (
    PostgresDatabase,
    PostgresUnitOfWork,
    copy_value,
    is_duplicate_key,
    retrying,
    translate_db_error,
)
from sealmark.storage.postgres_repos import PgEvents, PgProducts, PgTenants

T = TypeVar("T")

# The per-code columns first, then those every code of one issuance chunk shares.
CODE_COLUMNS = (
    "code_key",
    "serial",
    "signature",
    "pin_hash",
    "seq",
    "tenant_id",
    "gtin",
    "lot",
    "expiry",
    "production_date",
    "state",
    "key_id",
    "work_order",
    "line_id",
    "request_id",
    "issued_at",
    "updated_at",
)


def copy_line_tail(values: tuple[Any, ...]) -> str:
    """The shared columns of a chunk (``CODE_COLUMNS[5:]``) in COPY text, once per chunk."""
    return "\t".join(map(copy_value, values))


def copy_line(code_key: str, serial: str, signature: str, pin_hash: bytes, seq: int) -> str:
    """The per-code columns (``CODE_COLUMNS[:5]``) in COPY text. The key and serial are
    CSET 82 and the signature base64url, none of which COPY needs to escape; checked anyway."""
    if _NEEDS_ESCAPE.isdisjoint(serial):
        return f"{code_key}\t{serial}\t{signature}\t\\\\x{pin_hash.hex()}\t{seq}"
    fields = (code_key, serial, signature, pin_hash, seq)
    return "\t".join(map(copy_value, fields))


_NEEDS_ESCAPE = frozenset("\\\t\n\r")


_KEY_COLUMNS = "key_id, public_key, private_key_pem, backend, token_label"


def _sealed(row: tuple[Any, ...]) -> SealedKey:
    pem = bytes(row[2]) if row[2] is not None else None
    return SealedKey(row[0], bytes(row[1]), pem, row[3], row[4])


class PostgresIssuerStorage:
    """The Issuer's storage on one PostgreSQL database (or a coordinator that speaks its
    SQL)."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    @contextmanager
    def transaction(self) -> Iterator[PostgresIssuerTransaction]:
        with self._database.unit_of_work() as uow:
            yield PostgresIssuerTransaction(uow)

    def retrying(self, fn: Callable[[], T]) -> T:
        return retrying(fn)


class PostgresIssuerTransaction:
    """One :class:`PostgresUnitOfWork` seen through the Issuer's port."""

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self._uow = uow
        self.issuance = PgIssuanceStore(uow)
        self.lines = PgLineStore(uow)
        self.links = PgProductLinkStore(uow)
        self.tenants: PgTenants = uow.tenants
        self.products: PgProducts = uow.products
        self.events: PgEvents = uow.events

    def commit(self) -> None:
        self._uow.commit()


class PgIssuanceStore:
    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self._uow = uow

    # -- keys ---------------------------------------------------------------------------
    def active_key(self, tenant_id: str) -> SealedKey:
        rows = self._uow.execute(
            f"SELECT {_KEY_COLUMNS} FROM signing_keys"
            " WHERE tenant_id = %s AND retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
            (tenant_id,),
        )
        if not rows:
            raise NotFound(f"tenant {tenant_id} has no signing key: run 'sealmark keys rotate'")
        return _sealed(rows[0])

    def sealed_key(self, tenant_id: str, key_id: str) -> SealedKey:
        rows = self._uow.execute(
            f"SELECT {_KEY_COLUMNS} FROM signing_keys WHERE tenant_id = %s AND key_id = %s",
            (tenant_id, key_id),
        )
        if not rows:
            raise NotFound(f"signing key {key_id} of tenant {tenant_id} not found")
        return _sealed(rows[0])

    def keys(self, tenant_id: str) -> list[StoredKey]:
        rows = self._uow.execute(
            "SELECT key_id, public_key, created_at, retired_at, revoked_at, revoke_reason"
            " FROM signing_keys WHERE tenant_id = %s ORDER BY created_at, key_id",
            (tenant_id,),
        )
        return [StoredKey(r[0], bytes(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def rotation(self, tenant_id: str, request_id: str) -> tuple[str, bool] | None:
        """(key id, whether it revoked its predecessor) of an earlier rotation with this id."""
        rows = self._uow.execute(
            "SELECT key_id, rotate_revokes FROM signing_keys"
            " WHERE tenant_id = %s AND rotate_request_id = %s",
            (tenant_id, request_id),
        )
        return (rows[0][0], bool(rows[0][1])) if rows else None

    def add_key(
        self,
        tenant_id: str,
        key: SealedKey,
        at: datetime,
        *,
        request_id: str | None = None,
        revoke_reason: str | None = None,
    ) -> str | None:
        """Store a new key and retire the previous active one (it keeps verifying), or, with
        ``revoke_reason``, revoke it too. Returns the id of the key retired, if any."""
        retired = self._uow.execute(
            "UPDATE signing_keys SET retired_at = %s,"
            " revoked_at = CASE WHEN %s::text IS NULL THEN NULL ELSE %s END,"
            " revoke_reason = %s"
            " WHERE tenant_id = %s AND retired_at IS NULL RETURNING key_id",
            (at, revoke_reason, at, revoke_reason, tenant_id),
        )
        self._uow.execute(
            "INSERT INTO signing_keys (tenant_id, key_id, public_key, private_key_pem, backend,"
            " token_label, created_at, rotate_request_id, rotate_revokes)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                tenant_id,
                key.key_id,
                key.public_key,
                key.private_key_pem,
                key.backend,
                key.token_label,
                at,
                request_id,
                revoke_reason is not None,
            ),
        )
        return str(retired[0][0]) if retired else None

    def revocation(self, tenant_id: str, key_id: str) -> tuple[datetime, str] | None:
        """When and why ``key_id`` was revoked; None while it is trusted."""
        rows = self._uow.execute(
            "SELECT revoked_at, revoke_reason FROM signing_keys"
            " WHERE tenant_id = %s AND key_id = %s AND revoked_at IS NOT NULL",
            (tenant_id, key_id),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def lock_tenant_keys(self, tenant_id: str) -> int:
        """Serialise key rotation per tenant; returns how many keys it has."""
        self._uow.execute("SELECT id FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,))
        return int(
            self._uow.execute(
                "SELECT count(*) FROM signing_keys WHERE tenant_id = %s", (tenant_id,)
            )[0][0]
        )

    # -- requests -----------------------------------------------------------------------
    def create_request(self, row: IssueRequestRow) -> bool:
        """Insert the request unless it exists; True when inserted now."""
        inserted = self._uow.execute(
            "INSERT INTO issue_requests (tenant_id, request_id, gtin, lot, expiry,"
            " production_date, quantity, line_id, work_order, key_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant_id, request_id) DO NOTHING RETURNING request_id",
            (
                row.tenant_id,
                row.request_id,
                row.gtin,
                row.lot,
                row.expiry,
                row.production_date,
                row.quantity,
                row.line_id,
                row.work_order,
                row.key_id,
            ),
        )
        return bool(inserted)

    def request(self, tenant_id: str, request_id: str, *, lock: bool = False) -> IssueRequestRow:
        rows = self._uow.execute(
            "SELECT tenant_id, request_id, gtin, lot, expiry, production_date, quantity, line_id,"
            " work_order, key_id, generated, created_at FROM issue_requests"
            " WHERE tenant_id = %s AND request_id = %s" + (" FOR UPDATE" if lock else ""),
            (tenant_id, request_id),
        )
        if not rows:
            raise NotFound(f"issuance request {request_id} not found")
        return IssueRequestRow(*rows[0])

    def set_generated(self, tenant_id: str, request_id: str, generated: int) -> None:
        self._uow.execute(
            "UPDATE issue_requests SET generated = %s WHERE tenant_id = %s AND request_id = %s",
            (generated, tenant_id, request_id),
        )

    def reserve_serials(self, gtin: str, count: int) -> int:
        """Add ``count`` to the GTIN's issued serials (locking its row); return the old total."""
        rows = self._uow.execute(
            "INSERT INTO serial_counts (gtin, issued) VALUES (%s, %s)"
            " ON CONFLICT (gtin) DO UPDATE SET issued = serial_counts.issued + EXCLUDED.issued"
            " RETURNING issued",
            (gtin, count),
        )
        return int(rows[0][0]) - count

    def issued_count(self, gtin: str) -> int:
        rows = self._uow.execute("SELECT issued FROM serial_counts WHERE gtin = %s", (gtin,))
        return int(rows[0][0]) if rows else 0

    # -- codes --------------------------------------------------------------------------
    def insert_codes(self, request: IssueRequestRow, minted: Minted) -> set[str]:
        """Insert the minted rows, given as COPY text (columns as ``CODE_COLUMNS``, one line
        per key in ``code_keys``); return the code keys NOT inserted because they exist
        already (serial collisions, about one per 10^4 draws at the EU FMD bound).

        The common case is one COPY straight into ``codes`` under a savepoint. Only when it
        hits a duplicate key are the rows COPYed into a per-session staging table and moved
        with INSERT … ON CONFLICT DO NOTHING, which tells which keys collided.
        """
        copy_text, code_keys = minted.copy_text, minted.code_keys
        columns = ", ".join(CODE_COLUMNS)
        try:
            with self._uow.connection.cursor() as cur:
                cur.execute("SAVEPOINT copy_codes")
                try:
                    cur.copy_expert(f"COPY codes ({columns}) FROM STDIN", io.StringIO(copy_text))
                except psycopg2.Error as exc:  # a duplicate key: Citus says XX000, not 23505
                    if not is_duplicate_key(exc):
                        raise
                    cur.execute("ROLLBACK TO SAVEPOINT copy_codes")
                else:
                    cur.execute("RELEASE SAVEPOINT copy_codes")
                    return set()
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS codes_stage"
                    " (LIKE codes INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                cur.copy_expert(f"COPY codes_stage ({columns}) FROM STDIN", io.StringIO(copy_text))
                cur.execute(
                    f"INSERT INTO codes ({columns}) SELECT {columns} FROM codes_stage"
                    " ON CONFLICT (code_key) DO NOTHING RETURNING code_key"
                )
                inserted = {r[0] for r in cur.fetchall()}
                cur.execute("TRUNCATE codes_stage")
        except psycopg2.Error as exc:
            raise translate_db_error(exc) from exc
        return set(code_keys) - inserted

    def state_counts(self, tenant_id: str, request_id: str) -> dict[str, int]:
        rows = self._uow.execute(
            "SELECT state, count(*) FROM codes WHERE tenant_id = %s AND request_id = %s"
            " GROUP BY state",
            (tenant_id, request_id),
        )
        return {state: int(count) for state, count in rows}

    def codes(self, tenant_id: str, request_id: str, start: int, stop: int) -> list[CodeRow]:
        rows = self._uow.execute(
            "SELECT seq, serial, signature FROM codes WHERE tenant_id = %s AND request_id = %s"
            " AND seq >= %s AND seq < %s ORDER BY seq",
            (tenant_id, request_id, start, stop),
        )
        return [CodeRow(*r) for r in rows]
