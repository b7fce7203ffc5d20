"""In-memory fakes of the storage ports, for unit tests. Same contract as PostgreSQL, run
through the same contract suite (``tests/storage_contract.py``).

A unit of work reads the committed state plus its own staged writes (read committed, like
PostgreSQL's default). Writes are staged and applied only by ``commit()``, which re-checks the
uniqueness rules against what other units committed meanwhile, under the store's lock: of two
units adding the same key (or overlapping company prefixes) exactly one commit succeeds, the
other raises AlreadyExists. Leaving the block without ``commit()`` discards the staged writes.
Event ids come from a store-wide sequence, so they increase in append order across units and a
rolled-back append leaves a gap, as a PostgreSQL identity column does.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

from sealmark.clock import Clock, SystemClock
from sealmark.errors import AlreadyExists, NotFound
from sealmark.events import DomainEvent, NewEvent
from sealmark.tenancy.certs import ClientCert
from sealmark.tenancy.model import ApiToken, Product, Tenant

T = TypeVar("T")


@dataclass
class _State:
    tenants: dict[str, Tenant] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    tokens: dict[str, ApiToken] = field(default_factory=dict)
    client_certs: dict[str, ClientCert] = field(default_factory=dict)
    events: list[DomainEvent] = field(default_factory=list)


class MemoryStore:
    """The committed state shared by every unit of work made from it. Thread-safe."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.committed = _State()
        self.lock = threading.Lock()
        self._event_ids = itertools.count(1)

    def next_event_id(self) -> int:
        with self.lock:
            return next(self._event_ids)

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)


class MemoryUnitOfWork:
    """One fake transaction; see the module docstring for its isolation."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.staged = _State()
        self.new_tenant_ids: set[str] = set()  # adds (checked at commit), not revokes
        self.new_product_gtins: set[str] = set()
        self.new_token_ids: set[str] = set()
        self.new_cert_ids: set[str] = set()
        self.tenants = _Tenants(self)
        self.products = _Products(self)
        self.tokens = _Tokens(self)
        self.client_certs = _ClientCerts(self)
        self.events = _Events(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    def commit(self) -> None:
        """Apply the staged writes atomically. Raises AlreadyExists (and applies nothing) when
        another unit committed a conflicting key first."""
        with self.store.lock:
            done = self.store.committed
            for tenant_id in self.new_tenant_ids:
                _check_tenant(self.staged.tenants[tenant_id], done.tenants)
            for gtin in self.new_product_gtins:
                if gtin in done.products:
                    raise AlreadyExists(f"GTIN {gtin} is registered already")
            for token_id in self.new_token_ids:
                if token_id in done.tokens:
                    raise AlreadyExists(f"token {token_id} exists already")
            for token in self.staged.tokens.values():
                current = done.tokens.get(token.id)
                if current is not None and current.revoked_at is not None:
                    token = replace(token, revoked_at=current.revoked_at)  # first revoke wins
                done.tokens[token.id] = token
            for cert_id in self.new_cert_ids:
                _check_cert(self.staged.client_certs[cert_id], done.client_certs)
            for cert in self.staged.client_certs.values():
                stored = done.client_certs.get(cert.id)
                if stored is not None and stored.revoked_at is not None:
                    cert = replace(cert, revoked_at=stored.revoked_at)  # first revoke wins
                done.client_certs[cert.id] = cert
            done.tenants.update(self.staged.tenants)
            done.products.update(self.staged.products)
            done.events = sorted(done.events + self.staged.events, key=lambda e: e.id)
        self.rollback()

    def rollback(self) -> None:
        self.staged = _State()
        self.new_tenant_ids, self.new_product_gtins, self.new_token_ids = set(), set(), set()
        self.new_cert_ids = set()

    def visible_tenants(self) -> dict[str, Tenant]:
        return self._overlay(lambda s: s.tenants)

    def visible_products(self) -> dict[str, Product]:
        return self._overlay(lambda s: s.products)

    def visible_tokens(self) -> dict[str, ApiToken]:
        return self._overlay(lambda s: s.tokens)

    def visible_certs(self) -> dict[str, ClientCert]:
        return self._overlay(lambda s: s.client_certs)

    def _overlay(self, table: Callable[[_State], dict[str, T]]) -> dict[str, T]:
        """Committed rows of one table overlaid with this unit's staged rows."""
        with self.store.lock:
            merged = dict(table(self.store.committed))
        merged.update(table(self.staged))
        return merged


def _check_tenant(tenant: Tenant, others: dict[str, Tenant]) -> None:
    if tenant.id in others:
        raise AlreadyExists(f"tenant {tenant.id} exists already")
    for other in others.values():
        for mine in tenant.company_prefixes:
            for theirs in other.company_prefixes:
                if mine.startswith(theirs) or theirs.startswith(mine):
                    raise AlreadyExists(f"company prefix overlaps {theirs} of tenant {other.id}")


class _Tenants:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def add(self, tenant: Tenant) -> None:
        _check_tenant(tenant, self._uow.visible_tenants())
        if tenant.created_at is None:
            tenant = replace(tenant, created_at=self._uow.store.clock.now())
        self._uow.staged.tenants[tenant.id] = tenant
        self._uow.new_tenant_ids.add(tenant.id)

    def get(self, tenant_id: str) -> Tenant:
        tenant = self._uow.visible_tenants().get(tenant_id)
        if tenant is None:
            raise NotFound(f"tenant {tenant_id} not found")
        return tenant

    def list(self) -> Sequence[Tenant]:
        return sorted(self._uow.visible_tenants().values(), key=lambda t: t.id)


