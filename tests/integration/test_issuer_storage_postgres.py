"""The Issuer's storage contract on PostgreSQL (the system server, or the embedded one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from issuer.postgres import PostgresIssuerStorage
from issuer.postgres_media import PostgresProductMedia
from sealmark.errors import Unavailable
from sealmark.storage.ports import UnitOfWorkFactory
from sealmark.storage.postgres import PostgresDatabase
from tests.contracts.issuer_storage import (
    IssuerBackend,
    IssuerStorageContract,
    MediaBackend,
    ProductMediaContract,
)

pytestmark = pytest.mark.integration


@dataclass
class PostgresBackend:
    storage: PostgresIssuerStorage
    tenancy: UnitOfWorkFactory
    database: PostgresDatabase

    def pack(self, tenant_id: str, child_key: str, parent_key: str) -> None:
        with self.database.unit_of_work() as uow:
            uow.execute(
                "INSERT INTO containment (child_key, tenant_id, parent_key, child_level,"
                " event_id, packed_at, state) VALUES (%s, %s, %s, 1, 'ev-1', %s, 'commissioned')",
                (child_key, tenant_id, parent_key, datetime.now(UTC)),
            )
            uow.commit()

    def recall_lot(self, tenant_id: str, gtin: str, lot: str) -> None:
        scope = json.dumps({"kind": "lot", "gtin": gtin, "lot": lot})
        with self.database.unit_of_work() as uow:
            uow.execute(
                "INSERT INTO recalls (recall_id, tenant_id, request_id, scope, reason,"
                " effective_at, token_id, fingerprint)"
                " VALUES (%s, %s, 'rc-1', %s, 'contaminated', %s, 'tok', 'fp')",
                (f"rc-{tenant_id}", tenant_id, scope, datetime.now(UTC)),
            )
            uow.commit()


@pytest.fixture(scope="module")
def database(pg_dsn: str) -> Iterator[PostgresDatabase]:
    db = PostgresDatabase(pg_dsn, pool_size=4)
    yield db
    db.close()


class TestPostgresIssuerStorage(IssuerStorageContract):
    @pytest.fixture
    def backend(self, database: PostgresDatabase) -> IssuerBackend:
        return PostgresBackend(PostgresIssuerStorage(database), database.unit_of_work, database)


def test_an_unreachable_database_is_unavailable() -> None:
    database = PostgresDatabase("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=1)
    storage = PostgresIssuerStorage(database)
    with pytest.raises(Unavailable), storage.transaction() as tx:
        tx.issuance.issued_count("09520000000003")
    calls: list[int] = []

    def attempt() -> int:
        calls.append(1)
        with storage.transaction() as tx:
            return tx.issuance.issued_count("09520000000003")

    with pytest.raises(Unavailable):
        storage.retrying(attempt)
    assert len(calls) == 5  # retried, then the last error propagates
    database.close()


@dataclass
class PostgresMediaBackend:
    media: PostgresProductMedia
    tenancy: UnitOfWorkFactory


class TestPostgresProductMedia(ProductMediaContract):
    @pytest.fixture
    def media_backend(self, database: PostgresDatabase) -> MediaBackend:
        return PostgresMediaBackend(PostgresProductMedia(database), database.unit_of_work)
