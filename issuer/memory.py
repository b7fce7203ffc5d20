"""An in-memory fake of the Issuer's storage port (:mod:`issuer.ports`), for unit tests. Same
contract as PostgreSQL, run through the same suite (``tests/contracts/issuer_storage.py``).

Transactions are serialised: one at a time holds the store's lock from ``with`` to the end of
the block, works on a copy of the committed state, and ``commit()`` installs that copy (with
the tenancy unit's events). So every lock the port names holds trivially, nothing is ever
Aborted, and leaving the block without ``commit()`` discards the copy. Copying costs a pass
over the stored codes per transaction: fine for tests, not for a million codes.

The tenants, products and event log come from a :class:`sealmark.storage.memory.MemoryStore`
(the tenancy fake); the Aggregator's containment and the Audit's recalls, which the Issuer
only reads, are set with :meth:`MemoryIssuerStorage.pack` and
:meth:`MemoryIssuerStorage.recall_lot`.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, TypeVar

from issuer.domain.records import CodeRow, IssueRequestRow, Minted, StoredKey
from sealmark.crypto.keys import SealedKey
from sealmark.errors import AlreadyExists, NotFound, SealmarkError
from sealmark.gs1.links import ProductLink
from sealmark.storage.memory import MemoryStore, MemoryUnitOfWork

T = TypeVar("T")


@dataclass(frozen=True)
class _Key:
    sealed: SealedKey
    created_at: datetime
    retired_at: datetime | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    rotate_request_id: str | None = None
    rotate_revokes: bool = False

    def stored(self) -> StoredKey:
        return StoredKey(
            self.sealed.key_id,
            self.sealed.public_key,
            self.created_at,
            self.retired_at,
            self.revoked_at,
            self.revoke_reason,
        )


@dataclass(frozen=True)
class _Code:
    tenant_id: str
    request_id: str
    gtin: str
    serial: str
    seq: int
    signature: str
    lot: str
    expiry: date | None
    state: str
    updated_at: datetime


@dataclass
class _State:
    keys: dict[tuple[str, str], _Key] = field(default_factory=dict)
    requests: dict[tuple[str, str], IssueRequestRow] = field(default_factory=dict)
    serial_counts: dict[str, int] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    summaries: dict[tuple[str, str], str] = field(default_factory=dict)  # JSON text
    holds: dict[tuple[str, str], bool] = field(default_factory=dict)
    sscc_counters: dict[tuple[str, int], int] = field(default_factory=dict)
    allocations: dict[tuple[str, str], tuple[str, int, int, int]] = field(default_factory=dict)
    # What other services write and the Issuer reads:
    containment: dict[str, str] = field(default_factory=dict)  # child key -> parent key
    recalled_lots: set[tuple[str, str, str]] = field(default_factory=set)
    # (tenant id, GTIN) -> the product's links in order (a tuple: copies share no list)
    product_links: dict[tuple[str, str], tuple[ProductLink, ...]] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(
            **{name: type(value)(value) for name, value in vars(self).items()},
        )


class MemoryIssuerStorage:
    """The Issuer's storage in memory, over the tenancy fake ``tenancy``. Thread-safe."""

    def __init__(self, tenancy: MemoryStore) -> None:
        self.tenancy = tenancy
        self._state = _State()
        self._lock = threading.Lock()
        self._owner: int | None = None

    @contextmanager
    def transaction(self) -> Iterator[MemoryIssuerTransaction]:
        if self._owner == threading.get_ident():
            raise RuntimeError("a transaction is open in this thread already")
        with self._lock:
            self._owner = threading.get_ident()
            try:
                with self.tenancy.unit_of_work() as uow:
                    tx = MemoryIssuerTransaction(self, uow, self._state.copy())
                    yield tx
            finally:
                self._owner = None

    def retrying(self, fn: Callable[[], T]) -> T:
        for attempt in range(5):
            try:
                return fn()
            except SealmarkError as exc:
                if not exc.retryable or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def pack(self, child_key: str, parent_key: str) -> None:
        """Stand in for the Aggregator: ``child_key`` is packed in ``parent_key``."""
        with self.transaction() as tx:
            tx.state.containment[child_key] = parent_key
            tx.commit()

    def recall_lot(self, tenant_id: str, gtin: str, lot: str) -> None:
        """Stand in for the Audit: the tenant recalled the lot."""
        with self.transaction() as tx:
            tx.state.recalled_lots.add((tenant_id, gtin, lot))
            tx.commit()

    def _install(self, state: _State) -> None:
        self._state = state  # under self._lock: only the open transaction commits


