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
