"""The Issuer's storage contract on the in-memory fake."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from issuer.memory import MemoryIssuerStorage
from issuer.memory_media import MemoryProductMedia
from sealmark.storage.memory import MemoryStore
from sealmark.storage.ports import UnitOfWorkFactory
from tests.contracts.issuer_storage import (
    IssuerBackend,
    IssuerStorageContract,
    MediaBackend,
    ProductMediaContract,
)


@dataclass
class MemoryBackend:
    storage: MemoryIssuerStorage
    tenancy: UnitOfWorkFactory

    def pack(self, tenant_id: str, child_key: str, parent_key: str) -> None:
        self.storage.pack(child_key, parent_key)

    def recall_lot(self, tenant_id: str, gtin: str, lot: str) -> None:
        self.storage.recall_lot(tenant_id, gtin, lot)


class TestMemoryIssuerStorage(IssuerStorageContract):
    @pytest.fixture
    def backend(self) -> IssuerBackend:
        tenancy = MemoryStore()
        return MemoryBackend(MemoryIssuerStorage(tenancy), tenancy.unit_of_work)


def test_a_nested_transaction_is_refused_not_deadlocked() -> None:
    storage = MemoryIssuerStorage(MemoryStore())
    with (
        storage.transaction(),
        pytest.raises(RuntimeError, match="open in this thread"),
        storage.transaction(),
    ):
        pass


@dataclass
class MemoryMediaBackend:
    media: MemoryProductMedia
    tenancy: UnitOfWorkFactory


class TestMemoryProductMedia(ProductMediaContract):
    @pytest.fixture
    def media_backend(self) -> MediaBackend:
        tenancy = MemoryStore()
        return MemoryMediaBackend(MemoryProductMedia(tenancy), tenancy.unit_of_work)
