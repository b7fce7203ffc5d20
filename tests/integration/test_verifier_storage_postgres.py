"""The Verifier's storage contract on a real PostgreSQL (verifier/postgres.py) and a real Redis
(verifier/redis_state.py)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator

import pytest

from issuer.postgres_links import PgProductLinkStore
from sealmark.clock import SystemClock
from sealmark.errors import Unavailable
from sealmark.gs1.links import ProductLink
from sealmark.storage.postgres import PostgresDatabase
from sealmark.storage.redis_client import RedisClient, connect_redis
from sealmark.tenancy import usecases
from tests.contracts.verifier_storage import (
    MediaReaderContract,
    MediaSeed,
    ProductCatalogContract,
    VerifierStorageContract,
)
from tests.pg_fixtures import with_dbname
from tests.support.redis_cluster import RedisClusterServers
from tests.support.tenants import unique_prefix
from verifier.ports import MediaRef, PublicKey, StoredCode
from verifier.postgres import PostgresVerifierStorage
from verifier.postgres_catalog import PostgresProductCatalog
from verifier.postgres_media import PostgresMediaReader
from verifier.redis_state import RedisGate, ScanState

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database(pg_dsn: str) -> Iterator[PostgresDatabase]:
    db = PostgresDatabase(pg_dsn, pool_size=4)
    yield db
    db.close()


class PostgresSeeder:
    """What the Issuer, Audit and tenancy write, written as they write it."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    def _run(self, sql: str, params: tuple[object, ...]) -> None:
        with self._db.unit_of_work() as uow:
            uow.execute(sql, params)
            uow.commit()

    def tenant(self, name: str) -> tuple[str, str]:
        prefix = unique_prefix()
        tenant = usecases.create_tenant(
            self._db.unit_of_work,
            SystemClock(),
            tenant_id=f"vs-{prefix[-4:]}-{os.urandom(3).hex()}",
            name=name,
            company_prefixes=[prefix],
            resolver_host="id.example.com",
        )
        return tenant.id, prefix

    def product(self, tenant_id: str, gtin: str, name: str, profile: str = "signed") -> None:
        usecases.add_product(
            self._db.unit_of_work,
            SystemClock(),
            tenant_id=tenant_id,
            gtin=gtin,
            name=name,
            code_profile=profile,
        )

    def code(self, tenant_id: str, gtin: str, serial: str, stored: StoredCode) -> None:
        self._run(
            "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, expiry, production_date,"
            " state, key_id, pin_hash, market) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s)",
            (
                gtin + serial,
                tenant_id,
                gtin,
                serial,
                stored.lot or None,
                stored.expiry,
                stored.production_date,
                stored.state,
                stored.key_id,
                stored.pin_hash,
                stored.market,
            ),
        )

    def key(self, tenant_id: str, key: PublicKey) -> None:
        self._run(
            "INSERT INTO signing_keys (tenant_id, key_id, public_key, private_key_pem,"
            " created_at, retired_at, revoked_at, revoke_reason)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                tenant_id,
                key.key_id,
                key.public_key,
                b"not a key",
                key.created_at,
                key.retired_at,
                key.revoked_at,
                None if key.revoked_at is None else "compromised",
            ),
        )

    def recall(self, tenant_id: str, code_key: str, reason: str) -> None:
        recall_id = "rc-" + os.urandom(6).hex()
        self._run(
            "INSERT INTO recalls (recall_id, tenant_id, request_id, scope, reason, effective_at,"
            " token_id, fingerprint) VALUES (%s, %s, %s, %s::jsonb, %s, now(), 'tok', 'fp')",
            (recall_id, tenant_id, recall_id, json.dumps({"units": [code_key]}), reason),
        )
        self._run(
            "INSERT INTO recalled_units (unit_key, recall_id, is_code, previous_state)"
            " VALUES (%s, %s, true, 'commissioned')",
            (code_key, recall_id),
        )

    def endpoint(self, tenant_id: str, events: list[str]) -> str:
        endpoint_id = "we_" + base64.b32encode(os.urandom(10)).decode().lower()
        self._run(
            "INSERT INTO webhook_endpoints (tenant_id, endpoint_id, url, events, secret,"
            " created_at, secret_set_at) VALUES (%s, %s, 'https://h.example/in', %s, %s,"
            " now(), now())",
            (tenant_id, endpoint_id, events, "s" * 40),
        )
        return endpoint_id

    def outbox(self, tenant_id: str) -> list[tuple[str, str, list[str]]]:
        with self._db.unit_of_work() as uow:
            rows = uow.execute(
                "SELECT v.event_id, v.type, array_remove(array_agg(d.endpoint_id"
                " ORDER BY d.endpoint_id), NULL) FROM webhook_events v LEFT JOIN"
                " webhook_deliveries d USING (tenant_id, event_id) WHERE v.tenant_id = %s"
                " GROUP BY v.event_id, v.type ORDER BY v.event_id",
                (tenant_id,),
            )
        return [(r[0], r[1], list(r[2])) for r in rows]


