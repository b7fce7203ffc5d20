"""The contract of Audit's webhook ports (:mod:`audit.webhook_ports`) and of the outbox writer
every fact's transaction calls (``add_outbox``), part of Audit's suite
(:class:`tests.contracts.audit_storage.AuditStorageContract` inherits it): on the fakes
(audit/memory_webhooks.py) and on PostgreSQL (audit/postgres_webhooks.py with
sealmark/storage/postgres_outbox.py). The world gives ``webhooks`` (the port) and ``storage``
(whose transactions write outbox events with the facts)."""

from __future__ import annotations

import base64
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from audit.ports import AuditStorage
from audit.webhook_ports import Attempt, DeliveryState, Endpoint, WebhookStorage
from sealmark.errors import AlreadyExists
from sealmark.webhooks.events import (
    CLONE_ALERT,
    FIRST_GENUINE_SCAN,
    RECALL,
    OutboxEvent,
    first_genuine_scan,
    recall_event,
)
from tests.storage_contract import tenant

H0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def hours(n: float) -> datetime:
    return H0 + timedelta(hours=n)


class HookWorld(Protocol):
    storage: AuditStorage
    webhooks: WebhookStorage

    def add_tenant(self, tenant: object) -> None: ...


def _tenant(world: HookWorld) -> str:
    t = tenant()
    world.add_tenant(t)
    return t.id


def _endpoint(world: HookWorld, tenant_id: str, *events: str, at: datetime = H0) -> str:
    endpoint_id = "we_" + base64.b32encode(os.urandom(10)).decode().lower()
    with world.webhooks.transaction() as store:
        store.add_endpoint(
            Endpoint(
                tenant_id,
                endpoint_id,
                "https://hooks.example.com/in",
                events or (FIRST_GENUINE_SCAN,),
                "",
                True,
                at,
                at,
                None,
            ),
            "s" * 40,
        )
    return endpoint_id


def _scan_event(tenant_id: str, at: datetime = H0, code: str = "") -> OutboxEvent:
    key = "09526000000017" + (code or os.urandom(4).hex())
    return first_genuine_scan(tenant_id, key, "v-" + os.urandom(4).hex(), "DE", at)


def _write(world: HookWorld, *events: OutboxEvent) -> int:
    with world.storage.transaction() as store:
        return store.add_outbox(list(events))