class MemoryIssuerTransaction:
    def __init__(self, storage: MemoryIssuerStorage, uow: MemoryUnitOfWork, state: _State):
        self._storage = storage
        self._uow = uow
        self.state = state
        self.issuance = _Issuance(self)
        self.lines = _Lines(self)
        self.links = _Links(self)
        self.tenants = uow.tenants
        self.products = uow.products
        self.events = uow.events

    def commit(self) -> None:
        self._uow.commit()
        self._storage._install(self.state)
        self.state = self.state.copy()

    def tenant_exists(self, tenant_id: str) -> None:
        self._uow.tenants.get(tenant_id)

    def product_exists(self, gtin: str) -> None:
        self._uow.products.get(gtin)

    def now(self) -> datetime:
        return self._storage.tenancy.clock.now()


class _Issuance:
    def __init__(self, tx: MemoryIssuerTransaction) -> None:
        self._tx = tx

    @property
    def _state(self) -> _State:
        return self._tx.state

    def _tenant_keys(self, tenant_id: str) -> list[_Key]:
        keys = [k for (t, _), k in self._state.keys.items() if t == tenant_id]
        return sorted(keys, key=lambda k: (k.created_at, k.sealed.key_id))

    def active_key(self, tenant_id: str) -> SealedKey:
        active = [k for k in self._tenant_keys(tenant_id) if k.retired_at is None]
        if not active:
            raise NotFound(f"tenant {tenant_id} has no signing key: run 'sealmark keys rotate'")
        return active[-1].sealed

    def sealed_key(self, tenant_id: str, key_id: str) -> SealedKey:
        key = self._state.keys.get((tenant_id, key_id))
        if key is None:
            raise NotFound(f"signing key {key_id} of tenant {tenant_id} not found")
        return key.sealed

    def keys(self, tenant_id: str) -> list[StoredKey]:
        return [k.stored() for k in self._tenant_keys(tenant_id)]

    def rotation(self, tenant_id: str, request_id: str) -> tuple[str, bool] | None:
        for key in self._tenant_keys(tenant_id):
            if key.rotate_request_id == request_id:
                return key.sealed.key_id, key.rotate_revokes
        return None

    def add_key(
        self,
        tenant_id: str,
        key: SealedKey,
        at: datetime,
        *,
        request_id: str | None = None,
        revoke_reason: str | None = None,
    ) -> str | None:
        self._tx.tenant_exists(tenant_id)
        if (tenant_id, key.key_id) in self._state.keys:
            raise AlreadyExists(f"signing key {key.key_id} of tenant {tenant_id} exists")
        if request_id is not None and self.rotation(tenant_id, request_id) is not None:
            raise AlreadyExists(f"rotation {request_id} of tenant {tenant_id} exists")
        retired = None
        for stored in self._tenant_keys(tenant_id):
            if stored.retired_at is None:
                retired = stored.sealed.key_id
                revoked_at = at if revoke_reason is not None else None
                self._state.keys[(tenant_id, retired)] = replace(
                    stored, retired_at=at, revoked_at=revoked_at, revoke_reason=revoke_reason
                )
        self._state.keys[(tenant_id, key.key_id)] = _Key(
            key, at, rotate_request_id=request_id, rotate_revokes=revoke_reason is not None
        )
        return retired

    def revocation(self, tenant_id: str, key_id: str) -> tuple[datetime, str] | None:
        key = self._state.keys.get((tenant_id, key_id))
        if key is None or key.revoked_at is None or key.revoke_reason is None:
            return None
        return key.revoked_at, key.revoke_reason

    def lock_tenant_keys(self, tenant_id: str) -> int:
        return len(self._tenant_keys(tenant_id))

    def create_request(self, row: IssueRequestRow) -> bool:
        if (row.tenant_id, row.request_id) in self._state.requests:
            return False
        self._tx.tenant_exists(row.tenant_id)
        self._tx.product_exists(row.gtin)
        stored = replace(row, generated=0, created_at=self._tx.now())
        self._state.requests[(row.tenant_id, row.request_id)] = stored
        return True

    def request(self, tenant_id: str, request_id: str, *, lock: bool = False) -> IssueRequestRow:
        row = self._state.requests.get((tenant_id, request_id))
        if row is None:
            raise NotFound(f"issuance request {request_id} not found")
        return row

    def set_generated(self, tenant_id: str, request_id: str, generated: int) -> None:
        row = self._state.requests.get((tenant_id, request_id))
        if row is not None:
            self._state.requests[(tenant_id, request_id)] = replace(row, generated=generated)

    def reserve_serials(self, gtin: str, count: int) -> int:
        self._tx.product_exists(gtin)
        before = self._state.serial_counts.get(gtin, 0)
        self._state.serial_counts[gtin] = before + count
        return before

    def issued_count(self, gtin: str) -> int:
        return self._state.serial_counts.get(gtin, 0)

    def insert_codes(self, request: IssueRequestRow, minted: Minted) -> set[str]:
        codes = self._state.codes
        collided = set()
        for key, row in zip(minted.code_keys, minted.rows(), strict=True):
            if key in codes:
                collided.add(key)
                continue
            codes[key] = _Code(
                request.tenant_id,
                request.request_id,
                request.gtin,
                row.serial,
                row.seq,
                row.signature,
                request.lot,
                request.expiry,
                "allocated",
                minted.at,
            )
        return collided

    def state_counts(self, tenant_id: str, request_id: str) -> dict[str, int]:
        return dict(Counter(c.state for c in self._of_request(tenant_id, request_id)))

    def codes(self, tenant_id: str, request_id: str, start: int, stop: int) -> list[CodeRow]:
        return [
            CodeRow(c.seq, c.serial, c.signature)
            for c in self._of_request(tenant_id, request_id)
            if start <= c.seq < stop
        ]

    def _of_request(self, tenant_id: str, request_id: str) -> list[_Code]:
        mine = [
            c
            for c in self._state.codes.values()
            if (c.tenant_id, c.request_id) == (tenant_id, request_id)
        ]
        return sorted(mine, key=lambda c: c.seq)


