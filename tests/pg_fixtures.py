"""Real PostgreSQL and Redis for integration and end-to-end tests.

The machine's servers (127.0.0.1:5432 / 6379, or SEALMARK_TEST_DATABASE_URL /
SEALMARK_TEST_REDIS_URL) when they answer; otherwise the embedded ones from the wheels, so a
machine without servers (a CI runner with CI=true included) still runs every test: nothing is
skipped for want of a server. A URL given explicitly in the environment that does not answer
is an error, not a reason to fall back. Each test session works in its own freshly created
database (unique name), dropped at the end, so parallel runs by different people never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
import redis

from sealmark.storage.embedded import EmbeddedServers, start_embedded
from sealmark.storage.migrate import apply_migrations
from tests.support.citus import CITUS_DSN, create_citus_database, drop_citus_database, is_citus
from tests.support.redis_cluster import RedisClusterServers, redis_cluster

SYSTEM_PG = os.environ.get(
    "SEALMARK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SYSTEM_REDIS = os.environ.get("SEALMARK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_EXPLICIT = "SEALMARK_TEST_DATABASE_URL" in os.environ
REDIS_EXPLICIT = "SEALMARK_TEST_REDIS_URL" in os.environ


def with_dbname(dsn: str, dbname: str) -> str:
    """The same server, another database, as a postgresql:// URL."""
    params = psycopg2.extensions.parse_dsn(dsn)
    user = quote(params.get("user", "postgres"), safe="")
    if params.get("password"):
        user += ":" + quote(params["password"], safe="")
    host = params.get("host", "")
    port = params.get("port")
    query = []
    if host.startswith("/"):
        query.append(f"host={quote(host)}")
        host = ""
    if port and not query:
        host = f"{host}:{port}"
    elif port:
        query.append(f"port={port}")
    return f"postgresql://{user}@{host}/{dbname}" + (f"?{'&'.join(query)}" if query else "")


def _pg_answers(dsn: str) -> bool:
    try:
        psycopg2.connect(dsn, connect_timeout=2).close()
    except psycopg2.Error:
        return False
    return True


def create_database(admin_dsn: str, *, migrate: bool = True) -> str:
    """Create a database with a name no other run uses; return its DSN (migrated if asked)."""
    name = f"sealmark_test_{uuid.uuid4().hex[:12]}"
    if is_citus(admin_dsn):
        dsn = with_dbname(admin_dsn, name)
        try:
            create_citus_database(admin_dsn, name, dsn, migrate=migrate)
        except BaseException:
            drop_database(admin_dsn, dsn)
            raise
        return dsn
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    dsn = with_dbname(admin_dsn, name)
    if migrate:
        try:
            apply_migrations(dsn)
        except BaseException:
            drop_database(admin_dsn, dsn)
            raise
    return dsn


def drop_database(admin_dsn: str, dsn: str) -> None:
    name = psycopg2.extensions.parse_dsn(dsn)["dbname"]
    if is_citus(admin_dsn):
        drop_citus_database(admin_dsn, name)
        return
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


@pytest.fixture(scope="session")
def system_pg_dsn() -> str | None:
    """The machine's PostgreSQL admin DSN when it answers, else None."""
    if _pg_answers(SYSTEM_PG):
        return SYSTEM_PG
    if PG_EXPLICIT:
        pytest.fail(f"SEALMARK_TEST_DATABASE_URL is set but does not answer: {SYSTEM_PG}")
    return None


@pytest.fixture(scope="session")
def embedded_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServers]:
    """The embedded servers, started once per session in a temporary dir, stopped at the end."""
    servers = start_embedded(Path(tmp_path_factory.mktemp("embedded")))
    yield servers
    servers.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With SEALMARK_TEST_CITUS_DSN set, every integration test that uses a database runs on
    plain PostgreSQL and on that Citus coordinator (ids ``[postgres]`` and ``[citus]``).
    Without it nothing is parametrised: there is no Citus variant to skip."""
    if (
        CITUS_DSN
        and "pg_backend" in metafunc.fixturenames
        and "integration" in metafunc.definition.path.parts
    ):
        metafunc.parametrize("pg_backend", ["postgres", "citus"], indirect=True, scope="session")


@pytest.fixture(scope="session")
def pg_backend(request: pytest.FixtureRequest) -> str:
    """Which server the session's databases are made on: "postgres" unless parametrised."""
    return str(getattr(request, "param", "postgres"))


@pytest.fixture(scope="session")
def pg_admin_dsn(system_pg_dsn: str | None, pg_backend: str, request: pytest.FixtureRequest) -> str:
    """A server where this session may create databases: the system one, else the embedded
    (the Citus coordinator of SEALMARK_TEST_CITUS_DSN for the ``[citus]`` variant)."""
    if pg_backend == "citus":
        assert CITUS_DSN is not None
        if not _pg_answers(CITUS_DSN):
            pytest.fail(f"SEALMARK_TEST_CITUS_DSN is set but does not answer: {CITUS_DSN}")
        return CITUS_DSN
    if system_pg_dsn is not None:
        return system_pg_dsn
    servers: EmbeddedServers = request.getfixturevalue("embedded_servers")
    return servers.database_url


@pytest.fixture(scope="session")
def pg_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh, uniquely named, migrated database of this session's own; dropped at the end."""
    dsn = create_database(pg_admin_dsn)
    yield dsn
    drop_database(pg_admin_dsn, dsn)


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """The machine's Redis when it answers, else the embedded one. Shared by everyone using
    that server: tests must use keys of their own (random tenant ids), never FLUSHDB."""
    try:
        with redis.Redis.from_url(SYSTEM_REDIS, socket_connect_timeout=1) as client:
            client.ping()
        return SYSTEM_REDIS
    except redis.RedisError:
        if REDIS_EXPLICIT:
            pytest.fail(f"SEALMARK_TEST_REDIS_URL is set but does not answer: {SYSTEM_REDIS}")
        servers: EmbeddedServers = request.getfixturevalue("embedded_servers")
        return servers.redis_url


@pytest.fixture(scope="session")
def redis_cluster_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisClusterServers]:
    """A Redis Cluster of this session's own (3 masters, 3 replicas), for the tests that do
    not kill nodes of it."""
    with redis_cluster(Path(tmp_path_factory.mktemp("redis-cluster"))) as servers:
        yield servers