class WebhookStorageContract:
    def test_endpoints_oldest_first_and_duplicates_refused(self, world: HookWorld) -> None:
        t, other = _tenant(world), _tenant(world)
        e2 = _endpoint(world, t, at=hours(2))
        e1 = _endpoint(world, t, CLONE_ALERT, RECALL, at=hours(1))
        with world.webhooks.reads() as store:
            found = store.endpoints(t)
            assert [e.endpoint_id for e in found] == [e1, e2]
            assert found[0].events == (CLONE_ALERT, RECALL)
            assert store.endpoints(other) == []
            assert store.endpoint(other, e1) is None
        with pytest.raises(AlreadyExists), world.webhooks.transaction() as store:
            store.add_endpoint(found[0], "x" * 40)

    def test_an_event_goes_to_the_subscribed_active_endpoints_only(self, world: HookWorld) -> None:
        t = _tenant(world)
        scans = _endpoint(world, t, FIRST_GENUINE_SCAN)
        _endpoint(world, t, CLONE_ALERT)
        paused = _endpoint(world, t, FIRST_GENUINE_SCAN)
        with world.webhooks.transaction() as store:
            store.set_active(t, paused, False)
        event = _scan_event(t)
        assert _write(world, event) == 1
        with world.webhooks.reads() as store:
            rows = store.deliveries(t)
        assert [(d.endpoint_id, d.event_id, d.state) for d in rows] == [
            (scans, event.event_id, DeliveryState.PENDING)
        ]
        assert rows[0].event_type == FIRST_GENUINE_SCAN and rows[0].attempts == 0

    def test_nothing_is_stored_for_a_tenant_without_endpoints(self, world: HookWorld) -> None:
        t = _tenant(world)
        assert _write(world, _scan_event(t)) == 0
        with world.webhooks.reads() as store:
            assert store.deliveries(t) == []

    def test_one_event_per_fact_however_often_written(self, world: HookWorld) -> None:
        t = _tenant(world)
        endpoint = _endpoint(world, t)
        first = _scan_event(t, code="SAME1")
        racing = _scan_event(t, hours(1), code="SAME1")  # another scan of the same code
        assert first.event_id == racing.event_id
        assert _write(world, first, racing) == 1
        assert _write(world, racing) == 0
        with world.webhooks.transaction() as store:
            due = store.claim(t, hours(2), hours(3), 10)
        assert [d.delivery.event_id for d in due] == [first.event_id]
        assert due[0].payload["verification_id"] == first.payload["verification_id"]
        assert due[0].delivery.endpoint_id == endpoint

    def test_an_outbox_row_rolls_back_with_its_fact(self, world: HookWorld) -> None:
        t = _tenant(world)
        _endpoint(world, t, RECALL)
        with pytest.raises(RuntimeError), world.storage.transaction() as store:
            store.add_outbox([recall_event(t, "rc-1", {"reason": "x"}, H0)])
            raise RuntimeError("the recall failed after its event was written")
        with world.webhooks.reads() as store:
            assert store.deliveries(t) == []

    def test_claims_lease_what_they_take(self, world: HookWorld) -> None:
        t = _tenant(world)
        endpoint = _endpoint(world, t)
        early, late = _scan_event(t, hours(0)), _scan_event(t, hours(5))
        _write(world, late, early)
        with world.webhooks.reads() as store:
            assert t in store.due_tenants(hours(1), 1000)
            assert t not in store.due_tenants(hours(-1), 1000)
        with world.webhooks.transaction() as store:
            taken = store.claim(t, hours(1), hours(1.5), 10)
        assert [d.delivery.event_id for d in taken] == [early.event_id]
        assert taken[0].url == "https://hooks.example.com/in"
        assert taken[0].secrets == ("s" * 40,)
        assert taken[0].occurred_at == early.occurred_at
        with world.webhooks.transaction() as store:
            assert store.claim(t, hours(1.2), hours(2), 10) == []  # leased
        with world.webhooks.transaction() as store:
            again = store.claim(t, hours(1.5), hours(2), 10)  # the lease ran out: at least once
        assert [d.delivery.event_id for d in again] == [early.event_id]
        with world.webhooks.reads() as store:
            d = store.delivery(t, endpoint, early.event_id)
        assert d is not None and d.next_at == hours(2)

    def test_concurrent_claims_never_share_a_delivery(self, world: HookWorld) -> None:
        t = _tenant(world)
        _endpoint(world, t)
        _write(world, *[_scan_event(t) for _ in range(20)])
        taken: list[str] = []
        lock = threading.Lock()

        def claim() -> None:
            with world.webhooks.transaction() as store:
                got = store.claim(t, hours(1), hours(2), 7)
            with lock:
                taken.extend(d.delivery.event_id for d in got)

        threads = [threading.Thread(target=claim) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(taken) == len(set(taken)) == 20

    def test_outcomes_are_recorded_and_dead_letters_redriven(self, world: HookWorld) -> None:
        t = _tenant(world)
        endpoint = _endpoint(world, t)
        ok, bad = _scan_event(t), _scan_event(t)
        _write(world, ok, bad)
        with world.webhooks.transaction() as store:
            store.record(
                t, endpoint, ok.event_id, Attempt(DeliveryState.DELIVERED, 1, H0, hours(1), 204, "")
            )
            store.record(
                t,
                endpoint,
                bad.event_id,
                Attempt(DeliveryState.DEAD, 3, hours(1), hours(1), 500, "HTTP 500"),
            )
        with world.webhooks.reads() as store:
            done = store.delivery(t, endpoint, ok.event_id)
            dead = store.deliveries(t, state=DeliveryState.DEAD)
            assert store.due_tenants(hours(9), 1000).count(t) == 0
        assert done is not None and done.state is DeliveryState.DELIVERED
        assert (done.delivered_at, done.last_status, done.attempts) == (hours(1), 204, 1)
        assert [(d.event_id, d.attempts, d.last_status, d.last_error) for d in dead] == [
            (bad.event_id, 3, 500, "HTTP 500")
        ]
        with world.webhooks.transaction() as store:
            assert not store.redrive(t, endpoint, ok.event_id, hours(2))  # not dead
            assert store.redrive(t, endpoint, bad.event_id, hours(2))
        with world.webhooks.transaction() as store:
            due = store.claim(t, hours(2), hours(3), 10)
        assert [(d.delivery.event_id, d.delivery.attempts) for d in due] == [(bad.event_id, 0)]

    def test_deliveries_filter_and_page_newest_first(self, world: HookWorld) -> None:
        t = _tenant(world)
        a, b = _endpoint(world, t), _endpoint(world, t)
        events = [_scan_event(t, hours(n)) for n in range(3)]
        _write(world, *events)
        with world.webhooks.reads() as store:
            rows = store.deliveries(t)
            assert len(rows) == 6
            assert [d.event_id for d in rows[::2]] == [e.event_id for e in reversed(events)]
            assert [d.endpoint_id for d in store.deliveries(t, endpoint_id=a)] == [a] * 3
            page = store.deliveries(t, offset=4, limit=10)
            assert page == rows[4:]
            one = store.deliveries(t, event_id=events[0].event_id, endpoint_id=b)
            assert [(d.event_id, d.endpoint_id) for d in one] == [(events[0].event_id, b)]

    def test_a_rotated_secret_is_honoured_until_its_time(self, world: HookWorld) -> None:
        t = _tenant(world)
        endpoint = _endpoint(world, t)
        with world.webhooks.transaction() as store:
            store.set_secret(t, endpoint, "n" * 40, hours(1), H0)
        _write(world, _scan_event(t, hours(0)))
        with world.webhooks.transaction() as store:
            due = store.claim(t, hours(0.5), hours(0.6), 10)
            shown = store.endpoint(t, endpoint)
        assert due[0].secrets == ("n" * 40, "s" * 40)
        assert shown is not None and shown.previous_until == hours(1)
        with world.webhooks.transaction() as store:
            later = store.claim(t, hours(2), hours(3), 10)
            store.set_secret(t, endpoint, "m" * 40, None, hours(2))
        assert later[0].secrets == ("n" * 40,)
        with world.webhooks.transaction() as store:
            store.record(
                t,
                endpoint,
                later[0].delivery.event_id,
                Attempt(DeliveryState.PENDING, 1, hours(3), hours(2), None, "x"),
            )
            last = store.claim(t, hours(4), hours(5), 10)
        assert last[0].secrets == ("m" * 40,)