class TestPostgresVerifierStorage(VerifierStorageContract):
    @pytest.fixture
    def storage(self, database: PostgresDatabase) -> PostgresVerifierStorage:
        return PostgresVerifierStorage(database)

    @pytest.fixture
    def seed(self, database: PostgresDatabase) -> PostgresSeeder:
        return PostgresSeeder(database)

    @pytest.fixture(params=["single", "cluster"])
    def client(self, request: pytest.FixtureRequest, redis_url: str) -> Iterator[RedisClient]:
        """One Redis server, and a Redis Cluster (keys in many slots, redirections)."""
        if request.param == "cluster":
            servers: RedisClusterServers = request.getfixturevalue("redis_cluster_servers")
            client = connect_redis(None, servers.seeds)
        else:
            client = connect_redis(redis_url, None)
        yield client
        client.close()

    @pytest.fixture
    def state(self, client: RedisClient) -> Iterator[ScanState]:
        state = ScanState(RedisGate(client))
        yield state
        state.close()

    @pytest.fixture
    def published(self, client: RedisClient) -> Callable[[str], list[tuple[int, str]]]:
        def read(tenant: str) -> list[tuple[int, str]]:
            entries = client.xrange(f"alerts:{tenant}")
            return [(int(f[b"id"]), f[b"kind"].decode()) for _, f in entries]

        return read


def test_a_database_that_is_away_is_unavailable(pg_dsn: str) -> None:
    """The sink's driver errors surface as named Sealmark errors, never as psycopg2's: the
    scan log keeps the batch and retries it."""
    away = PostgresDatabase(with_dbname(pg_dsn, "no_such_db_" + os.urandom(4).hex()), pool_size=1)
    try:
        with pytest.raises(Unavailable):
            PostgresVerifierStorage(away).append_scans([])
    finally:
        away.close()


class TestPostgresMediaReader(MediaReaderContract):
    @pytest.fixture
    def media_reader(self, database: PostgresDatabase) -> PostgresMediaReader:
        return PostgresMediaReader(database)

    @pytest.fixture
    def seed_media(self, database: PostgresDatabase) -> MediaSeed:
        def seed(tenant_id: str, ref: MediaRef, body: bytes) -> None:
            with database.unit_of_work() as uow:
                uow.execute(
                    "INSERT INTO product_media (tenant_id, gtin, kind, sha256, media_type, width,"
                    " height, body, alt, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                    " now())",
                    (
                        tenant_id,
                        ref.gtin,
                        ref.kind,
                        ref.sha256,
                        ref.media_type,
                        ref.width,
                        ref.height,
                        body,
                        ref.alt,
                    ),
                )
                uow.commit()

        return seed


class PostgresCatalogSeeder(PostgresSeeder):
    """What the Issuer (links, holds, codes) and the Audit (recalls) write, as they write it."""

    def product(self, tenant_id: str, gtin: str, name: str, profile: str = "signed") -> None:
        super().product(tenant_id, gtin, name, profile)

    def links(self, tenant_id: str, gtin: str, links: list[ProductLink]) -> None:
        with self._db.unit_of_work() as uow:
            at = SystemClock().now()
            PgProductLinkStore(uow).put_links(tenant_id, gtin, links, replace=True, at=at, by="t")
            uow.commit()

    def lot(self, tenant_id: str, gtin: str, lot: str) -> None:
        self.code(tenant_id, gtin, "S" + os.urandom(5).hex(), _stored(lot))

    def hold(self, tenant_id: str, gtin: str, lot: str, reason: str) -> None:
        self._run(
            "INSERT INTO lot_holds (gtin, lot, tenant_id, held, reason, changed_at, changed_by)"
            " VALUES (%s, %s, %s, true, %s, now(), 'tok')",
            (gtin, lot, tenant_id, reason),
        )

    def _recall(self, tenant_id: str, scope: dict[str, object], reason: str) -> None:
        recall_id = "rc-" + os.urandom(6).hex()
        self._run(
            "INSERT INTO recalls (recall_id, tenant_id, request_id, scope, reason, effective_at,"
            " token_id, fingerprint) VALUES (%s, %s, %s, %s::jsonb, %s, now(), 'tok', 'fp')",
            (recall_id, tenant_id, recall_id, json.dumps(scope), reason),
        )

    def recall_lot(self, tenant_id: str, gtin: str, lot: str, reason: str) -> None:
        self._recall(tenant_id, {"kind": "lot", "gtin": gtin, "lot": lot, "keys": []}, reason)

    def recall_product(self, tenant_id: str, gtin: str, reason: str) -> None:
        self._recall(tenant_id, {"kind": "gtin", "gtin": gtin, "lot": "", "keys": []}, reason)


def _stored(lot: str) -> StoredCode:
    return StoredCode("", "commissioned", lot, None, None, None, None, None)


class TestPostgresProductCatalog(ProductCatalogContract):
    @pytest.fixture
    def catalog(self, database: PostgresDatabase) -> PostgresProductCatalog:
        return PostgresProductCatalog(database)

    @pytest.fixture
    def catalog_seed(self, database: PostgresDatabase) -> PostgresCatalogSeeder:
        return PostgresCatalogSeeder(database)
