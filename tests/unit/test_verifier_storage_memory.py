"""The Verifier's storage contract on the in-memory fakes (verifier/memory.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from sealmark.gs1.links import ProductLink
from tests.contracts.verifier_storage import (
    MediaReaderContract,
    MediaSeed,
    ProductCatalogContract,
    VerifierStorageContract,
)
from verifier.memory import MemoryScanState, MemoryVerifierStorage
from verifier.memory_catalog import MemoryProductCatalog
from verifier.memory_media import MemoryMediaReader
from verifier.ports import ProductFacts, PublicKey, StoredCode

_NUMBERS = itertools.count(1)


class MemorySeeder:
    def __init__(self, storage: MemoryVerifierStorage) -> None:
        self._storage = storage
        self._names: dict[str, str] = {}

    def tenant(self, name: str) -> tuple[str, str]:
        n = next(_NUMBERS)
        tenant_id, prefix = f"t-{n}", f"9527{n:04d}"
        self._names[tenant_id] = name
        self._storage.add_tenant(tenant_id, [prefix])
        return tenant_id, prefix

    def product(self, tenant_id: str, gtin: str, name: str, profile: str = "signed") -> None:
        self._storage.add_product(gtin, ProductFacts(name, self._names[tenant_id], profile))

    def code(self, tenant_id: str, gtin: str, serial: str, stored: StoredCode) -> None:
        self._storage.add_code(gtin + serial, replace(stored, tenant_id=tenant_id))

    def key(self, tenant_id: str, key: PublicKey) -> None:
        self._storage.add_key(tenant_id, key)

    def recall(self, tenant_id: str, code_key: str, reason: str) -> None:
        self._storage.recall(code_key, reason)

    def endpoint(self, tenant_id: str, events: list[str]) -> str:
        endpoint_id = f"we_{next(_NUMBERS):016d}"
        self._storage.add_endpoint(tenant_id, endpoint_id, events)
        return endpoint_id

    def outbox(self, tenant_id: str) -> list[tuple[str, str, list[str]]]:
        return [(e.event_id, e.type, ids) for e, ids in self._storage.outbox(tenant_id)]


class TestMemoryVerifierStorage(VerifierStorageContract):
    @pytest.fixture
    def storage(self) -> MemoryVerifierStorage:
        return MemoryVerifierStorage()

    @pytest.fixture
    def seed(self, storage: MemoryVerifierStorage) -> MemorySeeder:
        return MemorySeeder(storage)

    @pytest.fixture
    def state(self) -> MemoryScanState:
        return MemoryScanState()

    @pytest.fixture
    def published(self, state: MemoryScanState) -> Callable[[str], list[tuple[int, str]]]:
        return lambda tenant: [(i, kind) for t, i, kind in state.published if t == tenant]


def test_a_second_transaction_on_one_thread_is_refused() -> None:
    storage = MemoryVerifierStorage()
    refused = pytest.raises(RuntimeError, match="open on this thread")
    with storage.transaction(), refused, storage.transaction():
        pass
    with storage.transaction() as store:  # the first one ended: a new one may open
        assert (
            store.claim_pin("k", "t", "v-1", "s-1", "DE", datetime(2026, 1, 1, tzinfo=UTC)) is None
        )


class TestMemoryMediaReader(MediaReaderContract):
    @pytest.fixture
    def media_reader(self) -> MemoryMediaReader:
        return MemoryMediaReader()

    @pytest.fixture
    def seed_media(self, media_reader: MemoryMediaReader) -> MediaSeed:
        return media_reader.put


class MemoryCatalogSeeder:
    def __init__(self, catalog: MemoryProductCatalog) -> None:
        self._catalog = catalog

    def tenant(self, name: str) -> tuple[str, str]:
        n = next(_NUMBERS)
        tenant_id, prefix = f"t-{n}", f"9527{n:04d}"
        self._catalog.add_tenant(tenant_id, name, [prefix])
        return tenant_id, prefix

    def product(self, tenant_id: str, gtin: str, name: str) -> None:
        self._catalog.add_product(tenant_id, gtin, name)

    def links(self, tenant_id: str, gtin: str, links: list[ProductLink]) -> None:
        self._catalog.set_links(tenant_id, gtin, links)

    def lot(self, tenant_id: str, gtin: str, lot: str) -> None:
        self._catalog.add_lot(tenant_id, gtin, lot)

    def hold(self, tenant_id: str, gtin: str, lot: str, reason: str) -> None:
        self._catalog.hold_lot(tenant_id, gtin, lot, reason, True)

    def recall_lot(self, tenant_id: str, gtin: str, lot: str, reason: str) -> None:
        self._catalog.recall_lot(tenant_id, gtin, lot, reason)

    def recall_product(self, tenant_id: str, gtin: str, reason: str) -> None:
        self._catalog.recall_product(tenant_id, gtin, reason)


class TestMemoryProductCatalog(ProductCatalogContract):
    @pytest.fixture
    def catalog(self) -> MemoryProductCatalog:
        return MemoryProductCatalog()

    @pytest.fixture
    def catalog_seed(self, catalog: MemoryProductCatalog) -> MemoryCatalogSeeder:
        return MemoryCatalogSeeder(catalog)
