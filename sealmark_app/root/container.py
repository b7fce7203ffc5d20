"""Build every dependency once, from the settings: databases (embedded or given), Redis, the
clock, randomness and the authenticator. The CLI and the server call this; nothing else
constructs adapters."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from sealmark.clock import Clock, SystemClock
from sealmark.errors import InvalidArgument, Unauthenticated, Unavailable
from sealmark.secrets import Secrets, resolve_secrets
from sealmark.settings import Settings
from sealmark.storage.embedded import EmbeddedServers, start_embedded
from sealmark.storage.migrate import apply_migrations
from sealmark.storage.ports import UnitOfWork
from sealmark.storage.postgres import PostgresDatabase
from sealmark.storage.redis_client import REDIS_AWAY, RedisClient, connect_redis
from sealmark.tenancy.cert_usecases import authenticate_certificate
from sealmark.tenancy.certs import CertIdentity, CertOutcome
from sealmark.tenancy.model import Principal
from sealmark.tenancy.tokens import RandomBytes
from sealmark.tenancy.usecases import authenticate

log = structlog.get_logger("sealmark_app.root.container")


@dataclass
class Container:
    """Everything a service needs, built once per process."""

    settings: Settings
    database: PostgresDatabase
    redis: RedisClient
    clock: Clock
    random_bytes: RandomBytes
    embedded: EmbeddedServers | None = None
    authenticator: CachingAuthenticator = field(init=False)
    cert_authenticator: CachingCertAuthenticator = field(init=False)
    # What services started and must stop with the process (worker pools), newest first.
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Objects the services of one process share, by name (one Verifier for gRPC and HTTP).
    shared: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.authenticator = CachingAuthenticator(self.uow, ttl_s=5.0)
        self.cert_authenticator = CachingCertAuthenticator(self.uow, ttl_s=5.0)

    @functools.cached_property
    def secrets(self) -> Secrets:
        """Resolved on first use, so commands that need no secret never ask for one."""
        return resolve_secrets(self.settings)

    def uow(self) -> UnitOfWork:
        return self.database.unit_of_work()

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()
        self.database.close()
        self.redis.close()
        if self.embedded is not None:
            self.embedded.stop()


class CachingAuthenticator:
    """Token checks with a short positive cache, so hot streams don't hit PostgreSQL per call.

    A revoked token stops working within ``ttl_s`` seconds; failures are never cached.
    """

    def __init__(self, uow_factory: object, ttl_s: float) -> None:
        self._uow_factory = uow_factory
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def __call__(self, bearer: str) -> Principal:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(bearer)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            principal = authenticate(self._uow_factory, bearer)  # type: ignore[arg-type]
        except Unauthenticated:
            with self._lock:
                self._cache.pop(bearer, None)
            raise
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[bearer] = (now + self._ttl, principal)
        return principal


class CachingCertAuthenticator:
    """Client-certificate lookups with a short cache, so the calls of one connection do not
    each hit PostgreSQL. Every outcome is cached (a certificate is presented on each call of a
    connection, token or not): a registration or a revocation takes effect within ``ttl_s``."""

    def __init__(self, uow_factory: object, ttl_s: float) -> None:
        self._uow_factory = uow_factory
        self._ttl = ttl_s
        self._cache: dict[CertIdentity, tuple[float, CertOutcome]] = {}
        self._lock = threading.Lock()

    def __call__(self, identity: CertIdentity) -> CertOutcome:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(identity)
        if hit is not None and hit[0] > now:
            return hit[1]
        outcome = authenticate_certificate(self._uow_factory, identity)  # type: ignore[arg-type]
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[identity] = (now + self._ttl, outcome)
        return outcome


def bootstrap(settings: Settings, *, migrate: bool = True) -> Container:
    """Connect to (or start) PostgreSQL and Redis, apply migrations, build the container.

    Raises InvalidArgument when only one of the two server URLs is set, EmbeddedUnavailable
    when the embedded servers cannot run here, Unavailable when a server cannot be reached.
    """
    if (settings.database_url is None) != (settings.redis is None):
        missing = "SEALMARK_REDIS_URL" if settings.redis is None else "SEALMARK_DATABASE_URL"
        raise InvalidArgument(
            missing,
            "set both SEALMARK_DATABASE_URL and SEALMARK_REDIS_URL (or"
            " SEALMARK_REDIS_CLUSTER_NODES), or neither (neither = start the embedded servers)",
        )
    embedded: EmbeddedServers | None = None
    database_url, redis_url = settings.database_url, settings.redis_url
    if database_url is None:
        embedded = start_embedded(settings.data_dir.resolve())
        database_url, redis_url = embedded.database_url, embedded.redis_url
        log.info("embedded.started", data_dir=str(settings.data_dir))
    try:
        if migrate:
            applied = apply_migrations(database_url)
            if applied:
                log.info("migrations.applied", versions=applied)
        database = PostgresDatabase(
            database_url,
            pool_size=settings.db_pool_size,
            connect_timeout_s=settings.db_connect_timeout_s,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        try:
            client = connect_redis(redis_url, settings.redis_cluster_nodes)
        except REDIS_AWAY as exc:  # the cluster client asks its seeds for the slots at once
            database.close()
            raise Unavailable(
                f"SEALMARK_REDIS_CLUSTER_NODES: no seed node answered ({type(exc).__name__}: {exc})"
            ) from exc
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    return Container(settings, database, client, SystemClock(), os.urandom, embedded)
