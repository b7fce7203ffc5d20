"""Audit's storage contract on the in-memory fakes."""

from __future__ import annotations

import pytest

from audit.memory import MemoryAudit
from tests.contracts.audit_storage import AuditStorageContract


class MemoryWorld(MemoryAudit):
    def ring(self, tenant_id: str) -> str:
        return self.wake.ring(tenant_id)


class TestMemoryAuditStorage(AuditStorageContract):
    @pytest.fixture
    def world(self) -> MemoryWorld:
        return MemoryWorld()


def test_nothing_opens_inside_a_write_transaction_on_its_thread() -> None:
    world = MemoryAudit()
    refused = pytest.raises(RuntimeError, match="open on this thread")
    with world.storage.transaction(), refused, world.storage.reads():
        pass
    with world.storage.transaction(), refused, world.tlog.transaction():
        pass
    with world.storage.reads(), world.export.snapshot() as reader:  # reads may nest
        assert reader.recalled("none") == []
    with world.storage.transaction() as store:  # the first one ended: a new one may open
        assert store.last_alert_id("t") == 0
