"""The contract of Audit's ports (:mod:`audit.ports`), run on every adapter: the in-memory
fakes (tests/unit/test_audit_storage_memory.py) and PostgreSQL with Redis
(tests/integration/test_audit_storage_postgres.py), and on any future backend.

A subclass provides the ``world`` fixture: an :class:`AuditWorld`, whose ``add_…`` methods
write the rows other services own (codes, SSCCs, containment, events, scans, alerts) the way
those services write them, and whose ``storage``, ``export``, ``tlog`` and ``wake`` are the
adapters under test. Each test works in fresh tenants, so worlds may be shared."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import pytest

from audit.domain import AlertStatus, RecallScope, Resolution
from audit.ports import AlertWake, AuditStorage, ExportStorage, Head, TlogStorage
from audit.webhook_ports import WebhookStorage
from sealmark.errors import AlreadyExists, NotFound
from sealmark.events import NewEvent
from sealmark.tenancy.model import Tenant
from tests.contracts.webhook_storage import WebhookStorageContract
from tests.storage_contract import gtin_under, tenant

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class AuditWorld(Protocol):
    storage: AuditStorage
    export: ExportStorage
    tlog: TlogStorage
    wake: AlertWake
    webhooks: WebhookStorage

    def add_tenant(self, tenant: Tenant) -> None: ...
    def add_product(
        self, tenant_id: str, gtin: str, alphabet: str = "numeric", length: int = 12
    ) -> None: ...
    def add_code(self, tenant_id: str, gtin: str, serial: str, **fields: Any) -> str: ...
    def add_sscc(
        self, tenant_id: str, sscc: str, state: str = "commissioned", market: str | None = None
    ) -> str: ...
    def add_history(
        self,
        tenant_id: str,
        unit: str,
        parent: str | None,
        action: str,
        event_id: str,
        at: datetime,
        attributes: dict[str, Any] | None = None,
    ) -> None: ...
    def add_event(self, event: NewEvent) -> int: ...
    def add_issue_request(
        self, tenant_id: str, request_id: str, work_order: str, gtin: str
    ) -> None: ...
    def add_signing_key(self, tenant_id: str, key_id: str, public_key: bytes) -> None: ...
    def add_scan(
        self,
        tenant_id: str,
        verification_id: str,
        code_key: str,
        verdict: str,
        at: datetime,
        **fields: Any,
    ) -> None: ...
    def add_alert(
        self,
        tenant_id: str,
        kind: str,
        at: datetime,
        *,
        code_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int: ...
    def ring(self, tenant_id: str) -> str:
        """Append an entry to the tenant's alert stream, as the verifier does."""


def brand(world: AuditWorld) -> tuple[str, str]:
    """A fresh tenant with one product: (tenant id, GTIN)."""
    t = tenant()
    world.add_tenant(t)
    gtin = gtin_under(t.company_prefixes[0])
    world.add_product(t.id, gtin)
    return t.id, gtin


def sscc() -> str:
    return str(int.from_bytes(os.urandom(8), "big") % 10**18).zfill(18)


def event(tenant_id: str, kind: str, when: datetime, **payload: Any) -> NewEvent:
    return NewEvent(tenant_id, kind, f"s:{kind}", when, payload, request_id=f"r-{kind}-{when:%H}")


