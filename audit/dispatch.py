"""The webhook dispatcher: sends the outbox's due deliveries, at least once.

A round (:meth:`Dispatcher.run_once`) finds the tenants with due deliveries, claims a batch
of each (leased: a claim moves its due time to the end of the lease, in the claim's own
transaction), sends each outside any transaction, and records the outcome: delivered on a
2xx; otherwise due again after an exponential backoff with jitter, or dead (a dead letter)
once ``max_attempts`` attempts failed. A process that dies between its send and its record
leaves the delivery leased: it goes out again when the lease ends, with the same event id
and body (receivers de-duplicate by ``Sealmark-Event-Id``). :class:`DispatchLoop` runs rounds
on a thread of the Audit service."""

from __future__ import annotations

import json
import random as _random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog

from audit.webhook_ports import (
    Attempt,
    DeliveryState,
    DueDelivery,
    SendResult,
    WebhookSender,
    WebhookStorage,
)
from sealmark.clock import Clock
from sealmark.errors import SealmarkError
from sealmark.webhooks import signing
from sealmark.webhooks.backoff import delay_s
from sealmark.webhooks.events import OutboxEvent, body_of

log = structlog.get_logger("audit.webhooks")

ERROR_MAX = 300  # characters of a failure kept on the delivery


@dataclass(frozen=True)
class DispatchPolicy:
    max_attempts: int = 12
    backoff_base_s: float = 10.0
    backoff_cap_s: float = 3600.0
    timeout_s: float = 10.0
    batch: int = 50  # deliveries claimed per tenant per round
    tenants: int = 100  # tenants served per round

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is not claimed again: past the send's timeout, with
        room for recording the outcome."""
        return self.timeout_s * 2 + 5


def body_bytes(due: DueDelivery) -> bytes:
    """The exact bytes POSTed, the same for every attempt of the event."""
    d = due.delivery
    event = OutboxEvent(d.tenant_id, d.event_id, d.event_type, due.occurred_at, due.payload)
    return json.dumps(body_of(event), sort_keys=True, separators=(",", ":")).encode()


class Dispatcher:
    """Sends due deliveries through ``sender``; ``open_secret`` turns a stored secret back
    into the key (what ``Webhooks``' ``seal`` made of it); ``random`` draws the jitter."""

    def __init__(
        self,
        storage: WebhookStorage,
        sender: WebhookSender,
        clock: Clock,
        policy: DispatchPolicy,
        open_secret: Callable[[str], str],
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._open = open_secret
        self._storage = storage
        self._sender = sender
        self._clock = clock
        self._policy = policy
        self._random = random

    def run_once(self) -> int:
        """One round; how many deliveries were attempted."""
        now = self._clock.now()
        with self._storage.reads() as store:
            tenants = store.due_tenants(now, self._policy.tenants)
        sent = 0
        for tenant_id in tenants:
            with self._storage.transaction() as store:
                claimed = store.claim(
                    tenant_id,
                    now,
                    now + timedelta(seconds=self._policy.lease_s),
                    self._policy.batch,
                )
            for due in claimed:
                self._deliver(due)
                sent += 1
        return sent

    def _deliver(self, due: DueDelivery) -> None:
        d = due.delivery
        attempt_no = d.attempts + 1
        body = body_bytes(due)
        at = self._clock.now()
        try:
            keys = [self._open(s) for s in due.secrets]
        except SealmarkError as exc:  # never sent unsigned: a failed attempt, named
            result = SendResult(None, exc.message)
        else:
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Sealmark-Webhooks/1",
                signing.EVENT_ID_HEADER: d.event_id,
                signing.EVENT_TYPE_HEADER: d.event_type,
                signing.ATTEMPT_HEADER: str(attempt_no),
                signing.HEADER: signing.sign(keys, int(at.timestamp()), body),
            }
            try:
                result = self._sender.send(due.url, headers, body, self._policy.timeout_s)
            except Exception as exc:  # a sender's bug must not stop the loop: a failure
                log.exception("webhook.sender_failed", event_id=d.event_id)
                result = SendResult(None, f"sender error: {type(exc).__name__}")
        done = self._clock.now()
        if result.delivered:
            outcome = Attempt(DeliveryState.DELIVERED, attempt_no, done, done, result.status, "")
        else:
            error = (result.error or f"HTTP {result.status}")[:ERROR_MAX]
            if attempt_no >= self._policy.max_attempts:
                outcome = Attempt(DeliveryState.DEAD, attempt_no, done, done, result.status, error)
                log.warning(
                    "webhook.dead_letter",
                    tenant=d.tenant_id,
                    endpoint=d.endpoint_id,
                    event_id=d.event_id,
                    attempts=attempt_no,
                    error=error,
                )
            else:
                wait = delay_s(
                    attempt_no,
                    self._policy.backoff_base_s,
                    self._policy.backoff_cap_s,
                    self._random,
                )
                outcome = Attempt(
                    DeliveryState.PENDING,
                    attempt_no,
                    done + timedelta(seconds=wait),
                    done,
                    result.status,
                    error,
                )
        with self._storage.transaction() as store:
            store.record(d.tenant_id, d.endpoint_id, d.event_id, outcome)


class DispatchLoop:
    """:meth:`Dispatcher.run_once` every ``every_s`` on a daemon thread (at once again after
    a round that found work); errors are logged and the loop goes on."""

    def __init__(self, dispatcher: Dispatcher, every_s: float) -> None:
        self._dispatcher = dispatcher
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> DispatchLoop:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the round in progress (within ``timeout_s``); safe to call twice."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self._dispatcher.run_once() > 0
            except Exception as exc:
                log.warning("webhook.round_failed", error=str(exc))
                busy = False
            if not busy:
                self._stop.wait(self._every_s)
