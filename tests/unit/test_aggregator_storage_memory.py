"""The Aggregator's storage contract on the in-memory fake."""

from __future__ import annotations

import itertools

import pytest

from aggregator.domain import Level, SsccRange
from aggregator.memory import MemoryAggregationStorage
from tests.contracts.aggregator_storage import T0, AggregatorStorageContract
from tests.storage_contract import tenant

_NAMES = itertools.count(1)


class MemorySeeder:
    def __init__(self, storage: MemoryAggregationStorage) -> None:
        self._storage = storage

    def tenant(self) -> tuple[str, str]:
        made = tenant(f"agg-{next(_NAMES)}")
        self._storage.add_tenant(made)
        return made.id, made.company_prefixes[0]

    def product(self, tenant_id: str, gtin: str, level: Level) -> None:
        self._storage.add_product(tenant_id, gtin, level)

    def code(
        self, tenant_id: str, gtin: str, serial: str, lot: str = "", state: str = "commissioned"
    ) -> str:
        return self._storage.add_code(tenant_id, gtin, serial, lot=lot, state=state)

    def sscc(self, tenant_id: str, sscc: str, level: Level, state: str = "commissioned") -> str:
        return self._storage.add_sscc(tenant_id, sscc, level, state)

    def allocate(self, tenant_id: str, allocated: SsccRange) -> None:
        self._storage.allocate_ssccs(tenant_id, allocated)

    def hold(self, tenant_id: str, gtin: str, lot: str) -> None:
        self._storage.hold_lot(gtin, lot)

    def event_kinds(self, tenant_id: str) -> list[str]:
        return [e.kind for e in self._storage.events(tenant_id)]


class TestMemoryAggregatorStorage(AggregatorStorageContract):
    @pytest.fixture
    def storage(self) -> MemoryAggregationStorage:
        return MemoryAggregationStorage()

    @pytest.fixture
    def seed(self, storage: MemoryAggregationStorage) -> MemorySeeder:
        return MemorySeeder(storage)


def test_a_reads_store_refuses_writes() -> None:
    storage = MemoryAggregationStorage()
    with storage.reads() as store, pytest.raises(RuntimeError, match="writes nothing"):
        store.set_state(["k"], "destroyed", T0)


def test_a_second_transaction_on_one_thread_is_refused() -> None:
    storage = MemoryAggregationStorage()
    refused = pytest.raises(RuntimeError, match="open on this thread")
    with storage.transaction(), refused, storage.transaction():
        pass
    with storage.transaction() as store:  # the first one ended: a new one may open
        store.set_state([], "destroyed", T0)