class _Products:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def add(self, product: Product) -> None:
        if product.tenant_id not in self._uow.visible_tenants():
            raise NotFound(f"tenant {product.tenant_id} not found")
        if product.gtin in self._uow.visible_products():
            raise AlreadyExists(f"GTIN {product.gtin} is registered already")
        if product.created_at is None:
            product = replace(product, created_at=self._uow.store.clock.now())
        self._uow.staged.products[product.gtin] = product
        self._uow.new_product_gtins.add(product.gtin)

    def get(self, gtin: str) -> Product:
        product = self._uow.visible_products().get(gtin)
        if product is None:
            raise NotFound(f"product {gtin} not found")
        return product

    def list(self, tenant_id: str) -> Sequence[Product]:
        products = self._uow.visible_products().values()
        mine = [p for p in products if p.tenant_id == tenant_id]
        return sorted(mine, key=lambda p: p.gtin)


class _Tokens:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def add(self, token: ApiToken) -> None:
        if token.tenant_id not in self._uow.visible_tenants():
            raise NotFound(f"tenant {token.tenant_id} not found")
        if token.id in self._uow.visible_tokens():
            raise AlreadyExists(f"token {token.id} exists already")
        if token.created_at is None:
            token = replace(token, created_at=self._uow.store.clock.now())
        self._uow.staged.tokens[token.id] = token
        self._uow.new_token_ids.add(token.id)

    def get(self, token_id: str) -> ApiToken:
        token = self._uow.visible_tokens().get(token_id)
        if token is None:
            raise NotFound(f"token {token_id} not found")
        return token

    def list(self, tenant_id: str) -> Sequence[ApiToken]:
        tokens = self._uow.visible_tokens().values()
        mine = [t for t in tokens if t.tenant_id == tenant_id]
        return sorted(mine, key=lambda t: (t.created_at, t.id))

    def revoke(self, token_id: str, at: datetime) -> None:
        token = self.get(token_id)
        if token.revoked_at is None:
            self._uow.staged.tokens[token_id] = replace(token, revoked_at=at)


def _check_cert(cert: ClientCert, others: dict[str, ClientCert]) -> None:
    if cert.id in others:
        raise AlreadyExists(f"client certificate {cert.id} exists already")
    for other in others.values():
        if other.revoked_at is None and (other.kind, other.value) == (cert.kind, cert.value):
            raise AlreadyExists(f"{cert.kind} {cert.value!r} is registered already ({other.id})")


class _ClientCerts:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def add(self, cert: ClientCert) -> None:
        if cert.tenant_id not in self._uow.visible_tenants():
            raise NotFound(f"tenant {cert.tenant_id} not found")
        _check_cert(cert, self._uow.visible_certs())
        if cert.created_at is None:
            cert = replace(cert, created_at=self._uow.store.clock.now())
        self._uow.staged.client_certs[cert.id] = cert
        self._uow.new_cert_ids.add(cert.id)

    def get(self, cert_id: str) -> ClientCert:
        cert = self._uow.visible_certs().get(cert_id)
        if cert is None:
            raise NotFound(f"client certificate {cert_id} not found")
        return cert

    def find(self, keys: Sequence[tuple[str, str]]) -> Sequence[ClientCert]:
        wanted = set(keys)
        found = [c for c in self._uow.visible_certs().values() if (c.kind, c.value) in wanted]
        return sorted(found, key=lambda c: c.id)

    def list(self, tenant_id: str) -> Sequence[ClientCert]:
        mine = [c for c in self._uow.visible_certs().values() if c.tenant_id == tenant_id]
        return sorted(mine, key=lambda c: (c.created_at, c.id))

    def revoke(self, cert_id: str, at: datetime) -> None:
        cert = self.get(cert_id)
        if cert.revoked_at is None:
            self._uow.staged.client_certs[cert_id] = replace(cert, revoked_at=at)


class _Events:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def append(self, event: NewEvent) -> int:
        new_id = self._uow.store.next_event_id()
        self._uow.staged.events.append(
            DomainEvent(
                id=new_id,
                tenant_id=event.tenant_id,
                kind=event.kind,
                subject=event.subject,
                occurred_at=event.occurred_at,
                recorded_at=self._uow.store.clock.now(),
                # Round-trip through JSON as the jsonb column does: a payload PostgreSQL would
                # refuse fails here too, and the caller gets a copy, not its own dict back.
                payload=json.loads(json.dumps(event.payload, sort_keys=True)),
                request_id=event.request_id,
            )
        )
        return new_id

    def read(self, tenant_id: str, after_id: int = 0, limit: int = 1000) -> Sequence[DomainEvent]:
        with self._uow.store.lock:
            committed = list(self._uow.store.committed.events)
        visible = sorted(committed + self._uow.staged.events, key=lambda e: e.id)
        matching = [e for e in visible if e.tenant_id == tenant_id and e.id > after_id]
        return matching[: max(0, limit)]
