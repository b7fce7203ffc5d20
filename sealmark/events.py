"""Domain events: the append-only record every state change leaves behind.

Later parts (audit trail, transparency log, EPCIS export) read this stream; nothing ever
updates or deletes an event. Pure module: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The kinds the transparency log covers: appending one also queues it for the log, in the
# same statement (sealmark/storage/postgres_repos.py; a trigger did it before migration 0018).
TLOG_KINDS = frozenset(
    {
        "codes.issued",
        "codes.commissioned",
        "codes.scrapped",
        "codes.returned",
        "logistics.shipped",
        "logistics.received",
        "logistics.decommissioned",
        "logistics.decommission_undone",
        "aggregation.replaced",
        "aggregation.sampled",
        "audit.recalled",
        "keys.rotated",
        "keys.revoked",
        "aggregation.packed",
        "aggregation.unpacked",
        "aggregation.reworked",
        "lot.held",
        "lot.released",
    }
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended.

    ``kind`` is a dotted name such as ``tenant.created`` or ``codes.issued``; ``subject`` names
    what it is about (a GTIN+serial key, an SSCC, a work order, a tenant); ``payload`` is JSON-able.
    ``request_id`` is the caller's idempotency key when there is one.
    """

    tenant_id: str
    kind: str
    subject: str
    occurred_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """A stored event; ``id`` increases in append order within one database."""

    id: int
    tenant_id: str
    kind: str
    subject: str
    occurred_at: datetime
    recorded_at: datetime
    payload: dict[str, Any]
    request_id: str | None = None
