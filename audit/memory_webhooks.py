"""The in-memory fake of Audit's webhook ports (:mod:`audit.webhook_ports`): tables kept in
the fake world's :class:`~audit.memory_tables.State` (``hooks``), so a recall and its outbox
event roll back together, as they do on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from audit.memory_tables import State
from audit.webhook_ports import Attempt, Delivery, DeliveryState, DueDelivery, Endpoint
from sealmark.errors import AlreadyExists
from sealmark.webhooks.events import OutboxEvent, fan_out


@dataclass
class _Secrets:
    current: str
    previous: str | None = None
    previous_until: datetime | None = None


@dataclass
class HookTables:
    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)
    secrets: dict[tuple[str, str], _Secrets] = field(default_factory=dict)
    events: dict[tuple[str, str], OutboxEvent] = field(default_factory=dict)
    deliveries: dict[tuple[str, str, str], Delivery] = field(default_factory=dict)

    def write_outbox(self, events: Sequence[OutboxEvent]) -> int:
        """As ``sealmark.storage.postgres_outbox.write_outbox``."""
        active = [(t, e, ep.events) for (t, e), ep in self.endpoints.items() if ep.active]
        new = 0
        for event, ids in fan_out(events, active):
            key = (event.tenant_id, event.event_id)
            if key in self.events:
                continue
            self.events[key] = event
            new += 1
            for endpoint_id in ids:
                self.deliveries[(event.tenant_id, endpoint_id, event.event_id)] = Delivery(
                    event.tenant_id,
                    endpoint_id,
                    event.event_id,
                    event.type,
                    DeliveryState.PENDING,
                    0,
                    event.occurred_at,
                    event.occurred_at,
                )
        return new


class MemoryWebhookStore:
    def __init__(self, state: State, writable: bool) -> None:
        self._t: HookTables = state.hooks
        self._writable = writable

    def _write(self) -> HookTables:
        if not self._writable:
            raise RuntimeError("a reads() store writes nothing: use transaction()")
        return self._t

    def add_endpoint(self, endpoint: Endpoint, secret: str) -> None:
        key = (endpoint.tenant_id, endpoint.endpoint_id)
        if key in self._write().endpoints:
            raise AlreadyExists(f"endpoint {endpoint.endpoint_id} exists")
        self._t.endpoints[key] = endpoint
        self._t.secrets[key] = _Secrets(secret)

    def endpoints(self, tenant_id: str) -> list[Endpoint]:
        return sorted(
            (e for (t, _), e in self._t.endpoints.items() if t == tenant_id),
            key=lambda e: (e.created_at, e.endpoint_id),
        )

    def endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        return self._t.endpoints.get((tenant_id, endpoint_id))

    def set_secret(
        self,
        tenant_id: str,
        endpoint_id: str,
        secret: str,
        previous_until: datetime | None,
        at: datetime,
    ) -> None:
        key = (tenant_id, endpoint_id)
        old = self._write().secrets[key]
        self._t.secrets[key] = _Secrets(
            secret, old.current if previous_until else None, previous_until
        )
        self._t.endpoints[key] = replace(
            self._t.endpoints[key], secret_set_at=at, previous_until=previous_until
        )

    def set_active(self, tenant_id: str, endpoint_id: str, active: bool) -> None:
        key = (tenant_id, endpoint_id)
        if key in self._write().endpoints:
            self._t.endpoints[key] = replace(self._t.endpoints[key], active=active)

    def _due(self, now: datetime) -> list[Delivery]:
        return sorted(
            (
                d
                for d in self._t.deliveries.values()
                if d.state is DeliveryState.PENDING
                and d.next_at <= now
                and self._t.endpoints[(d.tenant_id, d.endpoint_id)].active
            ),
            key=lambda d: (d.next_at, d.created_at, d.event_id),
        )

    def due_tenants(self, now: datetime, limit: int) -> list[str]:
        return list(dict.fromkeys(d.tenant_id for d in self._due(now)))[:limit]

    def claim(
        self, tenant_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[DueDelivery]:
        self._write()
        taken = [d for d in self._due(now) if d.tenant_id == tenant_id][:limit]
        out = []
        for d in taken:
            key = (d.tenant_id, d.endpoint_id)
            self._t.deliveries[(*key, d.event_id)] = replace(d, next_at=lease_until)
            secrets = self._t.secrets[key]
            honoured = (secrets.current,) + (
                (secrets.previous,)
                if secrets.previous and secrets.previous_until and secrets.previous_until > now
                else ()
            )
            event = self._t.events[(d.tenant_id, d.event_id)]
            out.append(
                DueDelivery(
                    replace(d, next_at=lease_until),
                    self._t.endpoints[key].url,
                    honoured,
                    event.occurred_at,
                    dict(event.payload),
                )
            )
        return out

    def record(self, tenant_id: str, endpoint_id: str, event_id: str, attempt: Attempt) -> None:
        key = (tenant_id, endpoint_id, event_id)
        d = self._write().deliveries[key]
        self._t.deliveries[key] = replace(
            d,
            state=attempt.state,
            attempts=attempt.attempts,
            next_at=attempt.next_at,
            last_attempt_at=attempt.at,
            last_status=attempt.status,
            last_error=attempt.error,
            delivered_at=attempt.at if attempt.state is DeliveryState.DELIVERED else None,
        )

    def delivery(self, tenant_id: str, endpoint_id: str, event_id: str) -> Delivery | None:
        return self._t.deliveries.get((tenant_id, endpoint_id, event_id))

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
        rows = sorted(
            (
                d
                for d in self._t.deliveries.values()
                if d.tenant_id == tenant_id
                and (state is None or d.state is state)
                and (endpoint_id is None or d.endpoint_id == endpoint_id)
                and (event_id is None or d.event_id == event_id)
            ),
            key=lambda d: (d.created_at, d.event_id, d.endpoint_id),
            reverse=True,
        )
        return rows[offset : offset + limit]

    def redrive(self, tenant_id: str, endpoint_id: str, event_id: str, at: datetime) -> bool:
        key = (tenant_id, endpoint_id, event_id)
        d = self._write().deliveries.get(key)
        if d is None or d.state is not DeliveryState.DEAD:
            return False
        self._t.deliveries[key] = replace(d, state=DeliveryState.PENDING, attempts=0, next_at=at)
        return True


class MemoryWebhookStorage:
    """:class:`~audit.webhook_ports.WebhookStorage` on a fake world's transactions."""

    def __init__(self, transaction: Callable[[bool], AbstractContextManager[State]]) -> None:
        self._transaction = transaction

    @contextmanager
    def transaction(self) -> Iterator[MemoryWebhookStore]:
        with self._transaction(True) as state:
            yield MemoryWebhookStore(state, writable=True)

    @contextmanager
    def reads(self) -> Iterator[MemoryWebhookStore]:
        with self._transaction(False) as state:
            yield MemoryWebhookStore(state, writable=False)


def outbox_rows(state: State, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's outbox events (tests' inspection)."""
    return [
        {"event_id": e.event_id, "type": e.type, "payload": e.payload}
        for (t, _), e in state.hooks.events.items()
        if t == tenant_id
    ]
