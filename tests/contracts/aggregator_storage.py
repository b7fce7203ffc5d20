"""The contract of the Aggregator's storage port (aggregator/ports.py), for every adapter: the
in-memory fake (tests/unit/test_aggregator_storage_memory.py) and PostgreSQL
(tests/integration/test_aggregator_storage_postgres.py), and any backend to come.

A subclass provides two fixtures: ``storage`` (an AggregationStorage) and ``seed`` (a
:class:`Seeder` writing, on the same backend, what other services write: tenants, products,
codes, SSCC allocations, lot holds, and reading back the domain event log)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from aggregator.domain import ChildGroup, Level, SsccRange
from aggregator.ports import AggregationStorage, AggregationStore, Rule, Unit
from sealmark.errors import Aborted, AlreadyExists, InvalidArgument, NotFound
from sealmark.events import NewEvent
from sealmark.gs1 import check_digit, make_sscc
from sealmark.units import SSCC_PREFIX

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Seeder(Protocol):
    def tenant(self) -> tuple[str, str]:
        """A new tenant with a company prefix of its own: (tenant id, 11-digit prefix)."""

    def product(self, tenant_id: str, gtin: str, level: Level) -> None: ...

    def code(
        self, tenant_id: str, gtin: str, serial: str, lot: str = "", state: str = "commissioned"
    ) -> str:
        """A code of the product; returns its key."""

    def sscc(self, tenant_id: str, sscc: str, level: Level, state: str = "commissioned") -> str:
        """A registered SSCC; returns its key."""

    def allocate(self, tenant_id: str, allocated: SsccRange) -> None: ...

    def hold(self, tenant_id: str, gtin: str, lot: str) -> None: ...

    def event_kinds(self, tenant_id: str) -> list[str]:
        """The kinds of the tenant's committed domain events, oldest first."""


def gtin(prefix: str, n: int) -> str:
    """The GTIN-14 of item reference ``n`` (0..9) under an 11-digit company prefix."""
    body = "0" + prefix + str(n)
    return body + str(check_digit(body))


class World:
    """One tenant with an item product, a case product, codes and SSCCs."""

    def __init__(self, seed: Seeder) -> None:
        self.tenant, self.prefix = seed.tenant()
        self.item_gtin, self.case_gtin = gtin(self.prefix, 1), gtin(self.prefix, 2)
        seed.product(self.tenant, self.item_gtin, Level.ITEM)
        seed.product(self.tenant, self.case_gtin, Level.CASE)
        self.items = [seed.code(self.tenant, self.item_gtin, f"I{n}", lot="L1") for n in range(4)]
        self.case = seed.code(self.tenant, self.case_gtin, "C1")
        self.pallet = seed.sscc(self.tenant, make_sscc(0, self.prefix, 1), Level.PALLET)

    def unit(self, storage: AggregationStorage, key: str) -> Unit:
        with storage.reads() as store:
            return store.units(self.tenant, [key])[key]


def _pack(store: AggregationStore, world: World, parent: str, keys: list[str]) -> None:
    children = list(store.units(world.tenant, keys).values())
    store.add_links(world.tenant, parent, children, f"pack-{parent[-4:]}", T0)


def _event(tenant_id: str, kind: str) -> NewEvent:
    return NewEvent(tenant_id, kind, "subject", T0, {"n": 1}, "req-1")


