"""In-memory fakes of the storage ports, for unit tests. Same contract as PostgreSQL, run
through the same contract suite: writes are staged in the unit of work and applied only on
commit, so leaving the block without ``commit()`` discards them."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from sealmark.errors import AlreadyExists, NotFound
from sealmark.events import DomainEvent, NewEvent
from sealmark.tenancy.model import ApiToken, Product, Tenant


class MemoryStore:
    """The committed state shared by every unit of work made from it."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.products: dict[str, Product] = {}
        self.tokens: dict[str, ApiToken] = {}
        self.events: list[DomainEvent] = []
        self.lock = threading.Lock()

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)


class MemoryUnitOfWork:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.tenants = _Tenants(self)
        self.products = _Products(self)
        self.tokens = _Tokens(self)
        self.events = _Events(self)
        self.committed = False

    def __enter__(self) -> Self:
        with self._store.lock:
            self.state = copy.copy(self._store.__dict__)
            for key in ("tenants", "products", "tokens"):
                self.state[key] = dict(self.state[key])
            self.state["events"] = list(self.state["events"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    def commit(self) -> None:
        with self._store.lock:
            for key in ("tenants", "products", "tokens", "events"):
                setattr(self._store, key, self.state[key])
        self.committed = True
        self.__enter__()

    def rollback(self) -> None:
        self.__enter__()


class _Tenants:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def add(self, tenant: Tenant) -> None:
        tenants: dict[str, Tenant] = self._uow.state["tenants"]
        if tenant.id in tenants:
            raise AlreadyExists(f"tenant {tenant.id} exists already")
        for other in tenants.values():
            for mine in tenant.company_prefixes:
                for theirs in other.company_prefixes:
                    if mine.startswith(theirs) or theirs.startswith(mine):
                        raise AlreadyExists(
                            f"company prefix overlaps {theirs} of tenant {other.id}"
                        )
        tenants[tenant.id] = tenant

    def get(self, tenant_id: str) -> Tenant:
        try:
            tenant: Tenant = self._uow.state["tenants"][tenant_id]
        except KeyError:
            raise NotFound(f"tenant {tenant_id} not found") from None
        return tenant

    def list(self) -> Sequence[Tenant]:
        return sorted(self._uow.state["tenants"].values(), key=lambda t: t.id)


class _Products:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def add(self, product: Product) -> None:
        products: dict[str, Product] = self._uow.state["products"]
        if product.tenant_id not in self._uow.state["tenants"]:
            raise NotFound(f"tenant {product.tenant_id} not found")
        if product.gtin in products:
            raise AlreadyExists(f"GTIN {product.gtin} is registered already")
        products[product.gtin] = product

    def get(self, gtin: str) -> Product:
        try:
            product: Product = self._uow.state["products"][gtin]
        except KeyError:
            raise NotFound(f"product {gtin} not found") from None
        return product

    def list(self, tenant_id: str) -> Sequence[Product]:
        return sorted(
            (p for p in self._uow.state["products"].values() if p.tenant_id == tenant_id),
            key=lambda p: p.gtin,
        )


class _Tokens:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def add(self, token: ApiToken) -> None:
        tokens: dict[str, ApiToken] = self._uow.state["tokens"]
        if token.tenant_id not in self._uow.state["tenants"]:
            raise NotFound(f"tenant {token.tenant_id} not found")
        if token.id in tokens:
            raise AlreadyExists(f"token {token.id} exists already")
        tokens[token.id] = token

    def get(self, token_id: str) -> ApiToken:
        try:
            token: ApiToken = self._uow.state["tokens"][token_id]
        except KeyError:
            raise NotFound(f"token {token_id} not found") from None
        return token

    def list(self, tenant_id: str) -> Sequence[ApiToken]:
        return [t for t in self._uow.state["tokens"].values() if t.tenant_id == tenant_id]

    def revoke(self, token_id: str, at: datetime) -> None:
        token = self.get(token_id)
        if token.revoked_at is None:
            self._uow.state["tokens"][token_id] = replace(token, revoked_at=at)


class _Events:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    def append(self, event: NewEvent) -> int:
        events: list[DomainEvent] = self._uow.state["events"]
        new_id = (events[-1].id if events else 0) + 1
        events.append(
            DomainEvent(
                id=new_id,
                tenant_id=event.tenant_id,
                kind=event.kind,
                subject=event.subject,
                occurred_at=event.occurred_at,
                recorded_at=datetime.now(UTC),
                payload=dict(event.payload),
                request_id=event.request_id,
            )
        )
        return new_id

    def read(self, tenant_id: str, after_id: int = 0, limit: int = 1000) -> Sequence[DomainEvent]:
        matching = [
            e for e in self._uow.state["events"] if e.tenant_id == tenant_id and e.id > after_id
        ]
        return matching[: max(0, limit)]
