"""The PostgreSQL adapter of :class:`audit.webhook_ports.WebhookStorage` (migration 0020).
Events and deliveries are written by ``sealmark.storage.postgres_outbox`` with the facts they
report; this reads them, claims the due ones and records what each send got. Every statement
names its tenant; a claim locks rows of one tenant only (``FOR UPDATE SKIP LOCKED``), so
dispatchers in several processes share the work without waiting on each other."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from audit.webhook_ports import Attempt, Delivery, DeliveryState, DueDelivery, Endpoint
from sealmark.storage.postgres import PostgresDatabase, PostgresUnitOfWork, StoreOpener

_ENDPOINT = (
    "tenant_id, endpoint_id, url, events, description, active, created_at, secret_set_at,"
    " previous_until"
)
_DELIVERY = (
    "d.tenant_id, d.endpoint_id, d.event_id, v.type, d.state, d.attempts, d.next_at,"
    " d.created_at, d.last_attempt_at, d.last_status, coalesce(d.last_error, ''),"
    " d.delivered_at"
)
_JOIN = (
    " FROM webhook_deliveries d JOIN webhook_events v"
    " ON v.tenant_id = d.tenant_id AND v.event_id = d.event_id"
)


def _endpoint(r: tuple[Any, ...]) -> Endpoint:
    return Endpoint(r[0], r[1], r[2], tuple(r[3]), r[4], bool(r[5]), r[6], r[7], r[8])


def _delivery(r: tuple[Any, ...]) -> Delivery:
    return Delivery(
        r[0], r[1], r[2], r[3], DeliveryState(r[4]), int(r[5]), r[6], r[7], r[8], r[9], r[10], r[11]
    )


class PostgresWebhookStorage(StoreOpener["PostgresWebhookStore"]):
    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(database, lambda uow, writable: PostgresWebhookStore(uow, writable))


class PostgresWebhookStore:
    def __init__(self, uow: PostgresUnitOfWork, writable: bool = True) -> None:
        self._uow = uow
        self._writable = writable

    def _writes(self) -> PostgresUnitOfWork:
        if not self._writable:
            raise RuntimeError("a reads() store writes nothing: use transaction()")
        return self._uow

    def add_endpoint(self, endpoint: Endpoint, secret: str) -> None:
        self._writes().execute(  # a duplicate key is AlreadyExists (translate_db_error)
            "INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, events, description,"
            " secret, active, created_at, secret_set_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                endpoint.tenant_id,
                endpoint.endpoint_id,
                endpoint.url,
                list(endpoint.events),
                endpoint.description,
                secret,
                endpoint.active,
                endpoint.created_at,
                endpoint.secret_set_at,
            ),
        )

    def endpoints(self, tenant_id: str) -> list[Endpoint]:
        rows = self._uow.execute(
            f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE tenant_id = %s"
            " ORDER BY created_at, endpoint_id",
            (tenant_id,),
        )
        return [_endpoint(r) for r in rows]

    def endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        rows = self._uow.execute(
            f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE tenant_id = %s AND endpoint_id = %s",
            (tenant_id, endpoint_id),
        )
        return _endpoint(rows[0]) if rows else None

    def set_secret(
        self,
        tenant_id: str,
        endpoint_id: str,
        secret: str,
        previous_until: datetime | None,
        at: datetime,
    ) -> None:
        self._writes().execute(
            "UPDATE webhook_endpoints SET"
            " previous_secret = CASE WHEN %s::timestamptz IS NULL THEN NULL ELSE secret END,"
            " previous_until = %s::timestamptz, secret = %s, secret_set_at = %s"
            " WHERE tenant_id = %s AND endpoint_id = %s",
            (previous_until, previous_until, secret, at, tenant_id, endpoint_id),
        )

    def set_active(self, tenant_id: str, endpoint_id: str, active: bool) -> None:
        self._writes().execute(
            "UPDATE webhook_endpoints SET active = %s WHERE tenant_id = %s AND endpoint_id = %s",
            (active, tenant_id, endpoint_id),
        )

    def due_tenants(self, now: datetime, limit: int) -> list[str]:
        rows = self._uow.execute(
            "SELECT tenant_id FROM webhook_deliveries WHERE state = 'pending' AND next_at <= %s"
            " GROUP BY tenant_id ORDER BY min(next_at) LIMIT %s",
            (now, limit),
        )
        return [r[0] for r in rows]

    def claim(
        self, tenant_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[DueDelivery]:
        rows = self._writes().execute(
            "WITH due AS (SELECT d.tenant_id, d.endpoint_id, d.event_id FROM webhook_deliveries d"
            " JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id"
            " AND e.endpoint_id = d.endpoint_id AND e.active"
            " WHERE d.tenant_id = %s AND d.state = 'pending' AND d.next_at <= %s"
            " ORDER BY d.next_at, d.created_at, d.event_id LIMIT %s FOR UPDATE OF d SKIP LOCKED)"
            " UPDATE webhook_deliveries w SET next_at = %s FROM due"
            " WHERE w.tenant_id = due.tenant_id AND w.endpoint_id = due.endpoint_id"
            " AND w.event_id = due.event_id RETURNING w.endpoint_id, w.event_id",
            (tenant_id, now, limit, lease_until),
        )
        if not rows:
            return []
        pairs = [(r[0], r[1]) for r in rows]
        found = self._uow.execute(
            f"SELECT {_DELIVERY}, e.url, e.secret, e.previous_secret, e.previous_until,"
            " v.occurred_at, v.payload" + _JOIN + " JOIN webhook_endpoints e"
            " ON e.tenant_id = d.tenant_id AND e.endpoint_id = d.endpoint_id"
            " WHERE d.tenant_id = %s AND (d.endpoint_id, d.event_id) IN ("
            + ", ".join(["(%s, %s)"] * len(pairs))
            + ") ORDER BY d.next_at, d.created_at, d.event_id",
            (tenant_id, *[x for p in pairs for x in p]),
        )
        out = []
        for r in found:
            secrets: tuple[str, ...] = (r[13],)
            if r[14] and r[15] is not None and r[15] > now:
                secrets += (r[14],)
            out.append(DueDelivery(_delivery(r[:12]), r[12], secrets, r[16], dict(r[17])))
        return out

    def record(self, tenant_id: str, endpoint_id: str, event_id: str, attempt: Attempt) -> None:
        self._writes().execute(
            "UPDATE webhook_deliveries SET state = %s, attempts = %s, next_at = %s,"
            " last_attempt_at = %s, last_status = %s, last_error = %s,"
            " delivered_at = CASE WHEN %s = 'delivered' THEN %s::timestamptz END"
            " WHERE tenant_id = %s AND endpoint_id = %s AND event_id = %s",
            (
                attempt.state.value,
                attempt.attempts,
                attempt.next_at,
                attempt.at,
                attempt.status,
                attempt.error,
                attempt.state.value,
                attempt.at,
                tenant_id,
                endpoint_id,
                event_id,
            ),
        )

    def delivery(self, tenant_id: str, endpoint_id: str, event_id: str) -> Delivery | None:
        found = self.deliveries(tenant_id, endpoint_id=endpoint_id, event_id=event_id, limit=1)
        return found[0] if found else None

    def deliveries(
        self,
        tenant_id: str,
        *,
        state: DeliveryState | None = None,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        where, params = ["d.tenant_id = %s"], [tenant_id]
        for column, value in (
            ("d.state", state.value if state else None),
            ("d.endpoint_id", endpoint_id),
            ("d.event_id", event_id),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        rows = self._uow.execute(
            f"SELECT {_DELIVERY}"
            + _JOIN
            + " WHERE "
            + " AND ".join(where)
            + " ORDER BY d.created_at DESC, d.event_id DESC, d.endpoint_id DESC"
            " OFFSET %s LIMIT %s",
            (*params, offset, limit),
        )
        return [_delivery(r) for r in rows]

    def redrive(self, tenant_id: str, endpoint_id: str, event_id: str, at: datetime) -> bool:
        rows = self._writes().execute(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_at = %s"
            " WHERE tenant_id = %s AND endpoint_id = %s AND event_id = %s AND state = 'dead'"
            " RETURNING 1",
            (at, tenant_id, endpoint_id, event_id),
        )
        return bool(rows)
