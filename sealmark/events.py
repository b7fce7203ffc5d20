"""Domain events: the append-only record every state change leaves behind.

Later parts (audit trail, transparency log, EPCIS export) read this stream; nothing ever
updates or deletes an event. Pure module: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
