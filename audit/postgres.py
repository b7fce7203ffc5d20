"""The PostgreSQL adapter of :class:`audit.ports.AuditStorage`: alerts, the reads behind
Trace, recalls (the report queries are in :mod:`audit.postgres_reports`). Every query is
scoped by tenant; a row of another tenant is indistinguishable from a missing one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from audit.domain import (
    RECALLABLE,
    SIGNATURE_REASONS,
    Alert,
    AlertStatus,
    RecallScope,
    Resolution,
    alert_kind,
)
from audit.ports import CodeFacts, EventRow, HistoryRow, RecallCounts, ScanRow
from audit.postgres_reports import ReportQueries
from sealmark.events import NewEvent
from sealmark.storage.postgres import PostgresDatabase, PostgresUnitOfWork, StoreOpener
from sealmark.storage.postgres_outbox import write_outbox
from sealmark.webhooks.events import OutboxEvent

_ALERT_COLUMNS = (
    "id, kind, status, code_key, details, raised_at, note, acknowledged_at, resolved_at,"
    " resolution, changed_by"
)


def _alert(row: tuple[Any, ...]) -> Alert:
    details = {str(k): str(v) for k, v in (row[4] or {}).items()}
    return Alert(
        id=int(row[0]),
        kind=alert_kind(row[1], details),
        status=AlertStatus(row[2]),
        code_key=row[3],
        region=details.pop("region", ""),
        raised_at=row[5],
        details=details,
        note=row[6] or "",
        acknowledged_at=row[7],
        resolved_at=row[8],
        resolution=Resolution(row[9]) if row[9] else None,
        actor=row[10] or "",
    )


class PostgresAuditStorage(StoreOpener["PostgresAuditStore"]):
    """:class:`audit.ports.AuditStorage` on a :class:`PostgresDatabase`."""

    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(database, lambda uow, writable: PostgresAuditStore(uow, writable))


class PostgresAuditStore(ReportQueries):
    """:class:`audit.ports.AuditStore` in one unit of work."""

    def __init__(self, uow: PostgresUnitOfWork, writable: bool = True) -> None:
        self._uow = uow
        self._writable = writable

    def _writes(self) -> PostgresUnitOfWork:
        if not self._writable:
            raise RuntimeError("a reads() store writes nothing: use transaction()")
        return self._uow

    # -- alerts -------------------------------------------------------------------------
    def alert(self, tenant_id: str, alert_id: int, lock: bool = False) -> Alert | None:
        rows = self._uow.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE tenant_id = %s AND id = %s"
            + (" FOR UPDATE" if lock else ""),  # one shard: alerts by tenant_id
            (tenant_id, alert_id),
        )
        return _alert(rows[0]) if rows else None

    def alerts(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        kinds: list[str] | None = None,
        signature: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        code_key: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Newest first. ``signature`` (see :func:`audit.domain.signature_alerts`) tells
        forged-signature alerts from other counterfeit ones, which share a stored kind."""
        where: list[str] = ["tenant_id = %s"]
        params: list[Any] = [tenant_id]
        if signature is not None:
            negate = "" if signature else "NOT "
            where.append(f"{negate}coalesce(details ->> 'reason', '') = ANY(%s)")
            params.append(list(SIGNATURE_REASONS))
        for clause, value in (
            ("status = %s", status),
            ("kind = ANY(%s)", kinds),
            ("raised_at >= %s", since),
            ("raised_at < %s", until),
            ("code_key = %s", code_key),
            ("id < %s", before_id),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self._uow.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)}"
            " ORDER BY id DESC LIMIT %s",
            (*params, limit),
        )
        return [_alert(r) for r in rows]

    def alerts_after(self, tenant_id: str, after_id: int, limit: int) -> list[Alert]:
        """Oldest first, ids above ``after_id``."""
        rows = self._uow.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE tenant_id = %s AND id > %s"
            " ORDER BY id LIMIT %s",
            (tenant_id, after_id, limit),
        )
        return [_alert(r) for r in rows]

    def alerts_by_id(self, tenant_id: str, ids: list[int]) -> list[Alert]:
        rows = self._uow.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE tenant_id = %s AND id = ANY(%s)"
            " ORDER BY id",
            (tenant_id, ids),
        )
        return [_alert(r) for r in rows]

    def last_alert_id(self, tenant_id: str) -> int:
        rows = self._uow.execute(
            "SELECT coalesce(max(id), 0) FROM alerts WHERE tenant_id = %s", (tenant_id,)
        )
        return int(rows[0][0])

    def set_alert_status(
        self,
        alert_id: int,
        status: AlertStatus,
        note: str | None,
        resolution: Resolution | None,
        actor: str,
        at: datetime,
    ) -> None:
        stamp = "acknowledged_at" if status is AlertStatus.ACKNOWLEDGED else "resolved_at"
        self._writes().execute(
            f"UPDATE alerts SET status = %s, note = coalesce(%s, note), resolution = %s,"
            f" changed_by = %s, changed_at = %s, {stamp} = %s WHERE id = %s",
            (
                status.value,
                note,
                resolution.value if resolution else None,
                actor,
                at,
                at,
                alert_id,
            ),
        )

    # -- trace --------------------------------------------------------------------------
    def code(self, tenant_id: str, key: str) -> CodeFacts | None:
        rows = self._uow.execute(
            "SELECT code_key, gtin, serial, lot, expiry, state, key_id, signature, work_order,"
            " line_id, request_id, issued_at, market FROM codes"
            " WHERE code_key = %s AND tenant_id = %s",
            (key, tenant_id),
        )
        return CodeFacts(*rows[0]) if rows else None

    def owns_product(self, tenant_id: str, gtin: str) -> bool:
        rows = self._uow.execute(
            "SELECT 1 FROM products WHERE gtin = %s AND tenant_id = %s", (gtin, tenant_id)
        )
        return bool(rows)

    def owns_unit(self, tenant_id: str, key: str) -> bool:
        """Whether a code key or ``sscc:…`` key is one of the tenant's units."""
        if key.startswith("sscc:"):
            sql = "SELECT 1 FROM ssccs WHERE sscc = %s AND tenant_id = %s"
            key = key.removeprefix("sscc:")
        else:
            sql = "SELECT 1 FROM codes WHERE code_key = %s AND tenant_id = %s"
        return bool(self._uow.execute(sql, (key, tenant_id)))

    def status_events(self, tenant_id: str, gtin: str, serial: str) -> list[EventRow]:
        """(kind, request id, occurred at, recorded at, payload) of line status batches that
        name the code."""
        rows = self._uow.execute(
            "SELECT kind, request_id, occurred_at, recorded_at, payload FROM domain_events"
            " WHERE tenant_id = %s AND kind LIKE 'codes.%%' AND kind <> 'codes.issued'"
            " AND payload -> 'serials' ? %s AND payload ->> 'gtin' = %s ORDER BY id",
            (tenant_id, serial, gtin),
        )
        return [(r[0], r[1] or "", r[2], r[3], r[4]) for r in rows]

    def containment_history(self, keys: list[str]) -> list[HistoryRow]:
        """(unit, parent, action, event id, event time, attributes) of every unit in ``keys``,
        oldest first per unit."""
        rows = self._uow.execute(
            "SELECT unit_key, parent_key, action, event_id, event_time, attributes"
            " FROM containment_history WHERE unit_key = ANY(%s) ORDER BY unit_key, id",
            (keys,),
        )
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def logistics_events(self, tenant_id: str, keys: list[str]) -> list[EventRow]:
        """(kind, event id, occurred at, recorded at, payload) of logistics writes naming any
        of ``keys`` as a root, oldest first."""
        rows = self._uow.execute(
            "SELECT kind, request_id, occurred_at, recorded_at, payload FROM domain_events"
            " WHERE tenant_id = %s AND kind LIKE 'logistics.%%' AND payload -> 'codes' ?| %s"
            " ORDER BY id",
            (tenant_id, keys),
        )
        return [(r[0], r[1] or "", r[2], r[3], r[4]) for r in rows]

    def recall_of(self, key: str) -> tuple[str, str, datetime, str] | None:
        """(recall id, reason, effective at, request id) when ``key`` was recalled."""
        rows = self._uow.execute(
            "SELECT r.recall_id, r.reason, r.effective_at, r.request_id FROM recalled_units u"
            " JOIN recalls r USING (recall_id) WHERE u.unit_key = %s",
            (key,),
        )
        return (rows[0][0], rows[0][1], rows[0][2], rows[0][3]) if rows else None

    def scans(self, key: str) -> list[ScanRow]:
        rows = self._uow.execute(
            "SELECT verification_id, verified_at, verdict, region, reasons, risk_score"
            " FROM scans WHERE code_key = %s ORDER BY verified_at",
            (key,),
        )
        return [(r[0], r[1], r[2], r[3], list(r[4]), float(r[5])) for r in rows]

    # -- recalls ------------------------------------------------------------------------
    def lock_recalls(self, tenant_id: str) -> None:
        self._writes().execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"recall:{tenant_id}",)
        )

    def record(self, event: NewEvent) -> int:
        return self._writes().events.append(event)

    def add_outbox(self, events: Sequence[OutboxEvent]) -> int:
        return write_outbox(self._writes(), events)

    def lot_hold(self, tenant_id: str, gtin: str, lot: str) -> tuple[bool, str] | None:
        rows = self._uow.execute(
            "SELECT held, reason FROM lot_holds WHERE gtin = %s AND lot = %s AND tenant_id = %s",
            (gtin, lot, tenant_id),
        )
        return (bool(rows[0][0]), str(rows[0][1])) if rows else None

    def recall_by_request(self, tenant_id: str, request_id: str) -> tuple[str, str] | None:
        """(recall id, fingerprint) of an earlier recall with this request id."""
        rows = self._uow.execute(
            "SELECT recall_id, fingerprint FROM recalls WHERE tenant_id = %s AND request_id = %s",
            (tenant_id, request_id),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def add_recall(
        self,
        recall_id: str,
        tenant_id: str,
        request_id: str,
        scope: RecallScope,
        reason: str,
        at: datetime,
        token_id: str,
        fingerprint: str,
    ) -> None:
        self._writes().execute(
            "INSERT INTO recalls (recall_id, tenant_id, request_id, scope, reason, effective_at,"
            " token_id, fingerprint) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s)",
            (
                recall_id,
                tenant_id,
                request_id,
                json.dumps(scope.as_json()),
                reason,
                at,
                token_id,
                fingerprint,
            ),
        )

    def recall(self, tenant_id: str, recall_id: str) -> tuple[str, datetime] | None:
        """(reason, effective at) of one of the tenant's recalls."""
        rows = self._uow.execute(
            "SELECT reason, effective_at FROM recalls WHERE recall_id = %s AND tenant_id = %s",
            (recall_id, tenant_id),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def hold_recalled_lot(
        self, tenant_id: str, gtin: str, lot: str, reason: str, at: datetime, by: str
    ) -> None:
        """Hold the recalled lot (the Issuer's lot_holds row): lines cannot commission, pack or
        ship it, and the Issuer refuses to release it while the recall stands."""
        self._writes().execute(
            "INSERT INTO lot_holds (gtin, lot, tenant_id, held, reason, changed_at, changed_by)"
            " VALUES (%s, %s, %s, true, %s, %s, %s) ON CONFLICT (gtin, lot) DO UPDATE SET"
            " held = true, reason = EXCLUDED.reason, changed_at = EXCLUDED.changed_at,"
            " changed_by = EXCLUDED.changed_by",
            (gtin, lot, tenant_id, reason, at, by),
        )

    def recall_units(self, tenant_id: str, scope: RecallScope, recall_id: str, at: datetime) -> int:
        """Mark every recallable unit in ``scope`` recalled by ``recall_id`` (units recalled
        before keep their first recall); returns how many codes changed.

        Per table: the units in scope are locked and read by an UPDATE that changes nothing
        (it waits for a concurrent pack or ship and reads what it wrote, as FOR UPDATE would,
        which Citus refuses over several shards), then recorded and marked in the same
        transaction, their containment rows with them. A parent's tree is walked one level
        per statement (its children live on other shards on Citus)."""
        uow = self._writes()
        keys = list(scope.keys)
        if scope.kind == "parent":
            keys = self._tree(keys)
        codes_where = {
            "lot": "gtin = %(gtin)s AND lot = %(lot)s",
            "gtin": "gtin = %(gtin)s",
            "codes": "code_key = ANY(%(keys)s)",
            "parent": "code_key = ANY(%(keys)s)",
        }[scope.kind]
        params = {
            "keys": keys,
            "ssccs": [k.removeprefix("sscc:") for k in keys if k.startswith("sscc:")],
            "gtin": scope.gtin,
            "lot": scope.lot,
            "tenant": tenant_id,
            "recall": recall_id,
            "at": at,
            "states": RECALLABLE,
        }
        hit = uow.execute(
            "UPDATE codes SET state = state"
            f" WHERE tenant_id = %(tenant)s AND {codes_where} AND state = ANY(%(states)s)"
            " RETURNING code_key, state, market",
            params,
        )
        marked = self._mark(hit, True, recall_id)
        if marked:
            uow.execute(
                "UPDATE codes SET state = 'recalled', updated_at = %s WHERE code_key = ANY(%s)",
                (at, marked),
            )
            uow.execute(
                "UPDATE containment SET state = 'recalled' WHERE child_key = ANY(%s)", (marked,)
            )
        if scope.kind == "parent" and params["ssccs"]:
            hit = uow.execute(
                "UPDATE ssccs SET state = state WHERE tenant_id = %(tenant)s"
                " AND sscc = ANY(%(ssccs)s::bpchar[]) AND state = ANY(%(states)s)"
                " RETURNING 'sscc:' || sscc, state, market",
                params,
            )
            units = self._mark(hit, False, recall_id)
            if units:
                uow.execute(
                    "UPDATE ssccs SET state = 'recalled', updated_at = %s"
                    " WHERE sscc = ANY(%s::bpchar[])",
                    (at, [k.removeprefix("sscc:") for k in units]),
                )
                uow.execute(
                    "UPDATE containment SET state = 'recalled' WHERE child_key = ANY(%s)",
                    (units,),
                )
        return len(marked)

    def _mark(self, hit: list[tuple[Any, ...]], is_code: bool, recall_id: str) -> list[str]:
        """Record the units of ``hit`` (key, state, market) as recalled by ``recall_id``;
        return those not recalled before."""
        if not hit:
            return []
        rows = self._writes().execute(
            "INSERT INTO recalled_units (unit_key, recall_id, is_code, previous_state, market)"
            " SELECT k, %s, %s, s, m FROM unnest(%s::text[], %s::text[], %s::text[]) AS t(k, s, m)"
            " ON CONFLICT DO NOTHING RETURNING unit_key",
            (recall_id, is_code, [h[0] for h in hit], [h[1] for h in hit], [h[2] for h in hit]),
        )
        return [r[0] for r in rows]

    def _tree(self, roots: list[str]) -> list[str]:
        """``roots`` and every unit below them now, one statement per level."""
        seen = dict.fromkeys(roots)
        frontier = list(seen)
        while frontier:
            rows = self._uow.execute(
                "SELECT child_key FROM containment WHERE parent_key = ANY(%s)", (frontier,)
            )
            frontier = [r[0] for r in rows if r[0] not in seen]
            seen.update(dict.fromkeys(frontier))
        return list(seen)

    def recall_report(self, recall_id: str, effective_at: datetime) -> RecallCounts:
        """(units, by shipment market, by last scan region, scans since, not shipped,
        dispensed) of the codes a recall took."""
        head = self._uow.execute(
            "SELECT count(*), count(*) FILTER (WHERE previous_state = 'commissioned'"
            "  AND market IS NULL), count(*) FILTER (WHERE previous_state = 'dispensed')"
            " FROM recalled_units WHERE recall_id = %s AND is_code",
            (recall_id,),
        )
        markets = self._uow.execute(
            "SELECT coalesce(market, ''), count(*) FROM recalled_units"
            " WHERE recall_id = %s AND is_code GROUP BY 1 ORDER BY 2 DESC, 1",
            (recall_id,),
        )
        regions = self._uow.execute(
            "SELECT region, count(*) FROM (SELECT DISTINCT ON (s.code_key) s.region"
            "  FROM recalled_units u JOIN scans s ON s.code_key = u.unit_key"
            "  WHERE u.recall_id = %s AND u.is_code AND s.active"
            "  ORDER BY s.code_key, s.verified_at DESC) last GROUP BY 1 ORDER BY 2 DESC, 1",
            (recall_id,),
        )
        since = self._uow.execute(
            "SELECT count(*) FROM recalled_units u JOIN scans s ON s.code_key = u.unit_key"
            " WHERE u.recall_id = %s AND s.verified_at >= %s",
            (recall_id, effective_at),
        )
        units, not_shipped, dispensed = (int(v) for v in head[0])
        return (
            units,
            [(m, int(n)) for m, n in markets],
            [(r, int(n)) for r, n in regions],
            int(since[0][0]),
            not_shipped,
            dispensed,
        )
