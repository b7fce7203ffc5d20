from __future__ import annotations

import pytest

from sealmark.storage.memory import MemoryStore
from sealmark.storage.ports import UnitOfWorkFactory
from tests.storage_contract import StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def uow_factory(self) -> UnitOfWorkFactory:
        return MemoryStore().unit_of_work
