"""The tables of the in-memory fakes (:mod:`audit.memory`): what PostgreSQL would hold for
Audit, as plain dataclasses."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from audit.ports import Head
from sealmark.events import TLOG_KINDS, NewEvent
from sealmark.tenancy.model import Tenant

# The kinds the transparency log covers, as PgEvents queues them.
LOGGED_KINDS = TLOG_KINDS


@dataclass
class Code:
    key: str
    tenant_id: str
    gtin: str
    serial: str
    lot: str | None
    expiry: date | None
    state: str
    key_id: str | None
    signature: str | None
    work_order: str | None
    line_id: str | None
    request_id: str | None
    issued_at: datetime
    market: str | None
    seq: int | None
    serial_scheme: int


@dataclass
class Event:
    id: int
    tenant_id: str
    kind: str
    subject: str
    occurred_at: datetime
    recorded_at: datetime
    payload: dict[str, Any]
    request_id: str | None


@dataclass
class Entry:
    index: int
    kind: str
    data: bytes
    leaf: bytes
    source: int
    at: datetime


@dataclass
class State:
    """Every table the fake keeps, copied whole at the start of each write transaction."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    products: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # tenant, alph, len
    codes: dict[str, Code] = field(default_factory=dict)
    ssccs: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)  # key: ten, st, mk
    containment: dict[str, str] = field(default_factory=dict)  # child → parent
    history: list[tuple[str, str, str | None, str, str, datetime, dict[str, Any]]] = field(
        default_factory=list
    )  # (tenant, unit, parent, action, event id, event time, attributes)
    events: list[Event] = field(default_factory=list)
    issue_requests: dict[tuple[str, str], str] = field(default_factory=dict)  # → work order
    signing_keys: dict[tuple[str, str], bytes] = field(default_factory=dict)
    scans: list[tuple[str, str, str, str, list[str], float, str, bool, datetime]] = field(
        default_factory=list
    )  # (verification id, tenant, code key, verdict, reasons, risk, region, active, at)
    alerts: dict[int, dict[str, Any]] = field(default_factory=dict)
    recalls: dict[str, dict[str, Any]] = field(default_factory=dict)
    recalled: dict[str, tuple[str, bool, str, str | None]] = field(
        default_factory=dict
    )  # unit → (recall id, is code, previous state, market)
    lot_holds: dict[tuple[str, str], tuple[str, bool, str, datetime, str]] = field(
        default_factory=dict
    )  # (gtin, lot) → (tenant, held, reason, at, by)
    heads: dict[str, Head] = field(default_factory=dict)
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    queue: list[int] = field(default_factory=list)  # event ids
    hooks: Any = None  # audit.memory_webhooks.HookTables, set by the world

    def append_event(self, event: NewEvent, recorded_at: datetime) -> int:
        event_id = len(self.events) + 1
        self.events.append(
            Event(
                event_id,
                event.tenant_id,
                event.kind,
                event.subject,
                event.occurred_at,
                recorded_at,
                copy.deepcopy(event.payload),
                event.request_id,
            )
        )
        if event.kind in LOGGED_KINDS:
            self.queue.append(event_id)
        return event_id
