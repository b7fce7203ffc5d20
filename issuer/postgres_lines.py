"""PostgreSQL adapter of the Issuer's :class:`issuer.ports.LineStore`: line reports,
reconciliation, lot holds and SSCC ranges."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sealmark.storage.postgres import PostgresUnitOfWork


class PgLineStore:
    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self._uow = uow

    def stored_summary(self, tenant_id: str, batch_id: str) -> dict[str, Any] | None:
        rows = self._uow.execute(
            "SELECT summary FROM report_batches WHERE tenant_id = %s AND batch_id = %s",
            (tenant_id, batch_id),
        )
        return dict(rows[0][0]) if rows else None

    def store_summary(
        self, tenant_id: str, batch_id: str, kind: str, summary: dict[str, Any]
    ) -> None:
        self._uow.execute(
            "INSERT INTO report_batches (tenant_id, batch_id, kind, summary)"
            " VALUES (%s, %s, %s, %s)",
            (tenant_id, batch_id, kind, json.dumps(summary)),
        )

    def lock_codes(self, tenant_id: str, keys: list[str]) -> dict[str, tuple[str, str, str]]:
        """code_key → (state, lot, request_id) for the tenant's codes among ``keys``, locked."""
        # An UPDATE that changes nothing locks the rows and reads their latest version, as
        # FOR UPDATE does (which Citus refuses over several shards).
        rows = self._uow.execute(
            "UPDATE codes SET state = state WHERE code_key = ANY(%s) AND tenant_id = %s"
            " RETURNING code_key, state, coalesce(lot, ''), coalesce(request_id, '')",
            (keys, tenant_id),
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def lot_facts(self, tenant_id: str, keys: list[str]) -> dict[str, tuple[str, date | None]]:
        """serial → (lot, expiry) of the tenant's codes among ``keys`` (one GTIN)."""
        rows = self._uow.execute(
            "SELECT serial, coalesce(lot, ''), expiry FROM codes"
            " WHERE code_key = ANY(%s) AND tenant_id = %s",
            (keys, tenant_id),
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def packed(self, keys: list[str]) -> dict[str, str]:
        """code_key → the unit it is packed in, for those of ``keys`` that are packed, and
        code_key → "" for those that hold units themselves (the Aggregator's containment)."""
        rows = self._uow.execute(
            "SELECT child_key, parent_key FROM containment WHERE child_key = ANY(%s)"
            " UNION ALL SELECT DISTINCT parent_key, '' FROM containment"
            " WHERE parent_key = ANY(%s)",
            (keys, keys),
        )
        return {r[0]: r[1] for r in rows}

    def outstanding(self, tenant_id: str, request_id: str) -> list[str]:
        rows = self._uow.execute(
            "SELECT serial FROM codes WHERE tenant_id = %s AND request_id = %s"
            " AND state = 'allocated' ORDER BY seq",
            (tenant_id, request_id),
        )
        return [r[0] for r in rows]

    def set_state(self, keys: list[str], state: str, at: datetime) -> None:
        if keys:
            self._uow.execute(
                "UPDATE codes SET state = %s, updated_at = %s WHERE code_key = ANY(%s)",
                (state, at, keys),
            )
            # Containment carries each contained unit's state (migration 0008): kept here.
            self._uow.execute(
                "UPDATE containment SET state = %s WHERE child_key = ANY(%s)", (state, keys)
            )

    def held_lots(self, gtin: str, lots: list[str]) -> set[str]:
        rows = self._uow.execute(
            "SELECT lot FROM lot_holds WHERE gtin = %s AND lot = ANY(%s) AND held",
            (gtin, lots),
        )
        return {r[0] for r in rows}

    def set_hold(
        self, tenant_id: str, gtin: str, lot: str, held: bool, reason: str, at: datetime, by: str
    ) -> None:
        self._uow.execute(
            "INSERT INTO lot_holds (gtin, lot, tenant_id, held, reason, changed_at, changed_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (gtin, lot) DO UPDATE SET"
            " held = EXCLUDED.held, reason = EXCLUDED.reason, changed_at = EXCLUDED.changed_at,"
            " changed_by = EXCLUDED.changed_by",
            (gtin, lot, tenant_id, held, reason, at, by),
        )

    def recalled_lot(self, tenant_id: str, gtin: str, lot: str) -> bool:
        """Whether Audit recalled the lot (its hold is then final)."""
        rows = self._uow.execute(
            "SELECT 1 FROM recalls WHERE tenant_id = %s AND scope ->> 'kind' = 'lot'"
            " AND scope ->> 'gtin' = %s AND scope ->> 'lot' = %s LIMIT 1",
            (tenant_id, gtin, lot),
        )
        return bool(rows)

    def reconcile(self, tenant_id: str, work_order: str) -> tuple[int, dict[str, int]]:
        """(number of pools, codes per state) for a work order: its requests first, then
        their codes (on Citus the requests live on the tenant's shard, the codes on every
        shard, which no join of the two reaches)."""
        requests = [
            r[0]
            for r in self._uow.execute(
                "SELECT request_id FROM issue_requests WHERE tenant_id = %s AND work_order = %s",
                (tenant_id, work_order),
            )
        ]
        if not requests:
            return 0, {}
        rows = self._uow.execute(
            "SELECT state, count(*) FROM codes WHERE tenant_id = %s AND request_id = ANY(%s)"
            " GROUP BY state",
            (tenant_id, requests),
        )
        return len(requests), {state: int(count) for state, count in rows}

    def allocation(self, tenant_id: str, request_id: str) -> tuple[str, int, int, int] | None:
        rows = self._uow.execute(
            "SELECT company_prefix, extension_digit, first_reference, quantity"
            " FROM sscc_allocations WHERE tenant_id = %s AND request_id = %s",
            (tenant_id, request_id),
        )
        return (rows[0][0], int(rows[0][1]), int(rows[0][2]), int(rows[0][3])) if rows else None

    def reserve_references(
        self, tenant_id: str, request_id: str, prefix: str, extension: int, quantity: int
    ) -> int:
        """Reserve ``quantity`` serial references; return the first. One row update per range."""
        first = (
            int(
                self._uow.execute(
                    "INSERT INTO sscc_counters (company_prefix, extension_digit, next_reference)"
                    " VALUES (%s, %s, %s) ON CONFLICT (company_prefix, extension_digit) DO UPDATE"
                    " SET next_reference = sscc_counters.next_reference + EXCLUDED.next_reference"
                    " RETURNING next_reference",
                    (prefix, extension, quantity),
                )[0][0]
            )
            - quantity
        )
        self._uow.execute(
            "INSERT INTO sscc_allocations (tenant_id, request_id, company_prefix,"
            " extension_digit, first_reference, quantity) VALUES (%s, %s, %s, %s, %s, %s)",
            (tenant_id, request_id, prefix, extension, first, quantity),
        )
        return first