class _Lines:
    def __init__(self, tx: MemoryIssuerTransaction) -> None:
        self._tx = tx

    @property
    def _state(self) -> _State:
        return self._tx.state

    def stored_summary(self, tenant_id: str, batch_id: str) -> dict[str, Any] | None:
        text = self._state.summaries.get((tenant_id, batch_id))
        return dict(json.loads(text)) if text is not None else None

    def store_summary(
        self, tenant_id: str, batch_id: str, kind: str, summary: dict[str, Any]
    ) -> None:
        self._tx.tenant_exists(tenant_id)
        if (tenant_id, batch_id) in self._state.summaries:
            raise AlreadyExists(f"report batch {batch_id} exists")
        self._state.summaries[(tenant_id, batch_id)] = json.dumps(summary)

    def _mine(self, tenant_id: str, keys: list[str]) -> dict[str, _Code]:
        codes = self._state.codes
        return {
            key: codes[key] for key in keys if key in codes and codes[key].tenant_id == tenant_id
        }

    def lock_codes(self, tenant_id: str, keys: list[str]) -> dict[str, tuple[str, str, str]]:
        found = self._mine(tenant_id, keys)
        return {key: (c.state, c.lot, c.request_id) for key, c in sorted(found.items())}

    def lot_facts(self, tenant_id: str, keys: list[str]) -> dict[str, tuple[str, date | None]]:
        return {c.serial: (c.lot, c.expiry) for c in self._mine(tenant_id, keys).values()}

    def packed(self, keys: list[str]) -> dict[str, str]:
        containment = self._state.containment
        found = {key: containment[key] for key in keys if key in containment}
        parents = set(containment.values())
        found.update({key: "" for key in keys if key in parents})
        return found

    def outstanding(self, tenant_id: str, request_id: str) -> list[str]:
        mine = [
            c
            for c in self._state.codes.values()
            if (c.tenant_id, c.request_id, c.state) == (tenant_id, request_id, "allocated")
        ]
        return [c.serial for c in sorted(mine, key=lambda c: c.seq)]

    def set_state(self, keys: list[str], state: str, at: datetime) -> None:
        codes = self._state.codes
        for key in keys:
            if key in codes:
                codes[key] = replace(codes[key], state=state, updated_at=at)

    def held_lots(self, gtin: str, lots: list[str]) -> set[str]:
        return {lot for lot in lots if self._state.holds.get((gtin, lot), False)}

    def set_hold(
        self, tenant_id: str, gtin: str, lot: str, held: bool, reason: str, at: datetime, by: str
    ) -> None:
        self._tx.tenant_exists(tenant_id)
        self._tx.product_exists(gtin)
        self._state.holds[(gtin, lot)] = held

    def recalled_lot(self, tenant_id: str, gtin: str, lot: str) -> bool:
        return (tenant_id, gtin, lot) in self._state.recalled_lots

    def reconcile(self, tenant_id: str, work_order: str) -> tuple[int, dict[str, int]]:
        requests = {
            request_id
            for (tenant, request_id), row in self._state.requests.items()
            if tenant == tenant_id and row.work_order == work_order
        }
        counts = Counter(
            c.state
            for c in self._state.codes.values()
            if c.tenant_id == tenant_id and c.request_id in requests
        )
        return len(requests), dict(counts)

    def allocation(self, tenant_id: str, request_id: str) -> tuple[str, int, int, int] | None:
        return self._state.allocations.get((tenant_id, request_id))

    def reserve_references(
        self, tenant_id: str, request_id: str, prefix: str, extension: int, quantity: int
    ) -> int:
        self._tx.tenant_exists(tenant_id)
        if (tenant_id, request_id) in self._state.allocations:
            raise AlreadyExists(f"SSCC allocation {request_id} exists")
        first = self._state.sscc_counters.get((prefix, extension), 0)
        self._state.sscc_counters[(prefix, extension)] = first + quantity
        self._state.allocations[(tenant_id, request_id)] = (prefix, extension, first, quantity)
        return first


class _Links:
    def __init__(self, tx: MemoryIssuerTransaction) -> None:
        self._tx = tx

    def links(self, tenant_id: str, gtin: str) -> list[ProductLink]:
        return list(self._tx.state.product_links.get((tenant_id, gtin), ()))

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
        self._tx.product_exists(gtin)
        stored = self.links(tenant_id, gtin)
        if replace:
            kept = {link.key for link in links}
            stored = [link for link in stored if link.key in kept]
        places = {link.key: index for index, link in enumerate(stored)}
        for link in links:
            if link.key in places:
                stored[places[link.key]] = link
            else:
                places[link.key] = len(stored)
                stored.append(link)
        self._tx.state.product_links[(tenant_id, gtin)] = tuple(stored)

    def delete_link(self, tenant_id: str, gtin: str, key: tuple[str, str, str, str]) -> bool:
        stored = self.links(tenant_id, gtin)
        kept = tuple(link for link in stored if link.key != key)
        self._tx.state.product_links[(tenant_id, gtin)] = kept
        return len(kept) != len(stored)
