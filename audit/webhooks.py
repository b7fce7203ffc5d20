"""Webhook endpoints and their deliveries, as a brand manages them: register an endpoint (its
secret shown once), list endpoints and deliveries, rotate a secret, pause an endpoint, and
send a dead letter again. Delivery itself is :mod:`audit.dispatch`."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from audit.webhook_ports import (
    Delivery,
    DeliveryState,
    Endpoint,
    WebhookStorage,
    WebhookStore,
)
from sealmark.clock import Clock
from sealmark.errors import FailedPrecondition, InvalidArgument, NotFound
from sealmark.tenancy.model import Principal, Role
from sealmark.tenancy.tokens import RandomBytes
from sealmark.webhooks.events import EVENT_TYPES
from sealmark.webhooks.urls import UrlRefused, parse

MAX_ENDPOINTS = 20  # per tenant
DESCRIPTION_MAX = 200
SECRET_MIN, SECRET_MAX = 32, 200
KEEP_PREVIOUS_MAX_S = 7 * 24 * 3600
PAGE_DEFAULT, PAGE_MAX = 100, 1000
_SECRET = re.compile(r"^[\x21-\x7e]+$")
_ENDPOINT_ID = re.compile(r"^we_[a-z2-7]{16}$")
_EVENT_ID = re.compile(r"^evt_[0-9a-f]{32}$")


@dataclass(frozen=True)
class Created:
    """An endpoint and its secret: the only time the secret leaves the server."""

    endpoint: Endpoint
    secret: str


class Webhooks:
    """A tenant's webhook endpoints and deliveries. ``seal`` turns a secret into what is
    stored (``sealmark.crypto.sealing.SecretBox.seal``; the dispatcher opens it).
    ``allow_private``: endpoints may target private and loopback addresses
    (SEALMARK_WEBHOOK_ALLOW_PRIVATE, tests and development)."""

    def __init__(
        self,
        storage: WebhookStorage,
        clock: Clock,
        random_bytes: RandomBytes,
        seal: Callable[[str], str],
        *,
        allow_private: bool = False,
    ) -> None:
        self._seal = seal
        self._storage = storage
        self._clock = clock
        self._random = random_bytes
        self._allow_private = allow_private

    def create(
        self,
        principal: Principal,
        url: str,
        events: list[str],
        description: str = "",
        secret: str = "",
    ) -> Created:
        """Register an endpoint for ``events`` (ids of :data:`EVENT_TYPES`). ``secret`` empty:
        one is drawn. InvalidArgument naming the field; FailedPrecondition past
        :data:`MAX_ENDPOINTS`."""
        principal.require(Role.ADMIN)
        url = self._check_url(url, "CreateWebhookEndpointRequest.url")
        types = check_events(events, "CreateWebhookEndpointRequest.events")
        description = description.strip()
        if len(description) > DESCRIPTION_MAX:
            raise InvalidArgument(
                "CreateWebhookEndpointRequest.description", f"at most {DESCRIPTION_MAX} chars"
            )
        secret = self._secret(secret, "CreateWebhookEndpointRequest.secret")
        now = self._clock.now()
        endpoint = Endpoint(
            principal.tenant_id,
            "we_" + base64.b32encode(self._random(10)).decode().lower(),
            url,
            types,
            description,
            True,
            now,
            now,
            None,
        )
        with self._storage.transaction() as store:
            if len(store.endpoints(principal.tenant_id)) >= MAX_ENDPOINTS:
                raise FailedPrecondition(f"at most {MAX_ENDPOINTS} webhook endpoints per brand")
            store.add_endpoint(endpoint, self._seal(secret))
        return Created(endpoint, secret)

    def endpoints(self, principal: Principal) -> list[Endpoint]:
        principal.require(Role.AUDITOR)
        with self._storage.reads() as store:
            return store.endpoints(principal.tenant_id)

    def rotate(
        self, principal: Principal, endpoint_id: str, secret: str = "", keep_previous_s: int = 0
    ) -> Created:
        """A new secret for the endpoint (drawn when ``secret`` is empty); the old one is
        still signed with for ``keep_previous_s`` seconds, so receivers can switch over."""
        principal.require(Role.ADMIN)
        field = "RotateWebhookSecretRequest"
        endpoint_id = check_endpoint_id(endpoint_id, f"{field}.endpoint_id")
        if not 0 <= keep_previous_s <= KEEP_PREVIOUS_MAX_S:
            raise InvalidArgument(
                f"{field}.keep_previous_s", f"{keep_previous_s}, want 0..{KEEP_PREVIOUS_MAX_S}"
            )
        secret = self._secret(secret, f"{field}.secret")
        now = self._clock.now()
        until = now + timedelta(seconds=keep_previous_s) if keep_previous_s else None
        with self._storage.transaction() as store:
            self._endpoint(store, principal, endpoint_id, f"{field}.endpoint_id")
            store.set_secret(principal.tenant_id, endpoint_id, self._seal(secret), until, now)
            endpoint = store.endpoint(principal.tenant_id, endpoint_id)
        assert endpoint is not None
        return Created(endpoint, secret)

    def set_active(self, principal: Principal, endpoint_id: str, active: bool) -> Endpoint:
        """Pause (deliveries wait) or resume an endpoint."""
        principal.require(Role.ADMIN)
        field = "SetWebhookEndpointActiveRequest.endpoint_id"
        endpoint_id = check_endpoint_id(endpoint_id, field)
        with self._storage.transaction() as store:
            self._endpoint(store, principal, endpoint_id, field)
            store.set_active(principal.tenant_id, endpoint_id, active)
            endpoint = store.endpoint(principal.tenant_id, endpoint_id)
        assert endpoint is not None
        return endpoint

    def deliveries(
        self,
        principal: Principal,
        *,
        state: DeliveryState | None = None,
        endpoint_id: str = "",
        event_id: str = "",
        size: int = 0,
        token: str = "",
    ) -> tuple[list[Delivery], str]:
        """The tenant's deliveries, newest first; ``state`` DEAD: the dead letters."""
        principal.require(Role.AUDITOR)
        field = "ListWebhookDeliveriesRequest"
        if size < 0 or size > PAGE_MAX:
            raise InvalidArgument(f"{field}.page.page_size", f"{size}, want 0..{PAGE_MAX}")
        limit = size or PAGE_DEFAULT
        if token and (not token.isdigit() or len(token) > 9):
            raise InvalidArgument(f"{field}.page.page_token", "not a token this server gave")
        offset = int(token) if token else 0
        if endpoint_id:
            check_endpoint_id(endpoint_id, f"{field}.endpoint_id")
        if event_id:
            check_event_id(event_id, f"{field}.event_id")
        with self._storage.reads() as store:
            rows = store.deliveries(
                principal.tenant_id,
                state=state,
                endpoint_id=endpoint_id or None,
                event_id=event_id or None,
                offset=offset,
                limit=limit + 1,
            )
        return rows[:limit], str(offset + limit) if len(rows) > limit else ""

    def redrive(self, principal: Principal, endpoint_id: str, event_id: str) -> Delivery:
        """Send a dead letter again: pending now, its attempts counted from 0. NotFound for
        no such delivery, FailedPrecondition for one that is not dead."""
        principal.require(Role.ADMIN)
        field = "RetryWebhookDeliveryRequest"
        endpoint_id = check_endpoint_id(endpoint_id, f"{field}.endpoint_id")
        event_id = check_event_id(event_id, f"{field}.event_id")
        with self._storage.transaction() as store:
            found = store.delivery(principal.tenant_id, endpoint_id, event_id)
            if found is None:
                raise NotFound(f"{field}: no delivery of {event_id} to {endpoint_id}")
            if not store.redrive(principal.tenant_id, endpoint_id, event_id, self._clock.now()):
                raise FailedPrecondition(f"{field}: the delivery is {found.state.value}, not dead")
            again = store.delivery(principal.tenant_id, endpoint_id, event_id)
        assert again is not None
        return again

    # -- checks ---------------------------------------------------------------------------
    def _check_url(self, url: str, field: str) -> str:
        try:
            parse(url, allow_private=self._allow_private)
        except UrlRefused as exc:
            raise InvalidArgument(field, str(exc)) from None
        return url

    def _secret(self, secret: str, field: str) -> str:
        if not secret:
            return "whsec_" + base64.urlsafe_b64encode(self._random(32)).decode().rstrip("=")
        if not SECRET_MIN <= len(secret) <= SECRET_MAX or not _SECRET.match(secret):
            # Never echo the value: it is a secret even when it is a bad one.
            raise InvalidArgument(
                field, f"want {SECRET_MIN}..{SECRET_MAX} visible ASCII characters"
            )
        return secret

    @staticmethod
    def _endpoint(store: WebhookStore, principal: Principal, endpoint_id: str, field: str) -> None:
        if store.endpoint(principal.tenant_id, endpoint_id) is None:
            raise NotFound(f"{field}: no endpoint {endpoint_id}")


def check_events(events: list[str], field: str) -> tuple[str, ...]:
    if not events:
        raise InvalidArgument(field, f"at least one of {', '.join(EVENT_TYPES)}")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise InvalidArgument(
            field, f"unknown event type {unknown[0][:64]!r}, want any of {', '.join(EVENT_TYPES)}"
        )
    return tuple(dict.fromkeys(events))


def check_endpoint_id(value: str, field: str) -> str:
    if not _ENDPOINT_ID.match(value):
        raise InvalidArgument(field, "want an endpoint id (we_ and 16 characters)")
    return value


def check_event_id(value: str, field: str) -> str:
    if not _EVENT_ID.match(value):
        raise InvalidArgument(field, "want an event id (evt_ and 32 hex digits)")
    return value
