"""Audit's storage contract on PostgreSQL and Redis: the rows other services own are written
with the SQL those services use, the adapters under test are the production ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
import redis

from audit.postgres import PostgresAuditStorage
from audit.postgres_export import PostgresExportStorage
from audit.postgres_tlog import PostgresTlogStorage
from audit.postgres_webhooks import PostgresWebhookStorage
from audit.redis_wake import RedisAlertWake
from sealmark.events import NewEvent
from sealmark.storage.postgres import PostgresDatabase
from sealmark.storage.redis_client import RedisClient, connect_redis
from sealmark.tenancy.model import Product, Tenant
from tests.contracts.audit_storage import AuditStorageContract
from tests.support.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.integration


class PostgresWorld:
    def __init__(self, database: PostgresDatabase, client: RedisClient) -> None:
        self._db = database
        self._redis = client
        self.storage = PostgresAuditStorage(database)
        self.export = PostgresExportStorage(database)
        self.tlog = PostgresTlogStorage(database)
        self.wake = RedisAlertWake(client)
        self.webhooks = PostgresWebhookStorage(database)

    def _run(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._db.unit_of_work() as uow:
            rows = uow.execute(sql, params)
            uow.commit()
        return rows

    def add_tenant(self, tenant: Tenant) -> None:
        with self._db.unit_of_work() as uow:
            uow.tenants.add(tenant)
            uow.commit()

    def add_product(
        self, tenant_id: str, gtin: str, alphabet: str = "numeric", length: int = 12
    ) -> None:
        with self._db.unit_of_work() as uow:
            uow.products.add(
                Product(tenant_id, gtin, "P", serial_alphabet=alphabet, serial_length=length)
            )
            uow.commit()

    def add_code(
        self,
        tenant_id: str,
        gtin: str,
        serial: str,
        *,
        state: str = "commissioned",
        lot: str | None = None,
        expiry: date | None = None,
        market: str | None = None,
        request_id: str | None = None,
        seq: int | None = None,
        work_order: str | None = None,
        signature: str | None = None,
        key_id: str | None = None,
        line_id: str | None = None,
        issued_at: datetime | None = None,
        serial_scheme: int = 2,
    ) -> str:
        self._run(
            "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, expiry, state, key_id,"
            " signature, work_order, line_id, request_id, issued_at, market, seq, serial_scheme)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s,"
            " %s, %s)",
            (
                gtin + serial,
                tenant_id,
                gtin,
                serial,
                lot,
                expiry,
                state,
                key_id,
                signature,
                work_order,
                line_id,
                request_id,
                issued_at,
                market,
                seq,
                serial_scheme,
            ),
        )
        return gtin + serial

    def add_sscc(
        self, tenant_id: str, sscc: str, state: str = "commissioned", market: str | None = None
    ) -> str:
        self._run(
            "INSERT INTO ssccs (sscc, tenant_id, level, state, market, created_at, updated_at)"
            " VALUES (%s, %s, 'case', %s, %s, now(), now())",
            (sscc, tenant_id, state, market),
        )
        return "sscc:" + sscc

    def add_history(
        self,
        tenant_id: str,
        unit: str,
        parent: str | None,
        action: str,
        event_id: str,
        at: datetime,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self._run(
            "INSERT INTO containment_history (tenant_id, unit_key, parent_key, action, event_id,"
            " event_time, attributes) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (tenant_id, unit, parent, action, event_id, at, json.dumps(attributes or {})),
        )
        if action == "packed" and parent:
            self._run(
                "INSERT INTO containment (child_key, tenant_id, parent_key, child_level,"
                " event_id, packed_at, state) VALUES (%s, %s, %s, 1, %s, %s, 'commissioned')",
                (unit, tenant_id, parent, event_id, at),
            )
        elif action == "unpacked":
            self._run("DELETE FROM containment WHERE child_key = %s", (unit,))

    def add_event(self, event: NewEvent) -> int:
        with self._db.unit_of_work() as uow:
            event_id = uow.events.append(event)
            uow.commit()
        return event_id

    def add_issue_request(
        self, tenant_id: str, request_id: str, work_order: str, gtin: str
    ) -> None:
        self._run(
            "INSERT INTO issue_requests (tenant_id, request_id, gtin, lot, expiry, quantity,"
            " line_id, work_order, key_id) VALUES (%s, %s, %s, 'L', '2030-01-01', 1, 'line',"
            " %s, 'k1')",
            (tenant_id, request_id, gtin, work_order),
        )

    def add_signing_key(self, tenant_id: str, key_id: str, public_key: bytes) -> None:
        self._run(
            "INSERT INTO signing_keys (tenant_id, key_id, public_key, private_key_pem)"
            " VALUES (%s, %s, %s, 'pem')",
            (tenant_id, key_id, public_key),
        )

    def add_scan(
        self,
        tenant_id: str,
        verification_id: str,
        code_key: str,
        verdict: str,
        at: datetime,
        *,
        region: str = "DE",
        reasons: list[str] | None = None,
        risk: float = 0.0,
        active: bool = True,
    ) -> None:
        self._run(
            "INSERT INTO scans (verification_id, tenant_id, code_key, verdict, reasons,"
            " risk_score, session_key, region, active, verified_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, 's', %s, %s, %s)",
            (
                verification_id,
                tenant_id,
                code_key,
                verdict,
                reasons or [],
                risk,
                region,
                active,
                at,
            ),
        )

    def add_alert(
        self,
        tenant_id: str,
        kind: str,
        at: datetime,
        *,
        code_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        rows = self._run(
            "INSERT INTO alerts (tenant_id, kind, code_key, details, raised_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (tenant_id, kind, code_key, json.dumps(details or {}), at),
        )
        return int(rows[0][0])

    def ring(self, tenant_id: str) -> str:
        entry = self._redis.xadd(f"alerts:{tenant_id}", {"kind": "clone"})
        return entry.decode() if isinstance(entry, bytes) else str(entry)


@pytest.fixture(scope="module", params=["single", "cluster"])
def postgres_world(
    pg_dsn: str, redis_url: str, request: pytest.FixtureRequest
) -> Iterator[PostgresWorld]:
    """On one Redis server, and on a Redis Cluster (the streams in many slots)."""
    database = PostgresDatabase(pg_dsn, pool_size=4)
    if request.param == "cluster":
        servers: RedisClusterServers = request.getfixturevalue("redis_cluster_servers")
        client = connect_redis(None, servers.seeds)
    else:
        client = connect_redis(redis_url, None)
    yield PostgresWorld(database, client)
    client.close()
    database.close()


class TestPostgresAuditStorage(AuditStorageContract):
    @pytest.fixture
    def world(self, postgres_world: PostgresWorld) -> PostgresWorld:
        return postgres_world


def test_unreachable_redis_waits_and_starts_over() -> None:
    wake = RedisAlertWake(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))
    assert wake.wait("t", "5-0", 100) == "$"