class AggregatorStorageContract:
    """Tests every adapter of the Aggregator's storage port must pass."""

    # -- tenants, transactions, savepoints, events --------------------------------------
    def test_tenant_is_read_or_not_found(self, storage: AggregationStorage, seed: Seeder) -> None:
        tenant_id, prefix = seed.tenant()
        with storage.reads() as store:
            assert store.tenant(tenant_id).company_prefixes == (prefix,)
            with pytest.raises(NotFound):
                store.tenant("no-such-tenant")

    def test_a_transaction_commits_on_exit_and_rolls_back_on_error(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        tenant_id, _ = seed.tenant()
        with storage.transaction() as store:
            store.set_rule(tenant_id, "sscc-case", Rule(10, "none"))
            with storage.reads() as outside:  # not committed yet
                assert outside.rule(tenant_id, "sscc-case") is None
        with pytest.raises(RuntimeError), storage.transaction() as store:
            store.set_rule(tenant_id, "sscc-case", Rule(20, "gtin"))
            store.append_event(_event(tenant_id, "rolled.back"))
            raise RuntimeError("boom")
        with storage.reads() as store:
            assert store.rule(tenant_id, "sscc-case") == Rule(10, "none")
        assert seed.event_kinds(tenant_id) == []

    def test_a_failed_savepoint_rolls_back_alone(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        tenant_id, _ = seed.tenant()
        with storage.transaction() as store:
            with store.savepoint():
                store.append_event(_event(tenant_id, "first"))
                store.set_rule(tenant_id, "sscc-case", Rule(1, "none"))
            with pytest.raises(InvalidArgument), store.savepoint():
                store.append_event(_event(tenant_id, "second"))
                store.set_rule(tenant_id, "sscc-case", Rule(2, "lot"))
                store.set_rule(tenant_id, "sscc-pallet", Rule(3, "lot"))
                raise InvalidArgument("field", "refused")
            assert store.rule(tenant_id, "sscc-case") == Rule(1, "none")
            assert store.rule(tenant_id, "sscc-pallet") is None
            store.append_event(_event(tenant_id, "third"))
        assert seed.event_kinds(tenant_id) == ["first", "third"]
        with storage.reads() as store:
            assert store.rule(tenant_id, "sscc-case") == Rule(1, "none")

    def test_retrying_repeats_aborted_only(self, storage: AggregationStorage) -> None:
        calls: list[int] = []

        def flaky() -> str:
            calls.append(1)
            if len(calls) < 3:
                raise Aborted("serialization failure")
            return "done"

        assert storage.retrying(flaky) == "done"
        assert len(calls) == 3

        def refused() -> str:
            calls.append(1)
            raise InvalidArgument("field", "bad")

        calls.clear()
        with pytest.raises(InvalidArgument):
            storage.retrying(refused)
        assert len(calls) == 1

        def always() -> str:
            calls.append(1)
            raise Aborted("again")

        calls.clear()
        with pytest.raises(Aborted):
            storage.retrying(always)
        assert 2 <= len(calls) <= 10

    # -- idempotency --------------------------------------------------------------------
    def test_a_stored_result_is_kept_once_per_tenant_and_id(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        a, _ = seed.tenant()
        b, _ = seed.tenant()
        result = {"affected": 3, "recorded_at": T0.isoformat(), "epcis_event_id": "ni:///x"}
        with storage.transaction() as store:
            assert store.stored_result(a, "ev-1") is None
            assert store.store_result(a, "ev-1", "aggregation.packed", "fp", result, "tok", T0)
            assert not store.store_result(a, "ev-1", "aggregation.other", "fp2", {}, "tok", T0)
            assert store.store_result(b, "ev-1", "aggregation.unpacked", "fp3", {}, "tok", T0)
        with storage.reads() as store:
            assert store.stored_result(a, "ev-1") == ("aggregation.packed", "fp", result)
            assert store.stored_result(b, "ev-1") == ("aggregation.unpacked", "fp3", {})
            assert store.stored_result(a, "ev-2") is None

    def test_of_two_concurrent_results_under_one_id_one_is_stored(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        tenant_id, _ = seed.tenant()
        outcomes: list[bool] = []
        barrier = threading.Barrier(2)

        def write(fingerprint: str) -> None:
            barrier.wait()
            with storage.transaction() as store:
                stored = store.store_result(tenant_id, "race", "k", fingerprint, {}, "t", T0)
            outcomes.append(stored)

        threads = [threading.Thread(target=write, args=(f"fp{n}",)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes) == [False, True]
        with storage.reads() as store:
            found = store.stored_result(tenant_id, "race")
        assert found is not None and found[1] in ("fp0", "fp1")

    def test_a_lock_is_held_until_the_transaction_ends(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        tenant_id, _ = seed.tenant()
        locked = threading.Event()
        seen: list[Rule | None] = []

        def first() -> None:
            with storage.transaction() as store:
                store.lock(["unit-a", "unit-b"])
                locked.set()
                time.sleep(0.3)  # the second writer waits meanwhile
                store.set_rule(tenant_id, "sscc-case", Rule(7, "none"))

        def second() -> None:
            locked.wait(timeout=10)
            with storage.transaction() as store:
                store.lock(["unit-b"])
                seen.append(store.rule(tenant_id, "sscc-case"))

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert seen == [Rule(7, "none")]

    # -- units --------------------------------------------------------------------------
    def test_units_are_the_tenants_own_with_level_lot_and_hold(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        world, other = World(seed), World(seed)
        seed.hold(world.tenant, world.item_gtin, "L1")
        keys = [world.items[0], world.case, world.pallet, other.items[0], "09999999999999X"]
        for lock in (False, True):
            with storage.transaction() as store:
                units = store.units(world.tenant, keys, lock=lock)
            assert set(units) == {world.items[0], world.case, world.pallet}
            item = units[world.items[0]]
            assert (item.state, item.level, item.gtin, item.lot) == (
                "commissioned",
                Level.ITEM,
                world.item_gtin,
                "L1",
            )
            assert (item.market, item.parent, item.held) == (None, None, True)
            assert units[world.case].level == Level.CASE and not units[world.case].held
            pallet = units[world.pallet]
            assert (pallet.level, pallet.gtin, pallet.lot, pallet.held) == (
                Level.PALLET,
                "",
                "",
                False,
            )
        with storage.reads() as store:
            assert store.units(world.tenant, []) == {}

    def test_sscc_ranges_hold_their_references_only(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        tenant_id, prefix = seed.tenant()
        other, _ = seed.tenant()
        allocated = SsccRange(3, prefix, 100, 50)
        seed.allocate(tenant_id, allocated)
        with storage.reads() as store:
            assert store.sscc_range(tenant_id, make_sscc(3, prefix, 100)) == allocated
            assert store.sscc_range(tenant_id, make_sscc(3, prefix, 149)) == allocated
            assert store.sscc_range(tenant_id, make_sscc(3, prefix, 150)) is None
            assert store.sscc_range(tenant_id, make_sscc(3, prefix, 99)) is None
            assert store.sscc_range(tenant_id, make_sscc(4, prefix, 120)) is None
            assert store.sscc_range(other, make_sscc(3, prefix, 120)) is None

    def test_a_created_sscc_is_a_commissioned_unit_once(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        tenant_id, prefix = seed.tenant()
        sscc = make_sscc(1, prefix, 7)
        with storage.transaction() as store:
            made = store.create_sscc(tenant_id, sscc, Level.CASE, T0)
            assert made == Unit(SSCC_PREFIX + sscc, "commissioned", Level.CASE, "", "", None)
            assert store.units(tenant_id, [made.key]) == {made.key: made}
        with pytest.raises(AlreadyExists), storage.transaction() as store:
            store.create_sscc(tenant_id, sscc, Level.PALLET, T0)
            store.units(tenant_id, [made.key])  # a deferred insert fails by the next call

    def test_set_state_keeps_the_market_unless_given(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        world = World(seed)
        with storage.transaction() as store:
            store.set_state([world.items[0], world.pallet], "in_transit", T0, "DE")
            store.set_state([world.items[0], "unknown-key"], "received", T0)
        with storage.reads() as store:
            units = store.units(world.tenant, [world.items[0], world.pallet, world.items[1]])
        assert (units[world.items[0]].state, units[world.items[0]].market) == ("received", "DE")
        assert (units[world.pallet].state, units[world.pallet].market) == ("in_transit", "DE")
        assert (units[world.items[1]].state, units[world.items[1]].market) == (
            "commissioned",
            None,
        )

    # -- hierarchy ----------------------------------------------------------------------
    def test_links_give_children_descendants_ancestors_and_counts(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        world = World(seed)
        with storage.transaction() as store:
            _pack(store, world, world.case, list(reversed(world.items[:3])))
            _pack(store, world, world.pallet, [world.case, world.items[3]])
        with storage.transaction() as store:
            assert store.children(world.case) == sorted(world.items[:3])
            assert store.children(world.pallet) == sorted([world.case, world.items[3]])
            assert store.children(world.items[0]) == []
            below = store.descendants([world.pallet])
            assert below == [
                *sorted([(world.case, world.pallet, 1), (world.items[3], world.pallet, 1)]),
                *[(k, world.case, 2) for k in sorted(world.items[:3])],
            ]
            assert store.descendants([world.case, world.items[3]]) == [
                (k, world.case, 1) for k in sorted(world.items[:3])
            ]
            assert store.owned_ancestors(world.tenant, world.items[0]) == [
                world.case,
                world.pallet,
            ]
            assert store.owned_ancestors(world.tenant, world.pallet) == []
            assert store.owned_ancestors("another-tenant", world.items[0]) is None
            assert store.owned_ancestors(world.tenant, "09999999999999X") is None
            assert store.lock_chain(world.items[1], [world.items[2]]) == [
                world.case,
                world.pallet,
            ]
            assert store.lock_chain(world.pallet, []) == []
            store.lock([world.case, world.pallet, "not-a-unit"])
            assert store.level_counts(world.pallet) == ({Level.CASE: 1, Level.ITEM: 4}, 2)
            assert store.level_counts(world.items[0]) == ({}, 0)
            units = store.units(world.tenant, [world.items[0], world.case])
            assert units[world.items[0]].parent == world.case
            assert units[world.case].parent == world.pallet

    def test_a_unit_is_linked_into_one_parent_at_most(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        world = World(seed)
        with storage.transaction() as store:
            _pack(store, world, world.case, [world.items[0]])
        with pytest.raises(AlreadyExists), storage.transaction() as store:
            _pack(store, world, world.pallet, [world.items[0]])
            store.children(world.pallet)  # a deferred insert fails by the next call
        with storage.reads() as store:
            assert store.children(world.pallet) == []
            assert store.children(world.case) == [world.items[0]]

    def test_move_take_place_and_remove(self, storage: AggregationStorage, seed: Seeder) -> None:
        world = World(seed)
        new_case = SSCC_PREFIX + make_sscc(0, world.prefix, 2)
        with storage.transaction() as store:
            store.create_sscc(world.tenant, new_case[len(SSCC_PREFIX) :], Level.CASE, T0)
            _pack(store, world, world.case, world.items[:3])
            _pack(store, world, world.pallet, [world.case])
        with storage.transaction() as store:
            moved = store.move_children(world.case, new_case)
            assert sorted(moved) == sorted(world.items[:3])
            store.take_place(world.case, new_case, "replace-1", T0)
            store.remove_links(new_case, [world.items[0], world.items[3]])
            store.remove_links(world.pallet, [world.items[1]])  # not in it: ignored
        with storage.reads() as store:
            assert store.children(world.case) == []
            assert store.children(new_case) == sorted(world.items[1:3])
            assert store.children(world.pallet) == [new_case]
            assert store.owned_ancestors(world.tenant, world.items[1]) == [new_case, world.pallet]
            assert store.owned_ancestors(world.tenant, world.case) == []
            assert store.units(world.tenant, [world.items[0]])[world.items[0]].parent is None

    def test_history_is_kept_in_order_and_paged(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        world = World(seed)
        item = world.items[0]
        with storage.transaction() as store:
            _pack(store, world, world.case, [item])
            store.record_history(world.tenant, [item], world.case, "unpacked", "ev-2", T0)
            store.record_history(
                world.tenant,
                [item, world.items[1]],
                None,
                "sampled",
                "ev-3",
                T0 + timedelta(seconds=1),
                {"reason": "qa"},
            )
        with storage.reads() as store:
            rows = store.history(item, 0, 10)
            assert [(r[1], r[2], r[3], r[5]) for r in rows] == [
                (world.case, "packed", f"pack-{world.case[-4:]}", {}),
                (world.case, "unpacked", "ev-2", {}),
                (None, "sampled", "ev-3", {"reason": "qa"}),
            ]
            assert rows[2][4] == T0 + timedelta(seconds=1)
            ids = [r[0] for r in rows]
            assert ids == sorted(ids) and len(set(ids)) == 3
            assert store.history(item, ids[0], 1) == rows[1:2]
            assert store.history(item, ids[2], 10) == []
            assert [r[2] for r in store.history(world.items[1], 0, 10)] == ["sampled"]

    def test_descendant_groups_page_by_depth_parent_and_key(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        world = World(seed)
        with storage.transaction() as store:
            _pack(store, world, world.case, world.items[:3])
            _pack(store, world, world.pallet, [world.case, world.items[3]])
            store.set_state([world.items[0]], "in_transit", T0, "FR")
        case_items = sorted(world.items[:3])
        top = sorted([world.case, world.items[3]])
        with storage.reads() as store:
            groups = store.descendant_groups(world.tenant, world.pallet, True, None, 100)
            assert [(g.depth, g.parent, g.keys.split("\n"), g.count) for g in groups] == [
                (1, world.pallet, top, 2),
                (2, world.case, case_items, 3),
            ]
            first, second = groups
            assert first.state == "commissioned" and first.market is None
            assert first.varying == tuple(
                (int(Level.CASE if k == world.case else Level.ITEM), "commissioned", None)
                for k in top
            )
            assert (second.level, second.varying is not None) == (int(Level.ITEM), True)
            assert second.varying is not None
            assert second.varying[case_items.index(world.items[0])] == (1, "in_transit", "FR")
            # Direct children only, and a resume strictly after a (depth, parent, key).
            direct = store.descendant_groups(world.tenant, world.pallet, False, None, 100)
            assert direct == groups[:1]
            resumed = store.descendant_groups(
                world.tenant, world.pallet, True, (2, world.case, case_items[0]), 100
            )
            assert [g.keys.split("\n") for g in resumed] == [case_items[1:]]
            # Groups until they hold at least ``rows`` units.
            assert len(store.descendant_groups(world.tenant, world.pallet, True, None, 2)) == 1
            assert len(store.descendant_groups(world.tenant, world.pallet, True, None, 3)) == 2
            assert store.descendant_groups("another-tenant", world.pallet, True, None, 9) == []
            same = store.descendant_groups(world.tenant, world.case, False, None, 9)
        items = [k for k in case_items if k != world.items[0]]
        with storage.transaction() as store:
            store.set_state([world.items[0]], "commissioned", T0, "FR")
            store.set_state(items, "commissioned", T0, "FR")
        with storage.reads() as store:
            uniform = store.descendant_groups(world.tenant, world.case, False, None, 9)
        assert same[0].varying is not None
        assert uniform == [
            ChildGroup(1, world.case, "\n".join(case_items), 3, 1, "commissioned", "FR", None)
        ]

    # -- rules and decommissions --------------------------------------------------------
    def test_rules_are_set_and_replaced_per_tenant_and_scope(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        a, _ = seed.tenant()
        b, _ = seed.tenant()
        with storage.transaction() as store:
            store.set_rule(a, "sscc-case", Rule(12, "gtin"))
            store.set_rule(a, "sscc-case", Rule(None, "lot"))
            store.set_rule(b, "sscc-case", Rule(5, "none"))
        with storage.reads() as store:
            assert store.rule(a, "sscc-case") == Rule(None, "lot")
            assert store.rule(b, "sscc-case") == Rule(5, "none")
            assert store.rule(a, "sscc-pallet") is None

    def test_decommissions_are_recorded_found_and_undone(
        self, storage: AggregationStorage, seed: Seeder
    ) -> None:
        world = World(seed)
        item, case = world.unit(storage, world.items[0]), world.unit(storage, world.case)
        later = T0 + timedelta(hours=1)
        with storage.transaction() as store:
            store.record_decommissions(world.tenant, [item, case], "destroyed", "d-1", "tk", T0)
            store.set_state([item.key], "destroyed", T0)
            moved = store.units(world.tenant, [item.key])[item.key]
            store.record_decommissions(world.tenant, [moved], "sampled", "d-2", "tk2", later)
        with storage.transaction() as store:
            latest = store.open_decommission(item.key)
            assert latest is not None
            assert (latest.event_id, latest.previous_state, latest.state) == (
                "d-2",
                "destroyed",
                "sampled",
            )
            assert (latest.token_id, latest.decided_at) == ("tk2", later)
            members = store.decommission_members("d-1", [item.key, case.key, world.items[1]])
            assert sorted((m.unit_key, m.previous_state) for m in members) == sorted(
                [(item.key, "commissioned"), (case.key, "commissioned")]
            )
            store.undo_decommissions("d-2", [item.key], later)
            reopened = store.open_decommission(item.key)
            assert reopened is not None and reopened.event_id == "d-1"
            store.undo_decommissions("d-1", [item.key, case.key], later)
            assert store.open_decommission(item.key) is None
            assert store.decommission_members("d-1", [item.key, case.key]) == []
            assert store.open_decommission(world.items[2]) is None
        with pytest.raises(AlreadyExists), storage.transaction() as store:
            store.record_decommissions(world.tenant, [case], "destroyed", "d-1", "tk", T0)
