"""The Aggregator's storage contract on PostgreSQL (a migrated database of this module's own)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg2
import pytest

from aggregator.domain import Level, SsccRange
from aggregator.postgres import PostgresAggregationStorage
from sealmark.storage.postgres import PostgresDatabase
from sealmark.tenancy.model import PackLevel, Product
from tests.contracts.aggregator_storage import T0, AggregatorStorageContract
from tests.pg_fixtures import create_database, drop_database
from tests.storage_contract import tenant

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database(pg_admin_dsn: str) -> Iterator[PostgresDatabase]:
    dsn = create_database(pg_admin_dsn)
    db = PostgresDatabase(dsn, pool_size=4)
    yield db
    db.close()
    drop_database(pg_admin_dsn, dsn)


class PostgresSeeder:
    """Writes what other services write, as they do (the tenancy repositories, plain SQL)."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    def _sql(self, sql: str, params: tuple[object, ...]) -> None:
        with psycopg2.connect(self._db.dsn) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
        conn.close()

    def tenant(self) -> tuple[str, str]:
        made = tenant(f"agg-{os.urandom(4).hex()}")
        with self._db.unit_of_work() as uow:
            uow.tenants.add(made)
            uow.commit()
        return made.id, made.company_prefixes[0]

    def product(self, tenant_id: str, gtin: str, level: Level) -> None:
        with self._db.unit_of_work() as uow:
            uow.products.add(Product(tenant_id, gtin, "product", PackLevel(level.label)))
            uow.commit()

    def code(
        self, tenant_id: str, gtin: str, serial: str, lot: str = "", state: str = "commissioned"
    ) -> str:
        self._sql(
            "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, state)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (gtin + serial, tenant_id, gtin, serial, lot or None, state),
        )
        return gtin + serial

    def sscc(self, tenant_id: str, sscc: str, level: Level, state: str = "commissioned") -> str:
        self._sql(
            "INSERT INTO ssccs (sscc, tenant_id, level, state, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (sscc, tenant_id, level.label, state, T0, T0),
        )
        return "sscc:" + sscc

    def allocate(self, tenant_id: str, allocated: SsccRange) -> None:
        self._sql(
            "INSERT INTO sscc_allocations (tenant_id, request_id, company_prefix,"
            " extension_digit, first_reference, quantity) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                tenant_id,
                os.urandom(4).hex(),
                allocated.company_prefix,
                allocated.extension_digit,
                allocated.first,
                allocated.quantity,
            ),
        )

    def hold(self, tenant_id: str, gtin: str, lot: str) -> None:
        self._sql(
            "INSERT INTO lot_holds (gtin, lot, tenant_id, held, changed_at, changed_by)"
            " VALUES (%s, %s, %s, true, %s, 'contract')",
            (gtin, lot, tenant_id, T0),
        )

    def event_kinds(self, tenant_id: str) -> list[str]:
        with self._db.reads() as uow:
            return [e.kind for e in uow.events.read(tenant_id)]


class TestPostgresAggregatorStorage(AggregatorStorageContract):
    @pytest.fixture
    def storage(self, database: PostgresDatabase) -> PostgresAggregationStorage:
        return PostgresAggregationStorage(database)

    @pytest.fixture
    def seed(self, database: PostgresDatabase) -> PostgresSeeder:
        return PostgresSeeder(database)