class AuditStorageContract(WebhookStorageContract):
    # -- alerts -------------------------------------------------------------------------
    def test_alerts_newest_first_with_every_filter(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        other, _ = brand(world)
        key = world.add_code(tenant_id, gtin, "A1")
        a1 = world.add_alert(
            tenant_id, "suspect_clone", at(0), code_key=key, details={"region": "DE"}
        )
        a2 = world.add_alert(tenant_id, "counterfeit", at(1), details={"reason": "bad_signature"})
        a3 = world.add_alert(tenant_id, "counterfeit", at(2), details={"reason": "unknown_gtin"})
        world.add_alert(other, "suspect_clone", at(1))
        with world.storage.reads() as store:
            assert [a.id for a in store.alerts(tenant_id)] == [a3, a2, a1]
            assert [a.id for a in store.alerts(tenant_id, limit=2)] == [a3, a2]
            assert [a.id for a in store.alerts(tenant_id, before_id=a3)] == [a2, a1]
            assert [a.id for a in store.alerts(tenant_id, kinds=["counterfeit"])] == [a3, a2]
            assert [a.id for a in store.alerts(tenant_id, signature=True)] == [a2]
            assert [a.id for a in store.alerts(tenant_id, signature=False)] == [a3, a1]
            assert [a.id for a in store.alerts(tenant_id, since=at(1), until=at(2))] == [a2]
            assert [a.id for a in store.alerts(tenant_id, code_key=key)] == [a1]
            assert [a.id for a in store.alerts(tenant_id, status="acknowledged")] == []
            first = store.alert(tenant_id, a1)
            assert first is not None
            assert (first.region, first.code_key, first.status) == ("DE", key, AlertStatus.OPEN)
            assert "region" not in first.details
            assert store.alert(other, a1) is None

    def test_alerts_after_by_id_and_last(self, world: AuditWorld) -> None:
        tenant_id, _ = brand(world)
        with world.storage.reads() as store:
            assert store.last_alert_id(tenant_id) == 0
        ids = [world.add_alert(tenant_id, "suspect_clone", at(n)) for n in range(3)]
        with world.storage.reads() as store:
            assert [a.id for a in store.alerts_after(tenant_id, ids[0], 10)] == ids[1:]
            assert [a.id for a in store.alerts_after(tenant_id, 0, 2)] == ids[:2]
            assert [a.id for a in store.alerts_by_id(tenant_id, [ids[2], ids[0], 10**9])] == [
                ids[0],
                ids[2],
            ]
            assert store.last_alert_id(tenant_id) == ids[2]

    def test_alert_status_changes_keep_the_note_when_none(self, world: AuditWorld) -> None:
        tenant_id, _ = brand(world)
        alert_id = world.add_alert(tenant_id, "suspect_clone", at(0))
        with world.storage.transaction() as store:
            store.set_alert_status(alert_id, AlertStatus.ACKNOWLEDGED, "seen", None, "tok", at(1))
        with world.storage.transaction() as store:
            store.set_alert_status(
                alert_id, AlertStatus.RESOLVED, None, Resolution.CONFIRMED, "adm", at(2)
            )
        with world.storage.reads() as store:
            alert = store.alert(tenant_id, alert_id, lock=False)
        assert alert is not None
        assert (alert.status, alert.note, alert.resolution, alert.actor) == (
            AlertStatus.RESOLVED,
            "seen",
            Resolution.CONFIRMED,
            "adm",
        )
        assert (alert.acknowledged_at, alert.resolved_at) == (at(1), at(2))

    def test_a_block_that_raises_writes_nothing(self, world: AuditWorld) -> None:
        tenant_id, _ = brand(world)
        alert_id = world.add_alert(tenant_id, "suspect_clone", at(0))
        with pytest.raises(RuntimeError), world.storage.transaction() as store:
            store.set_alert_status(alert_id, AlertStatus.ACKNOWLEDGED, "x", None, "t", at(1))
            store.record(event(tenant_id, "audit.recalled", at(1), recall_id="rc-x"))
            raise RuntimeError("boom")
        with world.storage.reads() as store:
            alert = store.alert(tenant_id, alert_id)
        assert alert is not None and alert.status is AlertStatus.OPEN
        with world.tlog.transaction() as log:
            assert log.take_queue(tenant_id) == []

    def test_reads_refuse_writes(self, world: AuditWorld) -> None:
        tenant_id, _ = brand(world)
        with world.storage.reads() as store, pytest.raises(RuntimeError):
            store.record(event(tenant_id, "audit.recalled", at(1)))
        with world.tlog.reads() as log, pytest.raises(RuntimeError):
            log.take_queue(tenant_id)
        with world.tlog.transaction() as log:
            assert log.take_queue(tenant_id) == []

    def test_the_recall_lock_lets_one_recall_run_at_a_time(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        scope = RecallScope("gtin", gtin=gtin)
        holding, seen = threading.Event(), []

        def second() -> None:
            holding.wait(timeout=10)
            with world.storage.transaction() as store:
                store.lock_recalls(tenant_id)
                seen.append(store.recall_by_request(tenant_id, "same"))

        thread = threading.Thread(target=second)
        thread.start()
        with world.storage.transaction() as store:
            store.lock_recalls(tenant_id)
            holding.set()
            time.sleep(0.3)  # the second is waiting for the lock by now
            store.add_recall("rc-" + tenant_id, tenant_id, "same", scope, "w", at(1), "t", "fp")
        thread.join(timeout=10)
        assert seen == [("rc-" + tenant_id, "fp")]

    # -- units ----------------------------------------------------------------------------
    def test_codes_units_and_products_are_the_tenants_own(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        other, _ = brand(world)
        key = world.add_code(
            tenant_id, gtin, "S1", lot="L1", expiry=date(2027, 1, 31), request_id="rq", key_id="k1"
        )
        box = world.add_sscc(tenant_id, sscc())
        with world.storage.reads() as store:
            facts = store.code(tenant_id, key)
            assert facts is not None
            assert (facts.gtin, facts.serial, facts.lot, facts.expiry, facts.state) == (
                gtin,
                "S1",
                "L1",
                date(2027, 1, 31),
                "commissioned",
            )
            assert (facts.request_id, facts.key_id) == ("rq", "k1")
            assert store.code(other, key) is None
            assert store.owns_unit(tenant_id, key) and store.owns_unit(tenant_id, box)
            assert not store.owns_unit(other, key) and not store.owns_unit(other, box)
            assert store.owns_product(tenant_id, gtin) and not store.owns_product(other, gtin)

    def test_containment_history_by_unit_then_oldest_first(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        item = world.add_code(tenant_id, gtin, "H1")
        case, pallet = world.add_sscc(tenant_id, sscc()), world.add_sscc(tenant_id, sscc())
        world.add_history(tenant_id, case, pallet, "packed", "e2", at(2))
        world.add_history(tenant_id, item, case, "packed", "e1", at(1), {"n": "1"})
        world.add_history(tenant_id, item, case, "unpacked", "e3", at(3))
        with world.storage.reads() as store:
            rows = store.containment_history([item, case])
        actions = {item: ["packed", "unpacked"], case: ["packed"]}
        assert [(r[0], r[2]) for r in rows] == [(u, a) for u in sorted(actions) for a in actions[u]]
        first = next(r for r in rows if r[0] == item)
        assert (first[1], first[3], first[4], first[5]) == (case, "e1", at(1), {"n": "1"})

    def test_status_and_logistics_events_name_the_unit(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        key = world.add_code(tenant_id, gtin, "E1")
        world.add_event(event(tenant_id, "codes.commissioned", at(1), gtin=gtin, serials=["E1"]))
        world.add_event(event(tenant_id, "codes.issued", at(0), gtin=gtin, serials=["E1"]))
        world.add_event(event(tenant_id, "codes.scrapped", at(2), gtin=gtin, serials=["E2"]))
        world.add_event(event(tenant_id, "logistics.shipped", at(3), codes=[key]))
        world.add_event(event(tenant_id, "logistics.received", at(4), codes=["x", key]))
        world.add_event(event(tenant_id, "aggregation.packed", at(5), codes=[key]))
        with world.storage.reads() as store:
            status = store.status_events(tenant_id, gtin, "E1")
            logistics = store.logistics_events(tenant_id, [key])
        assert [(k, rid, when) for k, rid, when, _, _ in status] == [
            ("codes.commissioned", "r-codes.commissioned-13", at(1))
        ]
        assert status[0][4]["serials"] == ["E1"]
        assert [e[0] for e in logistics] == ["logistics.shipped", "logistics.received"]

    def test_scans_oldest_first(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        key = world.add_code(tenant_id, gtin, "SC1")
        world.add_scan(tenant_id, "v-" + key + "-2", key, "counterfeit", at(2), region="FR")
        world.add_scan(
            tenant_id, "v-" + key + "-1", key, "authentic", at(1), reasons=["pin_confirmed"]
        )
        with world.storage.reads() as store:
            scans = store.scans(key)
        assert [(s[0], s[1], s[2], s[3], s[4]) for s in scans] == [
            ("v-" + key + "-1", at(1), "authentic", "DE", ["pin_confirmed"]),
            ("v-" + key + "-2", at(2), "counterfeit", "FR", []),
        ]

    # -- recalls --------------------------------------------------------------------------
    def test_recall_rows_are_unique_by_request(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        scope = RecallScope("gtin", gtin=gtin)
        rid = "rc-" + os.urandom(6).hex()
        with world.storage.transaction() as store:
            store.lock_recalls(tenant_id)
            assert store.recall_by_request(tenant_id, "req-1") is None
            store.add_recall(rid, tenant_id, "req-1", scope, "why", at(1), "tok", "fp")
        with world.storage.reads() as store:
            assert store.recall_by_request(tenant_id, "req-1") == (rid, "fp")
            assert store.recall(tenant_id, rid) == ("why", at(1))
        with pytest.raises(AlreadyExists), world.storage.transaction() as store:
            store.add_recall(rid + "b", tenant_id, "req-1", scope, "why", at(1), "tok", "fp")
        other, _ = brand(world)
        with world.storage.reads() as store:
            assert store.recall(other, rid) is None
            assert store.recall_by_request(other, "req-1") is None

    def test_recall_of_a_lot_takes_recallable_codes_once(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        a = world.add_code(tenant_id, gtin, "L1", lot="LOT", market="DE")
        b = world.add_code(tenant_id, gtin, "L2", lot="LOT")
        world.add_code(tenant_id, gtin, "L3", lot="LOT", state="scrapped")
        world.add_code(tenant_id, gtin, "L4", lot="OTHER")
        scope = RecallScope("lot", gtin=gtin, lot="LOT")
        rid = "rc-" + os.urandom(6).hex()
        with world.storage.transaction() as store:
            store.add_recall(rid, tenant_id, "r1", scope, "why", at(1), "tok", "fp")
            assert store.recall_units(tenant_id, scope, rid, at(1)) == 2
            store.hold_recalled_lot(tenant_id, gtin, "LOT", "recalled", at(1), "tok")
        with world.storage.transaction() as store:
            store.add_recall(rid + "x", tenant_id, "r2", scope, "again", at(2), "tok", "fp2")
            assert store.recall_units(tenant_id, scope, rid + "x", at(2)) == 0
        with world.storage.reads() as store:
            facts = store.code(tenant_id, a)
            assert facts is not None and facts.state == "recalled"
            assert store.recall_of(b) == (rid, "why", at(1), "r1")
            assert store.recall_of(gtin + "L3") is None
            assert store.lot_hold(tenant_id, gtin, "LOT") == (True, "recalled")
            assert store.lot_hold(tenant_id, gtin, "OTHER") is None
            units, markets, _, _, not_shipped, _ = store.recall_report(rid, at(1))
        assert (units, markets, not_shipped) == (2, [("", 1), ("DE", 1)], 1)

    def test_recall_of_a_parent_takes_everything_inside(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        pallet, case = world.add_sscc(tenant_id, sscc()), world.add_sscc(tenant_id, sscc())
        inside = [world.add_code(tenant_id, gtin, f"P{n}") for n in range(3)]
        outside = world.add_code(tenant_id, gtin, "P9")
        world.add_history(tenant_id, case, pallet, "packed", "e1", at(0))
        for n, key in enumerate(inside):
            world.add_history(tenant_id, key, case, "packed", f"e{n + 2}", at(0))
        scope = RecallScope("parent", keys=(pallet,))
        rid = "rc-" + os.urandom(6).hex()
        with world.storage.transaction() as store:
            store.add_recall(rid, tenant_id, "r", scope, "why", at(1), "tok", "fp")
            assert store.recall_units(tenant_id, scope, rid, at(1)) == 3
        with world.storage.reads() as store:
            assert store.recall_of(case) is not None and store.recall_of(pallet) is not None
            assert store.recall_of(outside) is None
            assert all(store.recall_of(k) is not None for k in inside)
        with world.export.snapshot() as reader:
            assert reader.recalled(rid) == sorted([pallet, case, *inside])

    def test_recall_report_counts(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        keys = [
            world.add_code(tenant_id, gtin, "R1", market="DE"),
            world.add_code(tenant_id, gtin, "R2", market="DE", state="dispensed"),
            world.add_code(tenant_id, gtin, "R3", market="FR"),
        ]
        world.add_scan(tenant_id, f"v{keys[0]}a", keys[0], "authentic", at(0), region="AT")
        world.add_scan(tenant_id, f"v{keys[0]}b", keys[0], "authentic", at(3), region="CH")
        world.add_scan(tenant_id, f"v{keys[1]}a", keys[1], "authentic", at(4), region="CH")
        world.add_scan(
            tenant_id, f"v{keys[2]}a", keys[2], "recalled", at(5), region="PL", active=False
        )
        scope = RecallScope("codes", keys=tuple(keys))
        rid = "rc-" + os.urandom(6).hex()
        with world.storage.transaction() as store:
            store.add_recall(rid, tenant_id, "r", scope, "why", at(2), "tok", "fp")
            assert store.recall_units(tenant_id, scope, rid, at(2)) == 3
        with world.storage.reads() as store:
            assert store.recall_report(rid, at(2)) == (
                3,
                [("DE", 2), ("FR", 1)],
                [("CH", 2)],
                3,
                0,
                1,
            )

    def test_verdict_mix_counts_the_tenants_scans_in_the_window(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        other, other_gtin = brand(world)
        key = world.add_code(tenant_id, gtin, "M1")
        for n, verdict in enumerate(["authentic", "suspect_clone", "suspect_clone", "diverted"]):
            world.add_scan(tenant_id, f"v{key}{n}", key, verdict, at(n))
        world.add_scan(tenant_id, f"v{key}late", key, "counterfeit", at(10))
        foreign = world.add_code(other, other_gtin, "M1")
        world.add_scan(other, f"v{foreign}", foreign, "authentic", at(1))
        with world.storage.reads() as store:
            assert store.verdict_mix(tenant_id, at(0), at(4)) == [
                ["suspect_clone", 2],
                ["authentic", 1],
                ["diverted", 1],
            ]
            assert store.verdict_mix(tenant_id, at(4), None) == [["counterfeit", 1]]
            assert store.verdict_mix(tenant_id, at(20), None) == []

    def test_unresolved_alerts_by_kind_signature_and_status(self, world: AuditWorld) -> None:
        tenant_id, _ = brand(world)
        other, _ = brand(world)
        world.add_alert(tenant_id, "suspect_clone", at(0))
        world.add_alert(tenant_id, "suspect_clone", at(1))
        acked = world.add_alert(tenant_id, "suspect_clone", at(2))
        resolved = world.add_alert(tenant_id, "diversion", at(3))
        world.add_alert(tenant_id, "counterfeit", at(4), details={"reason": "bad_signature"})
        world.add_alert(tenant_id, "counterfeit", at(5), details={"reason": "unknown_serial"})
        world.add_alert(other, "diversion", at(1))
        with world.storage.transaction() as store:
            store.set_alert_status(acked, AlertStatus.ACKNOWLEDGED, None, None, "tok", at(6))
            store.set_alert_status(
                resolved, AlertStatus.RESOLVED, "n", Resolution.CONFIRMED, "tok", at(6)
            )
        with world.storage.reads() as store:
            assert store.unresolved_alerts(tenant_id) == [
                ["counterfeit", False, "open", 1],
                ["counterfeit", True, "open", 1],
                ["suspect_clone", False, "acknowledged", 1],
                ["suspect_clone", False, "open", 2],
            ]

    def test_recall_reach_newest_first_with_markets_and_scans(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        other, other_gtin = brand(world)
        keys = [
            world.add_code(tenant_id, gtin, "Q1", market="DE", lot="L1"),
            world.add_code(tenant_id, gtin, "Q2", market="FR", lot="L1"),
            world.add_code(tenant_id, gtin, "Q3", lot="L1"),
            world.add_code(tenant_id, gtin, "Q4", market="DE", lot="L2"),
        ]
        world.add_scan(tenant_id, f"v{keys[0]}a", keys[0], "authentic", at(0))
        world.add_scan(tenant_id, f"v{keys[0]}b", keys[0], "recalled", at(3), active=False)
        world.add_scan(tenant_id, f"v{keys[1]}a", keys[1], "recalled", at(4), active=False)
        world.add_code(other, other_gtin, "Q1", lot="L1")  # another brand's lot L1: not taken
        first, second = "rc-" + os.urandom(6).hex(), "rc-" + os.urandom(6).hex()
        lot1, lot2 = RecallScope("lot", gtin, "L1"), RecallScope("lot", gtin, "L2")
        with world.storage.transaction() as store:
            store.add_recall(first, tenant_id, "r1", lot1, "glass", at(2), "tok", "fp1")
            store.recall_units(tenant_id, lot1, first, at(2))
            store.add_recall(second, tenant_id, "r2", lot2, "label", at(5), "tok", "fp2")
            store.recall_units(tenant_id, lot2, second, at(5))
        with world.storage.reads() as store:
            assert store.recall_reach(tenant_id, 10) == [
                [second, at(5), "label", 1, 1, 0],
                [first, at(2), "glass", 3, 2, 2],
            ]
            assert store.recall_reach(tenant_id, 1) == [[second, at(5), "label", 1, 1, 0]]
            assert store.recall_reach(other, 10) == []

    def test_recorded_events_grow_and_logged_ones_are_queued_once(self, world: AuditWorld) -> None:
        tenant_id, _ = brand(world)
        other, _ = brand(world)
        with world.storage.transaction() as store:
            first = store.record(event(tenant_id, "audit.recalled", at(1), recall_id="rc-1"))
            second = store.record(event(tenant_id, "tenant.note", at(2)))
            third = store.record(event(tenant_id, "lot.held", at(3), gtin="g"))
            store.record(event(other, "audit.recalled", at(1)))
        assert first < second < third
        with world.tlog.transaction() as log:
            taken = log.take_queue(tenant_id)
        assert [(t[0], t[1], t[2], t[3]) for t in taken] == [
            (first, "audit.recalled", "r-audit.recalled-13", at(1)),
            (third, "lot.held", "r-lot.held-15", at(3)),
        ]
        assert taken[0][4] == {"recall_id": "rc-1"}
        with world.tlog.transaction() as log:
            assert log.take_queue(tenant_id) == []
            assert len(log.take_queue(other)) == 1

    # -- reports --------------------------------------------------------------------------
    def test_report_rows(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        world.add_issue_request(tenant_id, "iq1", "WO-1", gtin)
        world.add_code(
            tenant_id,
            gtin,
            "W1",
            lot="A",
            request_id="iq1",
            state="allocated",
            serial_scheme=1,
        )
        world.add_code(
            tenant_id,
            gtin,
            "W2",
            lot="A",
            request_id="iq1",
            state="in_transit",
            expiry=date(2026, 11, 20),
            market="DE",
        )
        world.add_code(tenant_id, gtin, "W3", lot="B", request_id="iq1", state="scrapped")
        world.add_code(tenant_id, gtin, "W4", lot="A", state="received", expiry=date(2027, 6, 1))
        key = gtin + "W2"
        world.add_scan(tenant_id, f"v{key}1", key, "authentic", at(1), region="DE")
        world.add_scan(tenant_id, f"v{key}2", key, "counterfeit", at(2), region="DE")
        world.add_scan(tenant_id, f"v{key}3", key, "diverted", at(30), region="FR")
        world.add_scan(tenant_id, f"v{key}4", key, "unknown_code", at(31), region="FR")
        world.add_alert(tenant_id, "suspect_clone", at(1), details={"region": "PL"})
        with world.storage.reads() as store:
            assert store.reconciliation(tenant_id, "WO-1", None, None) == [
                ["A", 2, 1, 0, 0, 1, 1],
                ["B", 1, 0, 1, 0, 0, 0],
            ]
            assert store.reconciliation(tenant_id, "WO-1", gtin, "B") == [["B", 1, 0, 1, 0, 0, 0]]
            assert store.scans_by_region_day(tenant_id, None, None, None) == [
                [date(2026, 11, 1), "DE", 1, 1, 0, 2],
                [date(2026, 11, 2), "FR", 0, 1, 1, 2],
            ]
            assert store.scans_by_region_day(tenant_id, at(2), None, "FR") == [
                [date(2026, 11, 2), "FR", 0, 1, 1, 2]
            ]
            assert store.hotspots(tenant_id, None, None, None) == [
                ["DE", 0, 1, 0, 0],
                ["FR", 0, 0, 1, 0],
                ["PL", 0, 0, 0, 1],
            ]
            assert store.nearing_expiry(
                tenant_id, None, None, date(2026, 11, 1), date(2026, 12, 1)
            ) == [[gtin, "A", date(2026, 11, 20), "DE", 1]]
            assert store.serial_products(tenant_id, None) == [(gtin, "numeric", 12, 4, 1)]
            assert store.serial_products(tenant_id, "0" * 14) == []

    # -- export ---------------------------------------------------------------------------
    def test_export_reads(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        item = world.add_code(tenant_id, gtin, "X1", lot="L", expiry=date(2027, 2, 1))
        world.add_code(tenant_id, gtin, "X2")
        case, pallet = world.add_sscc(tenant_id, sscc()), world.add_sscc(tenant_id, sscc())
        world.add_history(tenant_id, item, case, "packed", "p1", at(0))
        world.add_history(tenant_id, case, pallet, "packed", "p2", at(0))
        ids = [
            world.add_event(event(tenant_id, "codes.commissioned", at(1), gtin=gtin)),
            world.add_event(event(tenant_id, "tenant.note", at(2))),
            world.add_event(event(tenant_id, "logistics.shipped", at(3), codes=[pallet])),
        ]
        with world.export.snapshot() as reader:
            assert reader.tenant(tenant_id).id == tenant_id
            with pytest.raises(NotFound):
                reader.tenant("t-none")
            events = reader.events(tenant_id, None, None)
            assert [(r.id, r.kind) for r in events] == [
                (ids[0], "codes.commissioned"),
                (ids[2], "logistics.shipped"),
            ]
            window = reader.events(tenant_id, at(2), at(4))
            assert [r.payload for r in window] == [{"codes": [pallet]}]
            window.close()
            assert reader.lot_facts(tenant_id, gtin, ["X1", "X2", "none"]) == {
                "X1": ("L", date(2027, 2, 1)),
                "X2": ("", None),
            }
            assert reader.lot_units(tenant_id, gtin, "L") == {item, case, pallet}
            assert reader.descendants_ever([pallet]) == {pallet, case, item}
            assert reader.owns_unit(tenant_id, case)
            assert [r[0] for r in reader.containment_history([item])] == [item]

    # -- transparency log -----------------------------------------------------------------
    def _head(self, tenant_id: str, size: int = 0, note: str = "n0") -> Head:
        return Head(tenant_id, "o/" + tenant_id, "k", b"p" * 32, b"pem", size, b"r" * 32, note, T0)

    def test_tlog_head_and_entries(self, world: AuditWorld) -> None:
        tenant_id, _ = brand(world)
        with world.tlog.transaction() as log:
            assert log.head(tenant_id, lock=True) is None
            log.create_head(self._head(tenant_id))
            log.create_head(self._head(tenant_id, note="loser"))  # a racing first: no-op
            assert log.head(tenant_id, lock=True) == self._head(tenant_id)
            log.append(
                tenant_id,
                0,
                [("recall", b"e0", b"0" * 32, 0), ("recall", b"e1", b"1" * 32, 0)],
                at(1),
            )
            log.update_head(self._head(tenant_id, 2, "n2"))
        with world.tlog.reads() as log:
            assert log.head(tenant_id) == self._head(tenant_id, 2, "n2")
            assert log.leaf_hashes(tenant_id, 2) == [b"0" * 32, b"1" * 32]
            assert log.leaf_hashes(tenant_id, 1) == [b"0" * 32]
            assert log.index_of(tenant_id, b"1" * 32) == 1
            assert log.index_of(tenant_id, b"9" * 32) is None
            assert log.entry(tenant_id, 1) == b"e1"
            with pytest.raises(NotFound):
                log.entry(tenant_id, 7)
            assert log.entries(tenant_id, 1, 10) == [(1, "recall", b"e1", at(1))]
        with pytest.raises(AlreadyExists), world.tlog.transaction() as log:
            log.append(tenant_id, 1, [("recall", b"x", b"2" * 32, 0)], at(2))

    def test_tlog_batch_reads(self, world: AuditWorld) -> None:
        tenant_id, gtin = brand(world)
        world.add_issue_request(tenant_id, "iss", "WO", gtin)
        keys = [
            world.add_code(tenant_id, gtin, f"B{n}", request_id="iss", seq=n, signature=f"sig{n}")
            for n in (2, 0, 1)
        ]
        world.add_signing_key(tenant_id, "k1", b"K" * 32)
        issued = world.add_event(
            NewEvent(tenant_id, "codes.issued", "iss", at(0), {"first": 0, "count": 2}, "iss")
        )
        with world.tlog.transaction() as log:
            log.create_head(self._head(tenant_id))
            assert log.batch_units(tenant_id, "iss", 0, 2) == [
                (gtin + "B0", "sig0"),
                (gtin + "B1", "sig1"),
            ]
            assert log.signatures(tenant_id, [keys[0], "none"]) == {keys[0]: "sig2"}
            assert log.public_key(tenant_id, "k1") == b"K" * 32
            assert log.public_key(tenant_id, "k9") is None
            assert log.batch_entry_of(tenant_id, gtin + "B1") is None  # not logged yet
            log.append(tenant_id, 0, [("batch_commitment", b"b", b"b" * 32, issued)], at(1))
            assert log.batch_entry_of(tenant_id, gtin + "B1") == (0, b"b", "iss", 0, 2)
            assert log.batch_entry_of(tenant_id, gtin + "B2") is None  # outside the chunk

    # -- the alert stream -----------------------------------------------------------------
    def test_wake_returns_the_newest_entry_or_the_cursor(self, world: AuditWorld) -> None:
        tenant_id, _ = brand(world)
        started = time.monotonic()
        assert world.wake.wait(tenant_id, "$", 100) == "$"
        assert time.monotonic() - started >= 0.05
        world.ring(tenant_id)
        newest = world.ring(tenant_id)
        assert world.wake.wait(tenant_id, "0-0", 100) == newest
        assert world.wake.wait(tenant_id, newest, 50) == newest
