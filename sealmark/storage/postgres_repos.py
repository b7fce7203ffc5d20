"""PostgreSQL repositories behind the storage ports. All SQL of the tenancy tables lives here.

They run on a :class:`~sealmark.storage.postgres.PostgresUnitOfWork`, whose ``execute`` already
translates driver errors; here those errors only get clearer messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sealmark.errors import AlreadyExists, NotFound
from sealmark.events import TLOG_KINDS, DomainEvent, NewEvent
from sealmark.tenancy.certs import ClientCert, MatchKind
from sealmark.tenancy.model import ApiToken, CodeProfile, PackLevel, Product, Role, Tenant


class _Executor(Protocol):
    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...

    def defer(self, sql: str, params: Any = None) -> None: ...


# An arbitrary constant naming the lock that serialises tenant creation (see PgTenants.add).
_TENANT_PREFIX_LOCK = 0x5EA1_0002


class PgTenants:
    def __init__(self, db: _Executor) -> None:
        self._db = db

    def add(self, tenant: Tenant) -> None:
        # The overlap rule spans rows, so no index can enforce it: serialise tenant creation
        # with a transaction-scoped lock (rare writes), then check, then insert. A concurrent
        # add waits here until this transaction ends and then sees its prefixes.
        self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_TENANT_PREFIX_LOCK,))
        overlapping = self._db.execute(
            "SELECT prefix, tenant_id FROM tenant_prefixes p, unnest(%s::text[]) AS n(prefix_new)"
            " WHERE p.prefix LIKE n.prefix_new || '%%' OR n.prefix_new LIKE p.prefix || '%%'",
            (list(tenant.company_prefixes),),
        )
        if overlapping:
            prefix, owner = overlapping[0]
            raise AlreadyExists(f"company prefix overlaps {prefix} of tenant {owner}")
        try:
            self._db.execute(
                "INSERT INTO tenants (id, name, resolver_host, created_at)"
                " VALUES (%s, %s, %s, coalesce(%s, now()))",
                (tenant.id, tenant.name, tenant.resolver_host, tenant.created_at),
            )
        except AlreadyExists:
            raise AlreadyExists(f"tenant {tenant.id} exists already") from None
        for position, prefix in enumerate(tenant.company_prefixes):
            self._db.execute(
                "INSERT INTO tenant_prefixes (prefix, tenant_id, position) VALUES (%s, %s, %s)",
                (prefix, tenant.id, position),
            )

    def get(self, tenant_id: str) -> Tenant:
        rows = self._db.execute(_TENANT_SELECT + " WHERE t.id = %s GROUP BY t.id", (tenant_id,))
        if not rows:
            raise NotFound(f"tenant {tenant_id} not found")
        return _tenant(rows[0])

    def list(self) -> Sequence[Tenant]:
        rows = self._db.execute(_TENANT_SELECT + " GROUP BY t.id ORDER BY t.id")
        return [_tenant(r) for r in rows]


_TENANT_SELECT = (
    "SELECT t.id, t.name, array_agg(p.prefix ORDER BY p.position), t.resolver_host, t.created_at"
    " FROM tenants t JOIN tenant_prefixes p ON p.tenant_id = t.id"
)


def _tenant(row: tuple[Any, ...]) -> Tenant:
    return Tenant(
        id=row[0],
        name=row[1],
        company_prefixes=tuple(row[2]),
        resolver_host=row[3],
        created_at=row[4],
    )


class PgProducts:
    def __init__(self, db: _Executor) -> None:
        self._db = db

    def add(self, product: Product) -> None:
        try:
            self._db.execute(
                "INSERT INTO products (gtin, tenant_id, name, pack_level, default_market,"
                " serial_alphabet, serial_length, pin_length, created_at, code_profile)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s)",
                (
                    product.gtin,
                    product.tenant_id,
                    product.name,
                    product.pack_level.value,
                    product.default_market,
                    product.serial_alphabet,
                    product.serial_length,
                    product.pin_length,
                    product.created_at,
                    product.code_profile.value,
                ),
            )
        except AlreadyExists:
            raise AlreadyExists(f"GTIN {product.gtin} is registered already") from None
        except NotFound:
            raise NotFound(f"tenant {product.tenant_id} not found") from None

    def get(self, gtin: str) -> Product:
        rows = self._db.execute(_PRODUCT_SELECT + " WHERE gtin = %s", (gtin,))
        if not rows:
            raise NotFound(f"product {gtin} not found")
        return _product(rows[0])

    def list(self, tenant_id: str) -> Sequence[Product]:
        rows = self._db.execute(
            _PRODUCT_SELECT + " WHERE tenant_id = %s ORDER BY gtin", (tenant_id,)
        )
        return [_product(r) for r in rows]


_PRODUCT_SELECT = (
    "SELECT tenant_id, gtin, name, pack_level, default_market, serial_alphabet, serial_length,"
    " pin_length, created_at, code_profile FROM products"
)


def _product(row: tuple[Any, ...]) -> Product:
    return Product(
        tenant_id=row[0],
        gtin=row[1],
        name=row[2],
        pack_level=PackLevel(row[3]),
        default_market=row[4],
        serial_alphabet=row[5],
        serial_length=row[6],
        pin_length=row[7],
        created_at=row[8],
        code_profile=CodeProfile(row[9]),
    )


class PgTokens:
    def __init__(self, db: _Executor) -> None:
        self._db = db

    def add(self, token: ApiToken) -> None:
        try:
            self._db.execute(
                "INSERT INTO api_tokens (id, tenant_id, name, roles, secret_hash, created_at)"
                " VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()))",
                (
                    token.id,
                    token.tenant_id,
                    token.name,
                    sorted(r.value for r in token.roles),
                    token.secret_hash,
                    token.created_at,
                ),
            )
        except AlreadyExists:
            raise AlreadyExists(f"token {token.id} exists already") from None
        except NotFound:
            raise NotFound(f"tenant {token.tenant_id} not found") from None

    def get(self, token_id: str) -> ApiToken:
        rows = self._db.execute(_TOKEN_SELECT + " WHERE id = %s", (token_id,))
        if not rows:
            raise NotFound(f"token {token_id} not found")
        return _token(rows[0])

    def list(self, tenant_id: str) -> Sequence[ApiToken]:
        rows = self._db.execute(
            _TOKEN_SELECT + " WHERE tenant_id = %s ORDER BY created_at, id", (tenant_id,)
        )
        return [_token(r) for r in rows]

    def revoke(self, token_id: str, at: datetime) -> None:
        rows = self._db.execute(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s"
            " RETURNING id",
            (at, token_id),
        )
        if not rows:
            raise NotFound(f"token {token_id} not found")


# SQL text, not a password (ruff S105 is fooled by the name).
_TOKEN_SELECT = (
    "SELECT id, tenant_id, roles, name, secret_hash, created_at, revoked_at FROM api_tokens"  # noqa: S105
)


def _token(row: tuple[Any, ...]) -> ApiToken:
    return ApiToken(
        id=row[0],
        tenant_id=row[1],
        roles=frozenset(Role(r) for r in row[2]),
        name=row[3],
        secret_hash=bytes(row[4]),
        created_at=row[5],
        revoked_at=row[6],
    )


class PgClientCerts:
    def __init__(self, db: _Executor) -> None:
        self._db = db

    def add(self, cert: ClientCert) -> None:
        try:
            self._db.execute(
                "INSERT INTO client_certs (id, tenant_id, name, roles, kind, value, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now()))",
                (
                    cert.id,
                    cert.tenant_id,
                    cert.name,
                    sorted(r.value for r in cert.roles),
                    cert.kind.value,
                    cert.value,
                    cert.created_at,
                ),
            )
        except AlreadyExists:
            raise AlreadyExists(
                f"{cert.kind} {cert.value!r} (or id {cert.id}) is registered already"
            ) from None
        except NotFound:
            raise NotFound(f"tenant {cert.tenant_id} not found") from None

    def get(self, cert_id: str) -> ClientCert:
        rows = self._db.execute(_CERT_SELECT + " WHERE id = %s", (cert_id,))
        if not rows:
            raise NotFound(f"client certificate {cert_id} not found")
        return _cert(rows[0])

    def find(self, keys: Sequence[tuple[str, str]]) -> Sequence[ClientCert]:
        if not keys:
            return []
        rows = self._db.execute(
            _CERT_SELECT + " WHERE (kind, value) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
            " ORDER BY id",
            ([k for k, _ in keys], [v for _, v in keys]),
        )
        return [_cert(r) for r in rows]

    def list(self, tenant_id: str) -> Sequence[ClientCert]:
        rows = self._db.execute(
            _CERT_SELECT + " WHERE tenant_id = %s ORDER BY created_at, id", (tenant_id,)
        )
        return [_cert(r) for r in rows]

    def revoke(self, cert_id: str, at: datetime) -> None:
        rows = self._db.execute(
            "UPDATE client_certs SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s"
            " RETURNING id",
            (at, cert_id),
        )
        if not rows:
            raise NotFound(f"client certificate {cert_id} not found")


_CERT_SELECT = (
    "SELECT id, tenant_id, roles, name, kind, value, created_at, revoked_at FROM client_certs"
)


def _cert(row: tuple[Any, ...]) -> ClientCert:
    return ClientCert(
        id=row[0],
        tenant_id=row[1],
        roles=frozenset(Role(r) for r in row[2]),
        name=row[3],
        kind=MatchKind(row[4]),
        value=row[5],
        created_at=row[6],
        revoked_at=row[7],
    )


_APPEND = (
    "INSERT INTO domain_events (tenant_id, kind, subject, occurred_at, payload, request_id)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
# A logged kind is queued for the transparency log by the same statement (one shard on Citus:
# both tables are distributed by tenant_id).
_APPEND_LOGGED = (
    "WITH e AS (" + _APPEND + " RETURNING tenant_id, id)"
    " INSERT INTO tlog_queue (tenant_id, event_id) SELECT tenant_id, id FROM e RETURNING event_id"
)


def _append_sql(event: NewEvent) -> str:
    return _APPEND_LOGGED if event.kind in TLOG_KINDS else _APPEND + " RETURNING id"


def _event_row(event: NewEvent) -> tuple[Any, ...]:
    return (
        event.tenant_id,
        event.kind,
        event.subject,
        event.occurred_at,
        json.dumps(event.payload, sort_keys=True),
        event.request_id,
    )


class PgEvents:
    def __init__(self, db: _Executor) -> None:
        self._db = db

    def append(self, event: NewEvent) -> int:
        rows = self._db.execute(_append_sql(event), _event_row(event))
        return int(rows[0][0])

    def append_later(self, event: NewEvent) -> None:
        """:meth:`append` sent with the transaction's next statement (see
        :meth:`PostgresUnitOfWork.defer`), for writers that do not need the event's id."""
        self._db.defer(_append_sql(event), _event_row(event))

    def read(self, tenant_id: str, after_id: int = 0, limit: int = 1000) -> Sequence[DomainEvent]:
        rows = self._db.execute(
            "SELECT id, tenant_id, kind, subject, occurred_at, recorded_at, payload, request_id"
            " FROM domain_events WHERE tenant_id = %s AND id > %s ORDER BY id LIMIT %s",
            (tenant_id, after_id, max(0, limit)),
        )
        return [DomainEvent(*row) for row in rows]
