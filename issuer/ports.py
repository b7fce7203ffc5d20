"""The Issuer's storage ports. Docstrings are contracts that every adapter keeps; one suite
(``tests/contracts/issuer_storage.py``) runs them on the in-memory fake (:mod:`issuer.memory`)
and on PostgreSQL (:mod:`issuer.postgres`, :mod:`issuer.postgres_lines`).

A use case opens a transaction with :meth:`IssuerStorage.transaction` and sees, inside it, the
Issuer's own stores (:class:`IssuanceStore`: keys, issuance requests, codes;
:class:`LineStore`: what lines report, lot holds, SSCC ranges) next to the tenancy lookups and
the event log, all in that one transaction: an event is appended with the writes it records or
not at all.

Errors raised by adapters are only those of :mod:`sealmark.errors`: ``NotFound`` for a missing
row (where a method says so), ``AlreadyExists`` for a duplicate key, ``Aborted`` for a
serialization failure or deadlock, ``Unavailable`` when the database cannot be reached.
``Aborted`` and ``Unavailable`` mean: run the whole transaction again, which is what
:meth:`IssuerStorage.retrying` does.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from issuer.domain.media import MediaKind, StoredMedia
from issuer.domain.records import CodeRow, IssueRequestRow, Minted, StoredKey
from sealmark.crypto.keys import SealedKey
from sealmark.events import NewEvent
from sealmark.gs1.links import ProductLink
from sealmark.tenancy.model import Product, Tenant

T = TypeVar("T")


class IssuanceStore(Protocol):
    """Signing keys, issuance requests and their codes."""

    # -- keys ---------------------------------------------------------------------------
    def active_key(self, tenant_id: str) -> SealedKey:
        """The tenant's newest key that is not retired. Raises NotFound (naming
        'sealmark keys rotate') when it has none."""

    def sealed_key(self, tenant_id: str, key_id: str) -> SealedKey:
        """The key as stored, retired or not. Raises NotFound."""

    def keys(self, tenant_id: str) -> list[StoredKey]:
        """Every key of the tenant, oldest first (by creation time, then key id)."""

    def rotation(self, tenant_id: str, request_id: str) -> tuple[str, bool] | None:
        """(key id, whether it revoked its predecessor) of the rotation made with this request
        id, or None."""

    def add_key(
        self,
        tenant_id: str,
        key: SealedKey,
        at: datetime,
        *,
        request_id: str | None = None,
        revoke_reason: str | None = None,
    ) -> str | None:
        """Store ``key`` created at ``at``, recording the rotation's request id, and retire the
        previous active key at ``at`` (it keeps verifying); with ``revoke_reason`` revoke it
        too, for that reason. Returns the id of the key retired, None for a first key.
        Raises AlreadyExists if the tenant has a key with this id or a rotation with this
        request id."""

    def revocation(self, tenant_id: str, key_id: str) -> tuple[datetime, str] | None:
        """(when, why) ``key_id`` was revoked; None while it is trusted (or unknown)."""

    def lock_tenant_keys(self, tenant_id: str) -> int:
        """Serialise key rotations of the tenant until the transaction ends; return how many
        keys it has."""

    # -- requests -----------------------------------------------------------------------
    def create_request(self, row: IssueRequestRow) -> bool:
        """Insert the request (its ``generated`` starts at 0) unless (tenant, request id)
        exists; True when inserted now, False (writing nothing) when it existed."""

    def request(self, tenant_id: str, request_id: str, *, lock: bool = False) -> IssueRequestRow:
        """The request. With ``lock``, no other transaction gets it locked (or writes it)
        until this one ends. Raises NotFound."""

    def set_generated(self, tenant_id: str, request_id: str, generated: int) -> None:
        """Record that the request's codes 0..generated-1 are stored."""

    def reserve_serials(self, gtin: str, count: int) -> int:
        """Add ``count`` to the GTIN's issued serials, serialising reservations of the GTIN
        until the transaction ends; return the total before."""

    def issued_count(self, gtin: str) -> int:
        """How many serials of the GTIN were reserved by committed requests (0 if none)."""

    # -- codes --------------------------------------------------------------------------
    def insert_codes(self, request: IssueRequestRow, minted: Minted) -> set[str]:
        """Store the minted codes of ``request`` (state 'allocated', issued at
        ``minted.at``); return the code keys (GTIN + serial) NOT stored because a code with
        that key exists already, of any request or tenant: a serial collision, which the
        caller redraws. Every other code is stored."""

    def state_counts(self, tenant_id: str, request_id: str) -> dict[str, int]:
        """How many of the request's codes are in each state (states with none left out)."""

    def codes(self, tenant_id: str, request_id: str, start: int, stop: int) -> list[CodeRow]:
        """The request's stored codes with start <= seq < stop, by seq (``pin`` None)."""


