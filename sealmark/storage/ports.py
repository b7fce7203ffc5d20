"""The storage ports. Docstrings are contracts that every adapter must keep.

Every adapter is run through one shared contract suite (``tests/storage_contract.py``): the
in-memory fake in unit tests, the PostgreSQL adapter against the embedded server and against
the system server in integration tests.

Errors raised by adapters are only those of :mod:`sealmark.errors`:
``AlreadyExists`` for a duplicate key, ``NotFound`` for a missing one, ``Aborted`` for a
serialization failure or deadlock (retry the whole unit of work), ``Unavailable`` when the
database cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from sealmark.events import DomainEvent, NewEvent
from sealmark.tenancy.certs import ClientCert
from sealmark.tenancy.model import ApiToken, Product, Tenant


class TenantRepository(Protocol):
    def add(self, tenant: Tenant) -> None:
        """Store a new tenant. Raises AlreadyExists if the id is taken, or if one of its
        company prefixes overlaps (is equal to, or a prefix of, or extends) another tenant's."""

    def get(self, tenant_id: str) -> Tenant:
        """Return the tenant. Raises NotFound."""

    def list(self) -> Sequence[Tenant]:
        """All tenants, ordered by id."""


class ProductRepository(Protocol):
    def add(self, product: Product) -> None:
        """Store a new product. Raises AlreadyExists if the GTIN is registered (by anyone)."""

    def get(self, gtin: str) -> Product:
        """Return the product with this 14-digit GTIN. Raises NotFound."""

    def list(self, tenant_id: str) -> Sequence[Product]:
        """The tenant's products, ordered by GTIN."""


class TokenRepository(Protocol):
    def add(self, token: ApiToken) -> None:
        """Store a new token (its hash only). Raises AlreadyExists if the id is taken."""

    def get(self, token_id: str) -> ApiToken:
        """Return the token, revoked or not. Raises NotFound."""

    def list(self, tenant_id: str) -> Sequence[ApiToken]:
        """The tenant's tokens, ordered by creation time."""

    def revoke(self, token_id: str, at: datetime) -> None:
        """Mark the token revoked at ``at``; revoking twice keeps the first time.

        Raises NotFound."""


class ClientCertRepository(Protocol):
    def add(self, cert: ClientCert) -> None:
        """Store a new registration. Raises AlreadyExists if the id is taken or an active
        registration has the same kind and value; NotFound if the tenant is unknown."""

    def get(self, cert_id: str) -> ClientCert:
        """Return the registration, revoked or not. Raises NotFound."""

    def find(self, keys: Sequence[tuple[str, str]]) -> Sequence[ClientCert]:
        """Every registration, active or revoked, whose (kind, value) is one of ``keys``,
        ordered by id."""

    def list(self, tenant_id: str) -> Sequence[ClientCert]:
        """The tenant's registrations, ordered by creation time."""

    def revoke(self, cert_id: str, at: datetime) -> None:
        """Mark the registration revoked at ``at``; revoking twice keeps the first time.

        Raises NotFound."""


class EventLog(Protocol):
    def append(self, event: NewEvent) -> int:
        """Append an event and return its id. Ids increase in append order."""

    def read(self, tenant_id: str, after_id: int = 0, limit: int = 1000) -> Sequence[DomainEvent]:
        """The tenant's events with id > ``after_id``, oldest first, at most ``limit``."""


class UnitOfWork(Protocol):
    """One database transaction. Leaving the ``with`` block without ``commit()`` rolls back."""

    @property
    def tenants(self) -> TenantRepository: ...

    @property
    def products(self) -> ProductRepository: ...

    @property
    def tokens(self) -> TokenRepository: ...

    @property
    def client_certs(self) -> ClientCertRepository: ...

    @property
    def events(self) -> EventLog: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make every write of this unit durable, atomically."""

    def rollback(self) -> None:
        """Discard every write of this unit."""


UnitOfWorkFactory = Callable[[], UnitOfWork]
