"""The Aggregator's use cases on the in-memory store: packing, idempotent resends, logistics
states, the decommission undo window, the queries, and the fields a refusal names."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.domain import Level, SsccRange
from aggregator.memory import MemoryAggregationStorage
from aggregator.usecases import Aggregator, Where
from sealmark.clock import FixedClock
from sealmark.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from sealmark.gs1 import make_sscc
from sealmark.tenancy.model import Principal, Role
from sealmark.units import UnitRef
from tests.contracts.aggregator_storage import gtin
from tests.storage_contract import tenant
from tests.unit.test_architecture import FORBIDDEN, imported_names

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@dataclass
class Plant:
    storage: MemoryAggregationStorage
    clock: FixedClock
    aggregator: Aggregator
    tenant_id: str
    prefix: str
    items: list[UnitRef]
    line: Principal
    logistics: Principal

    def sscc(self, reference: int) -> UnitRef:
        return UnitRef(sscc=make_sscc(3, self.prefix, reference))

    def state(self, ref: UnitRef) -> str:
        with self.storage.reads() as store:
            return store.units(self.tenant_id, [ref.key])[ref.key].state

    def kinds(self) -> list[str]:
        return [e.kind for e in self.storage.events(self.tenant_id)]


@pytest.fixture
def plant() -> Plant:
    storage = MemoryAggregationStorage()
    clock = FixedClock(T0)
    brand = tenant()
    prefix = brand.company_prefixes[0]
    storage.add_tenant(brand)
    item_gtin = gtin(prefix, 1)
    storage.add_product(brand.id, item_gtin, Level.ITEM)
    serials = [f"S{n}" for n in range(6)]
    for serial in serials:
        storage.add_code(brand.id, item_gtin, serial, lot="L1")
    storage.allocate_ssccs(brand.id, SsccRange(3, prefix, 0, 100))
    return Plant(
        storage,
        clock,
        Aggregator(storage, clock),
        brand.id,
        prefix,
        [UnitRef(gtin=item_gtin, serial=s) for s in serials],
        Principal(brand.id, frozenset({Role.LINE}), "line-token"),
        Principal(brand.id, frozenset({Role.LOGISTICS}), "logistics-token"),
    )


def test_pack_registers_the_sscc_and_links_the_children(plant: Plant) -> None:
    case = plant.sscc(1)
    outcome = plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:3], level=Level.CASE)
    assert (outcome.event_id, outcome.duplicate, outcome.affected) == ("pack-1", False, 3)
    assert outcome.recorded_at == T0
    assert outcome.epcis_event_id.startswith("ni:///sha-256;")
    assert plant.aggregator.ancestors(plant.line, plant.items[0]) == [case]
    assert plant.aggregator.counts(plant.line, case) == ({Level.ITEM: 3}, 3)
    assert plant.state(case) == "commissioned"
    assert plant.kinds() == ["aggregation.packed"]


def test_a_resend_returns_the_first_outcome_and_writes_nothing(plant: Plant) -> None:
    case = plant.sscc(1)
    first = plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:2], level=Level.CASE)
    plant.clock.advance(seconds=30)
    again = plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:2], level=Level.CASE)
    assert again.duplicate
    assert (again.affected, again.recorded_at, again.epcis_event_id) == (
        first.affected,
        first.recorded_at,
        first.epcis_event_id,
    )
    assert plant.kinds() == ["aggregation.packed"]


def test_a_different_request_under_a_used_id_is_refused(plant: Plant) -> None:
    case = plant.sscc(1)
    plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:2], level=Level.CASE)
    with pytest.raises(AlreadyExists, match="event_id pack-1 was used for another"):
        plant.aggregator.pack(plant.line, "pack-1", case, plant.items[2:4], level=Level.CASE)
    assert plant.aggregator.counts(plant.line, case) == ({Level.ITEM: 2}, 2)


def test_packing_what_is_in_already_changes_nothing_and_records_no_event(plant: Plant) -> None:
    case = plant.sscc(1)
    plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:2], level=Level.CASE)
    outcome = plant.aggregator.pack(plant.line, "pack-2", case, plant.items[:2])
    assert (outcome.duplicate, outcome.affected, outcome.epcis_event_id) == (False, 0, "")
    assert plant.kinds() == ["aggregation.packed"]
    assert plant.aggregator.pack(plant.line, "pack-2", case, plant.items[:2]).duplicate


def test_a_packed_unit_cannot_go_into_a_second_parent(plant: Plant) -> None:
    first, second = plant.sscc(1), plant.sscc(2)
    plant.aggregator.pack(plant.line, "pack-1", first, plant.items[:1], level=Level.CASE)
    with pytest.raises(FailedPrecondition, match="already packed in"):
        plant.aggregator.pack(plant.line, "pack-2", second, plant.items[:1], level=Level.CASE)
    with pytest.raises(NotFound, match="not issued to you"):
        plant.aggregator.ancestors(plant.line, second)


def test_of_two_concurrent_packs_of_one_child_exactly_one_wins(plant: Plant) -> None:
    results: list[str] = []
    barrier = threading.Barrier(2)

    def pack(n: int) -> None:
        barrier.wait()
        try:
            plant.aggregator.pack(
                plant.line, f"race-{n}", plant.sscc(n), plant.items[:1], level=Level.CASE
            )
            results.append("packed")
        except FailedPrecondition:
            results.append("refused")

    threads = [threading.Thread(target=pack, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == ["packed", "refused"]
    assert len(plant.aggregator.ancestors(plant.line, plant.items[0])) == 1


def test_a_cycle_is_refused(plant: Plant) -> None:
    case, pallet = plant.sscc(1), plant.sscc(2)
    plant.aggregator.pack(plant.line, "p-1", case, plant.items[:1], level=Level.CASE)
    plant.aggregator.pack(plant.line, "p-2", pallet, [case], level=Level.PALLET)
    with pytest.raises(FailedPrecondition):
        plant.aggregator.pack(plant.line, "p-3", case, [pallet])


def test_unpack_takes_named_children_or_everything_out(plant: Plant) -> None:
    case = plant.sscc(1)
    plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:3], level=Level.CASE)
    one = plant.aggregator.unpack(plant.line, "unpack-1", case, plant.items[:1])
    assert one.affected == 1
    with pytest.raises(FailedPrecondition, match="is not in"):
        plant.aggregator.unpack(plant.line, "unpack-2", case, plant.items[:1])
    rest = plant.aggregator.unpack(plant.line, "unpack-3", case, [])
    assert rest.affected == 2
    assert plant.aggregator.counts(plant.line, case) == ({}, 0)
    history, token = plant.aggregator.history(plant.line, plant.items[1])
    assert [(h.action, h.parent) for h in history] == [("packed", case), ("unpacked", case)]
    assert token == ""


def test_a_lot_on_hold_is_not_packed(plant: Plant) -> None:
    plant.storage.hold_lot(plant.items[0].gtin, "L1")
    with pytest.raises(FailedPrecondition, match="on hold"):
        plant.aggregator.pack(
            plant.line, "pack-1", plant.sscc(1), plant.items[:1], level=Level.CASE
        )


def test_a_rule_caps_what_a_parent_holds(plant: Plant) -> None:
    plant.aggregator.set_rule(plant.tenant_id, "sscc-case", 2, "none")
    case = plant.sscc(1)
    with pytest.raises(FailedPrecondition, match="is full"):
        plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:3], level=Level.CASE)
    assert plant.aggregator.pack(plant.line, "pack-2", case, plant.items[:2], level=Level.CASE)
    with pytest.raises(InvalidArgument) as refused:
        plant.aggregator.set_rule(plant.tenant_id, "sscc-case", 0, "none")
    assert refused.value.field == "capacity"


def test_ship_and_receive_move_the_whole_hierarchy(plant: Plant) -> None:
    case = plant.sscc(1)
    plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:2], level=Level.CASE)
    with pytest.raises(FailedPrecondition, match="only shipped units"):
        plant.aggregator.receive(plant.logistics, "recv-0", [case], "DC")
    shipped = plant.aggregator.ship(plant.logistics, "ship-1", [case], "Wholesaler", "DE")
    assert shipped.affected == 3
    assert {plant.state(u) for u in [case, *plant.items[:2]]} == {"in_transit"}
    with plant.storage.reads() as store:
        assert store.units(plant.tenant_id, [plant.items[0].key])[plant.items[0].key].market == "DE"
    with pytest.raises(FailedPrecondition, match="cannot be shipped"):
        plant.aggregator.ship(plant.logistics, "ship-2", [case], "Wholesaler", "DE")
    received = plant.aggregator.receive(plant.logistics, "recv-1", [case], "Plant")
    assert received.affected == 3
    assert plant.state(plant.items[1]) == "received"
    assert plant.kinds() == ["aggregation.packed", "logistics.shipped", "logistics.received"]


def test_an_undo_within_ten_days_by_the_same_party_restores(plant: Plant) -> None:
    case = plant.sscc(1)
    plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:2], level=Level.CASE)
    done = plant.aggregator.decommission(plant.logistics, "dec-1", [case], "locked")
    assert done.affected == 3
    assert plant.state(plant.items[0]) == "locked"
    other = Principal(plant.tenant_id, frozenset({Role.LOGISTICS}), "other-token")
    with pytest.raises(FailedPrecondition, match="another party"):
        plant.aggregator.undo_decommission(other, "undo-0", [case])
    plant.clock.advance(days=9)
    undone = plant.aggregator.undo_decommission(plant.logistics, "undo-1", [case])
    assert undone.affected == 3
    assert {plant.state(u) for u in [case, *plant.items[:2]]} == {"commissioned"}
    with pytest.raises(FailedPrecondition, match="no decommission to undo"):
        plant.aggregator.undo_decommission(plant.logistics, "undo-2", [case])


def test_an_undo_after_ten_days_is_refused(plant: Plant) -> None:
    plant.aggregator.decommission(plant.logistics, "dec-1", plant.items[:1], "locked")
    plant.clock.advance(days=10, seconds=1)
    with pytest.raises(FailedPrecondition, match="more than 10 days ago"):
        plant.aggregator.undo_decommission(plant.logistics, "undo-1", plant.items[:1])
    assert plant.state(plant.items[0]) == "locked"


def test_a_failed_write_in_a_batch_is_rolled_back_alone(plant: Plant) -> None:
    first, second, third = plant.sscc(1), plant.sscc(2), plant.sscc(3)
    with plant.aggregator.batch():
        plant.aggregator.pack(plant.line, "b-1", first, plant.items[:2], level=Level.CASE)
        # Registers ``second``, then finds items[1] packed: the registration goes too.
        with pytest.raises(FailedPrecondition):
            plant.aggregator.pack(plant.line, "b-2", second, plant.items[1:3], level=Level.CASE)
        plant.aggregator.pack(plant.line, "b-3", third, plant.items[3:4], level=Level.CASE)
    assert plant.aggregator.counts(plant.line, first) == ({Level.ITEM: 2}, 2)
    assert plant.aggregator.counts(plant.line, third) == ({Level.ITEM: 1}, 1)
    with pytest.raises(NotFound):
        plant.aggregator.counts(plant.line, second)
    assert plant.kinds() == ["aggregation.packed", "aggregation.packed"]


def test_children_come_in_pages_with_resume_tokens(plant: Plant) -> None:
    case = plant.sscc(1)
    plant.aggregator.pack(plant.line, "pack-1", case, plant.items[:5], level=Level.CASE)
    pages = list(plant.aggregator.children(plant.line, case, all_levels=True, page_size=2))
    assert [sum(g.count for g in page) for page, _ in pages] == [2, 2, 1]
    assert pages[-1][1] == "" and all(token for _, token in pages[:-1])
    keys = [k for page, _ in pages for g in page for k in g.keys.split("\n")]
    assert keys == sorted(u.key for u in plant.items[:5])
    resumed = list(plant.aggregator.children(plant.line, case, True, 2, pages[0][1]))
    assert [k for page, _ in resumed for g in page for k in g.keys.split("\n")] == keys[2:]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda p: p.aggregator.pack(p.line, "bad id!", p.sscc(1), p.items[:1]), "event_id"),
        (lambda p: p.aggregator.pack(p.line, "e-1", p.sscc(1), []), "children"),
        (lambda p: p.aggregator.pack(p.line, "e-1", p.sscc(1), [p.sscc(1)]), "children"),
        (
            lambda p: p.aggregator.pack(p.line, "e-1", p.sscc(1), p.items[:1], line_id="x" * 65),
            "line_id",
        ),
        (
            lambda p: p.aggregator.pack(
                p.line, "e-1", p.sscc(1), p.items[:1], Where(time_zone_offset="+25:00")
            ),
            "event_time_zone_offset",
        ),
        (lambda p: p.aggregator.replace(p.line, "e-1", p.items[0], p.items[0]), "new_code"),
        (lambda p: p.aggregator.ship(p.logistics, "e-1", p.items[:1], " ", "DE"), "to_party"),
        (lambda p: p.aggregator.decommission(p.logistics, "e-1", p.items[:1], "lost"), "reason"),
        (lambda p: next(p.aggregator.children(p.line, p.sscc(1), True, 1001)), "page.page_size"),
        (
            lambda p: next(p.aggregator.children(p.line, p.sscc(1), True, 10, "x")),
            "page.page_token",
        ),
    ],
)
def test_refusals_name_the_field(plant: Plant, call: object, field: str) -> None:
    assert callable(call)
    with pytest.raises(InvalidArgument) as refused:
        call(plant)
    assert refused.value.field.endswith("." + field), refused.value.field


def test_codes_outside_the_prefixes_are_denied(plant: Plant) -> None:
    foreign = UnitRef(gtin=gtin("95299999999", 1), serial="X1")
    with pytest.raises(PermissionDenied, match="not under your company prefixes"):
        plant.aggregator.pack(plant.line, "pack-1", plant.sscc(1), [foreign])
    with pytest.raises(PermissionDenied):
        plant.aggregator.pack(plant.logistics, "pack-2", plant.sscc(1), plant.items[:1])


def test_use_cases_and_ports_see_no_adapter() -> None:
    """The port, the fake and the use cases import no driver, server or adapter module: only
    the composition root (sealmark_app/root/aggregator.py) names aggregator.postgres."""
    root = Path(__file__).resolve().parents[2] / "aggregator"
    names = ("ports", "memory", "base", "packing", "logistics", "queries", "usecases")
    banned = (
        *FORBIDDEN,
        "sealmark_app",
        "aggregator.postgres",
        "aggregator.grpc_service",
    )
    offenders = [
        f"aggregator/{name}.py imports {imported}"
        for name in names
        for imported in sorted(imported_names(root / f"{name}.py"))
        if any(imported == bad or imported.startswith(bad + ".") for bad in banned)
    ]
    assert offenders == []
