"""The SQL of the tabular reports (:class:`audit.ports.ReportStore`), mixed into
:class:`audit.postgres.PostgresAuditStore`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from audit.domain import ACTIVE_STATES, SIGNATURE_REASONS, SUSPECT_VERDICTS
from sealmark.storage.postgres import PostgresUnitOfWork

_SCANS_WHERE = (
    "tenant_id = %(tenant)s"
    " AND (%(since)s::timestamptz IS NULL OR verified_at >= %(since)s)"
    " AND (%(until)s::timestamptz IS NULL OR verified_at < %(until)s)"
    " AND (%(region)s::text IS NULL OR region = %(region)s)"
)
_CODES_WHERE = (
    "tenant_id = %(tenant)s AND (%(gtin)s::text IS NULL OR gtin = %(gtin)s)"
    " AND (%(lot)s::text IS NULL OR lot = %(lot)s)"
)


class ReportQueries:
    _uow: PostgresUnitOfWork

    def _rows(self, sql: str, params: dict[str, Any]) -> list[list[Any]]:
        return [list(r) for r in self._uow.execute(sql, params)]

    def reconciliation(
        self, tenant_id: str, work_order: str, gtin: str | None, lot: str | None
    ) -> list[list[Any]]:
        # Through the work order's issue requests, read first: codes are indexed by request,
        # and on Citus the requests live on the tenant's shard, the codes on every shard,
        # which no join of the two reaches.
        requests = [
            r[0]
            for r in self._uow.execute(
                "SELECT request_id FROM issue_requests WHERE tenant_id = %s AND work_order = %s",
                (tenant_id, work_order),
            )
        ]
        if not requests:
            return []
        return self._rows(
            "SELECT coalesce(lot, ''), count(*),"
            " count(*) FILTER (WHERE state NOT IN ('allocated', 'scrapped', 'returned')),"
            " count(*) FILTER (WHERE state = 'scrapped'),"
            " count(*) FILTER (WHERE state = 'returned'),"
            " count(*) FILTER (WHERE state IN ('in_transit', 'received')),"
            " count(*) FILTER (WHERE state = 'allocated')"
            " FROM codes WHERE request_id = ANY(%(requests)s)"
            f" AND {_CODES_WHERE}"
            " GROUP BY 1 ORDER BY 1",
            {"tenant": tenant_id, "requests": requests, "gtin": gtin, "lot": lot},
        )

    def scans_by_region_day(
        self, tenant_id: str, since: datetime | None, until: datetime | None, region: str | None
    ) -> list[list[Any]]:
        return self._rows(
            "SELECT (verified_at AT TIME ZONE 'UTC')::date AS day, region,"
            " count(*) FILTER (WHERE verdict IN ('authentic', 'authentic_seen_before')),"
            " count(*) FILTER (WHERE verdict = ANY(%(suspect)s)),"
            " count(*) FILTER (WHERE NOT verdict IN ('authentic', 'authentic_seen_before')"
            "  AND NOT verdict = ANY(%(suspect)s)), count(*)"
            f" FROM scans WHERE {_SCANS_WHERE} GROUP BY 1, 2 ORDER BY 1, 2",
            {
                "tenant": tenant_id,
                "since": since,
                "until": until,
                "region": region,
                "suspect": list(SUSPECT_VERDICTS),
            },
        )

    def hotspots(
        self, tenant_id: str, since: datetime | None, until: datetime | None, region: str | None
    ) -> list[list[Any]]:
        return self._rows(
            # MATERIALIZED: each read on its own (on Citus scans and alerts share no shard).
            "WITH s AS MATERIALIZED (SELECT region,"
            "  count(*) FILTER (WHERE verdict = 'suspect_clone') c,"
            "  count(*) FILTER (WHERE verdict = 'counterfeit') f,"
            "  count(*) FILTER (WHERE verdict = 'diverted') d"
            f"  FROM scans WHERE {_SCANS_WHERE} GROUP BY region),"
            " a AS MATERIALIZED (SELECT coalesce(details ->> 'region', '') region,"
            "  count(*) n FROM alerts"
            "  WHERE tenant_id = %(tenant)s"
            "  AND (%(since)s::timestamptz IS NULL OR raised_at >= %(since)s)"
            "  AND (%(until)s::timestamptz IS NULL OR raised_at < %(until)s) GROUP BY 1)"
            " SELECT coalesce(s.region, a.region), coalesce(c, 0), coalesce(f, 0),"
            "  coalesce(d, 0), coalesce(n, 0) FROM s FULL JOIN a ON a.region = s.region"
            " WHERE coalesce(c, 0) + coalesce(f, 0) + coalesce(d, 0) + coalesce(n, 0) > 0"
            "  AND (%(region)s::text IS NULL OR coalesce(s.region, a.region) = %(region)s)"
            " ORDER BY 2 + 3 + 4 + 5 DESC, 1",
            {"tenant": tenant_id, "since": since, "until": until, "region": region},
        )

    def nearing_expiry(
        self, tenant_id: str, gtin: str | None, lot: str | None, today: date, horizon: date
    ) -> list[list[Any]]:
        return self._rows(
            "SELECT gtin, coalesce(lot, ''), expiry, coalesce(market, ''), count(*)"
            f" FROM codes WHERE {_CODES_WHERE} AND state = ANY(%(active)s)"
            " AND expiry >= %(today)s AND expiry <= %(horizon)s"
            " GROUP BY 1, 2, 3, 4 ORDER BY 3, 1, 2, 4",
            {
                "tenant": tenant_id,
                "gtin": gtin,
                "lot": lot,
                "active": list(ACTIVE_STATES),
                "today": today,
                "horizon": horizon,
            },
        )

    def serial_products(
        self, tenant_id: str, gtin: str | None
    ) -> list[tuple[str, str, int, int, int]]:
        # Serials minted from the letters of the alphabet's name are marked serial_scheme = 1
        # by migration 0014 (see sealmark/tenancy/alphabets.py).
        rows = self._uow.execute(
            # Counted per GTIN first, then joined (Citus runs no subquery per product).
            "WITH n AS MATERIALIZED (SELECT gtin, count(*) AS total,"
            "  count(*) FILTER (WHERE serial_scheme = 1) AS old FROM codes"
            "  WHERE tenant_id = %(tenant)s AND (%(gtin)s::text IS NULL OR gtin = %(gtin)s)"
            "  GROUP BY gtin)"
            " SELECT p.gtin, p.serial_alphabet, p.serial_length, coalesce(n.total, 0),"
            " coalesce(n.old, 0) FROM products p LEFT JOIN n ON n.gtin = p.gtin"
            " WHERE p.tenant_id = %(tenant)s"
            " AND (%(gtin)s::text IS NULL OR p.gtin = %(gtin)s) ORDER BY p.gtin",
            {"tenant": tenant_id, "gtin": gtin},
        )
        return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def verdict_mix(
        self, tenant_id: str, since: datetime | None, until: datetime | None
    ) -> list[list[Any]]:
        return self._rows(
            f"SELECT verdict, count(*) FROM scans WHERE {_SCANS_WHERE}"
            " GROUP BY 1 ORDER BY 2 DESC, 1",
            {"tenant": tenant_id, "since": since, "until": until, "region": None},
        )

    def unresolved_alerts(self, tenant_id: str) -> list[list[Any]]:
        return self._rows(
            "SELECT kind, coalesce(details ->> 'reason', '') = ANY(%(signature)s), status,"
            " count(*) FROM alerts WHERE tenant_id = %(tenant)s AND status <> 'resolved'"
            " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            {"tenant": tenant_id, "signature": list(SIGNATURE_REASONS)},
        )

    def recall_reach(self, tenant_id: str, limit: int) -> list[list[Any]]:
        # No correlated subqueries (a Citus coordinator plans CTEs, not those): the latest
        # recalls first, then their codes and the scans of those codes, each grouped once.
        return self._rows(
            "WITH r AS (SELECT recall_id, effective_at, reason FROM recalls"
            "  WHERE tenant_id = %(tenant)s ORDER BY effective_at DESC, recall_id"
            "  LIMIT %(limit)s),"
            " u AS (SELECT recall_id, count(*) AS units, count(DISTINCT market) AS markets"
            "  FROM recalled_units WHERE is_code AND recall_id IN (SELECT recall_id FROM r)"
            "  GROUP BY 1),"
            " s AS (SELECT u.recall_id, count(*) AS scans FROM recalled_units u"
            "  JOIN scans s ON s.code_key = u.unit_key JOIN r ON r.recall_id = u.recall_id"
            "  WHERE s.verified_at >= r.effective_at GROUP BY 1)"
            " SELECT r.recall_id, r.effective_at, r.reason, coalesce(u.units, 0),"
            " coalesce(u.markets, 0), coalesce(s.scans, 0)"
            " FROM r LEFT JOIN u USING (recall_id) LEFT JOIN s USING (recall_id)"
            " ORDER BY r.effective_at DESC, r.recall_id",
            {"tenant": tenant_id, "limit": limit},
        )
