"""The webhook outbox on PostgreSQL (migration 0020), shared by the adapters that write facts
(``verifier/postgres.py``: first genuine scans and alerts; ``audit/postgres.py``: recalls):
each calls :func:`write_outbox` inside the unit of work that writes the fact, so the event
commits or rolls back with it. Audit's dispatcher reads what this writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sealmark.storage.postgres import PostgresUnitOfWork
from sealmark.webhooks.events import OutboxEvent, fan_out

MAX_TENANTS = 64  # tenants asked for in one statement (a batch rarely holds more than a few)


def write_outbox(uow: PostgresUnitOfWork, events: Sequence[OutboxEvent]) -> int:
    """Store ``events`` of tenants with an active endpoint subscribed to their type, each with
    a pending delivery per such endpoint, in ``uow``'s transaction. An event id already stored
    is kept as it was and gets no new deliveries (the same fact written again). Returns how
    many events were new. Costs one statement when nobody subscribed to any of them."""
    if not events:
        return 0
    tenants = sorted({e.tenant_id for e in events})
    endpoints: list[tuple[str, str, list[str]]] = []
    for start in range(0, len(tenants), MAX_TENANTS):
        chunk = tenants[start : start + MAX_TENANTS]
        endpoints += [
            (r[0], r[1], list(r[2]))
            for r in uow.execute(
                "SELECT tenant_id, endpoint_id, events FROM webhook_endpoints"
                " WHERE active AND tenant_id IN (" + ", ".join(["%s"] * len(chunk)) + ")",
                tuple(chunk),
            )
        ]
    wanted = fan_out(events, endpoints)
    if not wanted:
        return 0
    # One event per id even when the batch holds it twice (two racing first scans).
    first: dict[tuple[str, str], tuple[OutboxEvent, list[str]]] = {}
    for event, ids in wanted:
        first.setdefault((event.tenant_id, event.event_id), (event, ids))
    unique = list(first.values())
    params: list[Any] = []
    for event, _ in unique:
        params += [
            event.tenant_id,
            event.event_id,
            event.type,
            json.dumps(event.payload, sort_keys=True),
            event.occurred_at,
        ]
    stored = uow.execute(
        "INSERT INTO webhook_events (tenant_id, event_id, type, payload, occurred_at) VALUES "
        + ", ".join(["(%s, %s, %s, %s::jsonb, %s)"] * len(unique))
        + " ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING tenant_id, event_id",
        params,
    )
    new = {(r[0], r[1]) for r in stored}
    rows: list[Any] = []
    count = 0
    for event, ids in unique:
        if (event.tenant_id, event.event_id) not in new:
            continue
        for endpoint_id in ids:
            rows += [event.tenant_id, endpoint_id, event.event_id, event.occurred_at]
            rows.append(event.occurred_at)
            count += 1
    if count:
        uow.execute(
            "INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id, next_at,"
            " created_at) VALUES "
            + ", ".join(["(%s, %s, %s, %s, %s)"] * count)
            + " ON CONFLICT DO NOTHING",
            rows,
        )
    return len(new)
