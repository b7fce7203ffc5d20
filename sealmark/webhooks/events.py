"""The webhook events and the outbox row that carries one.

A fact that a brand may subscribe to is written with its outbox row in one transaction (the
transactional outbox): the first genuine scan of a code with the scan log's batch (Verifier),
a clone or diversion alert with the alert (Verifier), a recall with the recall (Audit). The
event id is derived from the fact, never drawn: writing the same fact twice (a retried batch,
two processes racing on a first scan) gives the same id, and the outbox keeps one row per id,
so each fact is one event however often it is written or delivered."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FIRST_GENUINE_SCAN = "code.first_genuine_scan"
CLONE_ALERT = "alert.clone"
DIVERSION_ALERT = "alert.diversion"
COUNTERFEIT_ALERT = "alert.counterfeit"
RECALL = "recall.created"

EVENT_TYPES = (FIRST_GENUINE_SCAN, CLONE_ALERT, DIVERSION_ALERT, COUNTERFEIT_ALERT, RECALL)

# The Verifier's alert kinds that are webhook events.
ALERT_EVENTS = {
    "suspect_clone": CLONE_ALERT,
    "pin_reused": CLONE_ALERT,
    "diversion": DIVERSION_ALERT,
    "counterfeit": COUNTERFEIT_ALERT,
}

GENUINE_FIRST_VERDICT = "authentic"  # the verdict of a first genuine verification


@dataclass(frozen=True)
class OutboxEvent:
    """One event in the outbox: per tenant, unique by ``event_id``."""

    tenant_id: str
    event_id: str
    type: str
    occurred_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)


def event_id(tenant_id: str, type_: str, subject: str) -> str:
    """``evt_`` + 32 hex digits, a function of (tenant, type, subject) only."""
    digest = hashlib.sha256(f"{tenant_id}\n{type_}\n{subject}".encode()).hexdigest()
    return "evt_" + digest[:32]


def first_genuine_scan(
    tenant_id: str,
    code_key: str,
    verification_id: str,
    region: str,
    verified_at: datetime,
) -> OutboxEvent:
    """The event of a code's first genuine scan: one per code, whichever scan wrote it."""
    return OutboxEvent(
        tenant_id,
        event_id(tenant_id, FIRST_GENUINE_SCAN, code_key),
        FIRST_GENUINE_SCAN,
        verified_at,
        {
            "gtin": code_key[:14],
            "serial": code_key[14:],
            "verification_id": verification_id,
            "region": region,
            "verified_at": verified_at.isoformat(),
        },
    )


def alert_event(
    tenant_id: str,
    kind: str,
    alert_id: int,
    code_key: str | None,
    details: Mapping[str, Any],
    raised_at: datetime,
) -> OutboxEvent | None:
    """The event of a stored alert, None for a kind that is no webhook event."""
    type_ = ALERT_EVENTS.get(kind)
    if type_ is None:
        return None
    payload: dict[str, Any] = {
        "alert_id": alert_id,
        "kind": kind,
        "raised_at": raised_at.isoformat(),
        "details": dict(details),
    }
    if code_key:
        payload.update(gtin=code_key[:14], serial=code_key[14:])
    return OutboxEvent(
        tenant_id, event_id(tenant_id, type_, f"alert:{alert_id}"), type_, raised_at, payload
    )


def recall_event(
    tenant_id: str, recall_id: str, payload: Mapping[str, Any], at: datetime
) -> OutboxEvent:
    """The event of a recall (``payload``: what the recall recorded)."""
    return OutboxEvent(
        tenant_id,
        event_id(tenant_id, RECALL, recall_id),
        RECALL,
        at,
        {**payload, "recall_id": recall_id, "effective_at": at.isoformat()},
    )


def fan_out(
    events: Iterable[OutboxEvent], endpoints: Iterable[tuple[str, str, Iterable[str]]]
) -> list[tuple[OutboxEvent, list[str]]]:
    """Each event with the ids of the endpoints subscribed to it; ``endpoints`` are (tenant id,
    endpoint id, event types) of active endpoints. Events nobody subscribed to are dropped."""
    by_tenant: dict[str, list[tuple[str, set[str]]]] = {}
    for tenant_id, endpoint_id, types in endpoints:
        by_tenant.setdefault(tenant_id, []).append((endpoint_id, set(types)))
    out = []
    for event in events:
        ids = [e for e, types in by_tenant.get(event.tenant_id, []) if event.type in types]
        if ids:
            out.append((event, sorted(ids)))
    return out


def body_of(event: OutboxEvent) -> dict[str, Any]:
    """What an endpoint receives (as JSON): the same for every attempt of the event."""
    return {
        "id": event.event_id,
        "type": event.type,
        "tenant": event.tenant_id,
        "created": event.occurred_at.isoformat(),
        "data": event.payload,
    }