class LineStore(Protocol):
    """What packaging lines report back, lot holds and SSCC ranges. Code keys are GTIN +
    serial; code states are the values of :class:`sealmark.lifecycle.CodeState`."""

    def stored_summary(self, tenant_id: str, batch_id: str) -> dict[str, Any] | None:
        """The summary stored for this report batch (a JSON object), or None."""

    def store_summary(
        self, tenant_id: str, batch_id: str, kind: str, summary: dict[str, Any]
    ) -> None:
        """Store a report batch's summary (JSON-able values; read back as JSON: tuples come
        back as lists). Raises AlreadyExists if the batch id was stored already."""

    def lock_codes(self, tenant_id: str, keys: list[str]) -> dict[str, tuple[str, str, str]]:
        """code_key → (state, lot, request id) of the tenant's codes among ``keys`` (other
        tenants' codes and unknown keys left out), locked until the transaction ends."""

    def lot_facts(self, tenant_id: str, keys: list[str]) -> dict[str, tuple[str, date | None]]:
        """serial → (lot, expiry) of the tenant's codes among ``keys`` (keys of one GTIN)."""

    def packed(self, keys: list[str]) -> dict[str, str]:
        """code_key → the unit it is packed in, for those of ``keys`` that are packed, and
        code_key → "" for those that hold units themselves (the Aggregator's containment)."""

    def outstanding(self, tenant_id: str, request_id: str) -> list[str]:
        """Serials of the request's codes still 'allocated', by seq."""

    def set_state(self, keys: list[str], state: str, at: datetime) -> None:
        """Move the codes with these keys to ``state`` (changed at ``at``); none: nothing."""

    def held_lots(self, gtin: str, lots: list[str]) -> set[str]:
        """Those of ``lots`` of the GTIN that are on hold now."""

    def set_hold(
        self, tenant_id: str, gtin: str, lot: str, held: bool, reason: str, at: datetime, by: str
    ) -> None:
        """Hold (or release) the lot; a later call for the same (GTIN, lot) replaces it. Raises
        NotFound when the GTIN is not a registered product."""

    def recalled_lot(self, tenant_id: str, gtin: str, lot: str) -> bool:
        """Whether the Audit recalled the lot (its hold is then final)."""

    def reconcile(self, tenant_id: str, work_order: str) -> tuple[int, dict[str, int]]:
        """(number of issuance requests, their codes per state) of a work order."""

    def allocation(self, tenant_id: str, request_id: str) -> tuple[str, int, int, int] | None:
        """(company prefix, extension digit, first reference, quantity) of the SSCC range
        reserved with this request id, or None."""

    def reserve_references(
        self, tenant_id: str, request_id: str, prefix: str, extension: int, quantity: int
    ) -> int:
        """Reserve the next ``quantity`` serial references of (prefix, extension) under this
        request id; return the first. Ranges of one (prefix, extension) never overlap and
        start at 0. Raises AlreadyExists if the request id reserved a range already."""


class ProductLinkStore(Protocol):
    """The links brands register for their products (what the resolver's linkset lists and
    its ``linkType`` redirects follow). A link is told apart by :attr:`ProductLink.key`
    (link type, language, context, URL) within its (tenant, GTIN)."""

    def links(self, tenant_id: str, gtin: str) -> list[ProductLink]:
        """The product's links in the order they were put (ties by key); empty for none."""

    def put_links(
        self,
        tenant_id: str,
        gtin: str,
        links: list[ProductLink],
        *,
        replace: bool,
        at: datetime,
        by: str,
    ) -> None:
        """Add ``links`` (no two with one key), replacing a stored link of the same key
        (its title and media type; it keeps its place). ``replace``: first remove every
        link of the product not among ``links``. Putting the same links twice changes
        nothing but ``at``/``by``. Raises NotFound when the GTIN is not a registered product."""

    def delete_link(self, tenant_id: str, gtin: str, key: tuple[str, str, str, str]) -> bool:
        """Remove the link with this key; False when there was none."""


class Tenants(Protocol):
    def get(self, tenant_id: str) -> Tenant:
        """The tenant. Raises NotFound."""


class Products(Protocol):
    def get(self, gtin: str) -> Product:
        """The product with this 14-digit GTIN. Raises NotFound."""


class Events(Protocol):
    def append(self, event: NewEvent) -> int:
        """Append an event (durable with the transaction's commit); return its id."""


class IssuerTransaction(Protocol):
    """One transaction. Leaving the ``with`` block without :meth:`commit` discards every
    write made through it."""

    @property
    def issuance(self) -> IssuanceStore: ...

    @property
    def lines(self) -> LineStore: ...

    @property
    def tenants(self) -> Tenants: ...

    @property
    def links(self) -> ProductLinkStore: ...

    @property
    def products(self) -> Products: ...

    @property
    def events(self) -> Events: ...

    def commit(self) -> None:
        """Make every write of the transaction durable, atomically. Raises Aborted on a
        conflict found at commit, Unavailable when the outcome is unknown."""


class IssuerStorage(Protocol):
    def transaction(self) -> AbstractContextManager[IssuerTransaction]:
        """A new transaction (read committed, with the locks the stores name)."""

    def retrying(self, fn: Callable[[], T]) -> T:
        """Call ``fn``; when it raises Aborted or Unavailable, call it again (after a short,
        growing pause), a few times at most; the last error propagates, others at once.

        The rule for callers: ``fn`` opens its own transaction and keeps no state between
        attempts; since a commit lost with the connection is Unavailable with an unknown
        outcome, ``fn`` must also be safe to run twice (idempotent by request id)."""


class ProductMediaStorage(Protocol):
    """The pictures of the consumer page (table product_media, one row per tenant, GTIN and
    kind; GTIN "" is the tenant's own logo). Each method is one statement: atomic, and safe to
    run again whole."""

    def put_media(self, media: StoredMedia) -> None:
        """Store ``media``, replacing the tenant's picture of that GTIN and kind. NotFound when
        ``media.gtin`` is not a product of ``media.tenant_id`` (or, for GTIN "", when there is
        no such tenant); nothing is written then."""

    def media(self, tenant_id: str, gtin: str) -> list[StoredMedia]:
        """The tenant's pictures registered for ``gtin`` ("" = the tenant's own), by kind;
        empty when none (or for another tenant's product)."""

    def remove_media(self, tenant_id: str, gtin: str, kind: MediaKind) -> bool:
        """Remove the tenant's picture of that GTIN and kind; False when there was none."""
