"""Audit's webhook ports: the endpoints a brand registered, the deliveries of the outbox's
events to them (``sealmark.storage.postgres_outbox`` writes events and deliveries together
with the facts they report), and the sender that puts one delivery on the wire.

Same rules as :mod:`audit.ports`: blocks commit when they end normally and roll back whole
when they raise; adapters raise only :mod:`sealmark.errors`. Every method is scoped by tenant;
another tenant's row is indistinguishable from a missing one. Contract:
``tests/contracts/webhook_storage.py`` (part of Audit's suite), on :mod:`audit.memory` and
:mod:`audit.postgres_webhooks`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class DeliveryState(StrEnum):
    PENDING = "pending"  # due at next_at (or leased to a dispatcher until then)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    DEAD = "dead"  # out of attempts: a dead letter, until retried by hand


@dataclass(frozen=True)
class Endpoint:
    """A registered endpoint, as it is shown (the secret never is)."""

    tenant_id: str
    endpoint_id: str
    url: str
    events: tuple[str, ...]
    description: str
    active: bool
    created_at: datetime
    secret_set_at: datetime
    previous_until: datetime | None  # the rotated-out secret is still signed with until then


@dataclass(frozen=True)
class Delivery:
    tenant_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    state: DeliveryState
    attempts: int
    next_at: datetime
    created_at: datetime
    last_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str = ""
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery with what sending it needs."""

    delivery: Delivery
    url: str
    secrets: tuple[str, ...]  # the current secret first, then a rotated-out one still honoured
    occurred_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class Attempt:
    """The outcome of one send: ``state`` after it, when it is due again (pending), the HTTP
    status (None: no answer) and why it failed ('' when delivered)."""

    state: DeliveryState
    attempts: int
    next_at: datetime
    at: datetime
    status: int | None
    error: str


class WebhookStore(Protocol):
    def add_endpoint(self, endpoint: Endpoint, secret: str) -> None:
        """Register an endpoint. AlreadyExists when the tenant has one with this id."""

    def endpoints(self, tenant_id: str) -> list[Endpoint]:
        """The tenant's endpoints, oldest first (then by id)."""

    def endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        """One of the tenant's endpoints, or None."""

    def set_secret(
        self,
        tenant_id: str,
        endpoint_id: str,
        secret: str,
        previous_until: datetime | None,
        at: datetime,
    ) -> None:
        """Replace the endpoint's secret from ``at``; the old one is still signed with until
        ``previous_until`` (None: dropped at once)."""

    def set_active(self, tenant_id: str, endpoint_id: str, active: bool) -> None:
        """Enable or disable the endpoint. A disabled endpoint gets no new deliveries and its
        pending ones are not claimed (they wait, and go out when it is enabled again)."""

    def due_tenants(self, now: datetime, limit: int) -> list[str]:
        """Tenants with a pending delivery due at ``now`` (next_at <= now), at most
        ``limit``, those due longest first."""

    def claim(
        self, tenant_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[DueDelivery]:
        """Take up to ``limit`` of the tenant's pending deliveries due at ``now`` whose
        endpoint is active, oldest due first, and lease them: their next_at becomes
        ``lease_until``, so another dispatcher (or this one) takes them again only after it,
        if no outcome was recorded (the process died mid-send: at least once). Concurrent
        claims never return the same delivery while its lease runs. Secrets: the current one,
        then the previous one while ``previous_until`` is after ``now``."""

    def record(self, tenant_id: str, endpoint_id: str, event_id: str, attempt: Attempt) -> None:
        """Store the outcome of an attempt (state, attempts, next_at, last status and error,
        delivered_at = attempt.at when delivered)."""

    def delivery(self, tenant_id: str, endpoint_id: str, event_id: str) -> Delivery | None:
        """One delivery of the tenant, or None."""

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
        """The tenant's deliveries, newest first (by created_at, then event and endpoint id
        descending), filtered (None: any), from ``offset``, at most ``limit``."""

    def redrive(self, tenant_id: str, endpoint_id: str, event_id: str, at: datetime) -> bool:
        """A dead delivery pending again, due at ``at`` with its attempts reset to 0; False
        (and nothing changed) when it is not dead or not there."""


class WebhookStorage(Protocol):
    def transaction(self) -> AbstractContextManager[WebhookStore]:
        """A read-write transaction (see :mod:`audit.ports` for rollback and retries)."""

    def reads(self) -> AbstractContextManager[WebhookStore]:
        """Reads only; a write method raises RuntimeError."""


@dataclass(frozen=True)
class SendResult:
    """What the endpoint answered: the HTTP status (None: no answer, see ``error``) and the
    first bytes of its body (bounded by the sender)."""

    status: int | None
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender(Protocol):
    def send(self, url: str, headers: dict[str, str], body: bytes, timeout_s: float) -> SendResult:
        """POST ``body`` to ``url`` and read at most a bounded part of the answer, giving up
        after ``timeout_s``. Never raises for the network or the endpoint: a refused target
        (private address, see :mod:`sealmark.webhooks.urls`), a timeout or a reset is a
        SendResult with no status and the reason (which must not contain the secret)."""
