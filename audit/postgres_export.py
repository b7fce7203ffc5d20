"""The PostgreSQL adapter of :class:`audit.ports.ExportStorage`: recorded events in order,
streamed with a server-side cursor so a ten-million-event export never holds more than one
batch in memory."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import date, datetime

import psycopg2

from audit.ports import HistoryRow, Recorded
from audit.postgres import PostgresAuditStore
from sealmark.epcis.recorded import KINDS
from sealmark.storage.postgres import PostgresDatabase, PostgresUnitOfWork, translate_db_error
from sealmark.tenancy.model import Tenant

__all__ = ["FETCH_ROWS", "PostgresExportReader", "PostgresExportStorage", "Recorded"]

EXPORTED = KINDS
FETCH_ROWS = 2000


class PostgresExportStorage:
    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    @contextmanager
    def snapshot(self) -> Iterator[PostgresExportReader]:
        # A transaction, not reads(): a server-side cursor lives inside one.
        with self._db.unit_of_work() as uow:
            yield PostgresExportReader(uow)


class PostgresExportReader:
    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self._uow = uow
        self._units = PostgresAuditStore(uow)

    def tenant(self, tenant_id: str) -> Tenant:
        return self._uow.tenants.get(tenant_id)

    def owns_unit(self, tenant_id: str, key: str) -> bool:
        return self._units.owns_unit(tenant_id, key)

    def containment_history(self, keys: list[str]) -> list[HistoryRow]:
        return self._units.containment_history(keys)

    def events(
        self, tenant_id: str, since: datetime | None, until: datetime | None
    ) -> Generator[Recorded, None, None]:
        """The tenant's exportable events recorded in [since, until), oldest first. Close the
        generator before the unit of work ends: that closes the server-side cursor."""
        cursor = self._uow.connection.cursor(name="epcis_export")
        cursor.itersize = FETCH_ROWS
        try:
            try:
                cursor.execute(
                    "SELECT id, kind, coalesce(request_id, ''), occurred_at, payload, subject"
                    " FROM domain_events WHERE tenant_id = %s AND kind = ANY(%s)"
                    " AND (%s::timestamptz IS NULL OR occurred_at >= %s)"
                    " AND (%s::timestamptz IS NULL OR occurred_at < %s) ORDER BY id",
                    (tenant_id, list(EXPORTED), since, since, until, until),
                )
                for row in cursor:
                    yield Recorded(int(row[0]), row[1], row[2], row[3], row[4], row[5])
            except psycopg2.Error as exc:
                raise translate_db_error(exc) from exc
        finally:
            cursor.close()

    def lot_facts(
        self, tenant_id: str, gtin: str, serials: list[str]
    ) -> dict[str, tuple[str, date | None]]:
        """serial → (lot, expiry) for a commissioning batch's ILMD."""
        rows = self._uow.execute(
            "SELECT serial, coalesce(lot, ''), expiry FROM codes"
            " WHERE tenant_id = %s AND code_key = ANY(%s)",
            (tenant_id, [gtin + s for s in serials]),
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def recalled(self, recall_id: str) -> list[str]:
        rows = self._uow.execute(
            "SELECT unit_key FROM recalled_units WHERE recall_id = %s ORDER BY unit_key",
            (recall_id,),
        )
        return [r[0] for r in rows]

    def lot_units(self, tenant_id: str, gtin: str, lot: str) -> set[str]:
        """The lot's codes and every unit that ever held one of them (walked up the history
        one level per statement: a unit's parents live on other shards on Citus)."""
        rows = self._uow.execute(
            "SELECT code_key FROM codes WHERE tenant_id = %s AND gtin = %s AND lot = %s",
            (tenant_id, gtin, lot),
        )
        return self._closure(
            {r[0] for r in rows},
            "SELECT DISTINCT parent_key FROM containment_history"
            " WHERE unit_key = ANY(%s) AND parent_key IS NOT NULL",
        )

    def descendants_ever(self, keys: list[str]) -> set[str]:
        """Every unit that was ever inside one of ``keys``, at any depth (and ``keys``)."""
        return self._closure(
            set(keys),
            "SELECT DISTINCT unit_key FROM containment_history WHERE parent_key = ANY(%s)",
        )

    def _closure(self, start: set[str], step: str) -> set[str]:
        """``start`` and everything ``step`` (one array parameter) reaches from it."""
        found = set(start)
        frontier = sorted(found)
        while frontier:
            rows = self._uow.execute(step, (frontier,))
            frontier = sorted({r[0] for r in rows} - found)
            found.update(frontier)
        return found
