"""In-memory fakes of Audit's ports (:mod:`audit.ports`), for unit tests: the same contracts
as the PostgreSQL and Redis adapters, run through the same suite
(``tests/contracts/audit_storage.py``).

:class:`MemoryAudit` is one world: the rows other services write (codes, SSCCs, containment,
events, scans, alerts) are seeded with its ``add_…`` methods, and its ``storage``, ``export``,
``tlog`` and ``wake`` are the ports. Transactions run one at a time under one lock (which is
also every row lock and the recall lock); a block that raises is rolled back whole. The store
classes are in :mod:`audit.memory_stores`."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from audit.memory_stores import MemoryAuditStore, MemoryExportReader
from audit.memory_tables import LOGGED_KINDS, Code, State
from audit.memory_tlog import MemoryTlogStore
from audit.memory_webhooks import HookTables, MemoryWebhookStorage
from sealmark.events import NewEvent
from sealmark.tenancy.model import Tenant

__all__ = ["LOGGED_KINDS", "MemoryAlertWake", "MemoryAudit"]


class MemoryAudit:
    """The world of the fakes. ``now`` stamps what the database would (recorded_at)."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.state = State()
        self.state.hooks = HookTables()
        self.now = now
        self.lock = threading.RLock()
        self._open = threading.local()
        self.storage = MemoryAuditStorage(self)
        self.export = MemoryExportStorage(self)
        self.tlog = MemoryTlogStorage(self)
        self.wake = MemoryAlertWake()
        self.webhooks = MemoryWebhookStorage(self.transaction)

    @contextmanager
    def transaction(self, writable: bool) -> Iterator[State]:
        """The tables, under the world's lock. A write transaction works on them in place and
        puts back a copy taken at its start when its block raises. Nothing may open inside a
        write transaction on the same thread: it would see, or roll back, writes PostgreSQL
        would keep apart (refused rather than wrong)."""
        with self.lock:
            if getattr(self._open, "writing", False):
                raise RuntimeError("a write transaction is open on this thread already")
            if not writable:
                yield self.state
                return
            saved = copy.deepcopy(self.state)
            self._open.writing = True
            try:
                yield self.state
            except BaseException:
                self.state = saved
                raise
            finally:
                self._open.writing = False

    # -- seeding: the rows other services write -------------------------------------------
    def add_tenant(self, tenant: Tenant) -> None:
        with self.lock:
            self.state.tenants[tenant.id] = tenant

    def add_product(
        self, tenant_id: str, gtin: str, alphabet: str = "numeric", length: int = 12
    ) -> None:
        with self.lock:
            self.state.products[gtin] = (tenant_id, alphabet, length)

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
        key = gtin + serial
        with self.lock:
            self.state.codes[key] = Code(
                key,
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
                issued_at or self.now(),
                market,
                seq,
                serial_scheme,
            )
        return key

    def add_sscc(
        self, tenant_id: str, sscc: str, state: str = "commissioned", market: str | None = None
    ) -> str:
        with self.lock:
            self.state.ssccs["sscc:" + sscc] = (tenant_id, state, market)
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
        """A containment change; ``packed`` also puts the unit in the parent now, ``unpacked``
        takes it out."""
        with self.lock:
            self.state.history.append(
                (tenant_id, unit, parent, action, event_id, at, dict(attributes or {}))
            )
            if action == "packed" and parent:
                self.state.containment[unit] = parent
            elif action == "unpacked":
                self.state.containment.pop(unit, None)

    def add_event(self, event: NewEvent) -> int:
        with self.lock:
            return self.state.append_event(event, self.now())

    def add_issue_request(
        self, tenant_id: str, request_id: str, work_order: str, gtin: str
    ) -> None:
        with self.lock:
            self.state.issue_requests[(tenant_id, request_id)] = work_order

    def add_signing_key(self, tenant_id: str, key_id: str, public_key: bytes) -> None:
        with self.lock:
            self.state.signing_keys[(tenant_id, key_id)] = public_key

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
        with self.lock:
            self.state.scans.append(
                (
                    verification_id,
                    tenant_id,
                    code_key,
                    verdict,
                    list(reasons or []),
                    risk,
                    region,
                    active,
                    at,
                )
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
        """An open alert as the verifier raises it (``details['region']`` is its region);
        returns its id."""
        with self.lock:
            alert_id = max(self.state.alerts, default=0) + 1
            self.state.alerts[alert_id] = {
                "tenant_id": tenant_id,
                "kind": kind,
                "status": "open",
                "code_key": code_key,
                "details": dict(details or {}),
                "raised_at": at,
                "note": None,
                "acknowledged_at": None,
                "resolved_at": None,
                "resolution": None,
                "changed_by": None,
            }
        return alert_id


class MemoryAuditStorage:
    def __init__(self, world: MemoryAudit) -> None:
        self._world = world

    @contextmanager
    def transaction(self) -> Iterator[MemoryAuditStore]:
        with self._world.transaction(True) as state:
            yield MemoryAuditStore(state, self._world.now, writable=True)

    @contextmanager
    def reads(self) -> Iterator[MemoryAuditStore]:
        with self._world.transaction(False) as state:
            yield MemoryAuditStore(state, self._world.now, writable=False)


class MemoryExportStorage:
    def __init__(self, world: MemoryAudit) -> None:
        self._world = world

    @contextmanager
    def snapshot(self) -> Iterator[MemoryExportReader]:
        with self._world.transaction(False) as state:
            yield MemoryExportReader(state)


class MemoryTlogStorage:
    def __init__(self, world: MemoryAudit) -> None:
        self._world = world

    @contextmanager
    def transaction(self) -> Iterator[MemoryTlogStore]:
        with self._world.transaction(True) as state:
            yield MemoryTlogStore(state, writable=True)

    @contextmanager
    def reads(self) -> Iterator[MemoryTlogStore]:
        with self._world.transaction(False) as state:
            yield MemoryTlogStore(state, writable=False)


class MemoryAlertWake:
    """The alert stream: :meth:`ring` appends an entry (as the verifier does)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._entries: dict[str, list[str]] = {}
        self._seq = 0
        self.down = False  # True: the stream cannot be reached

    def ring(self, tenant_id: str) -> str:
        with self._changed:
            self._seq += 1
            entry = f"{self._seq}-0"
            self._entries.setdefault(tenant_id, []).append(entry)
            self._changed.notify_all()
        return entry

    def wait(self, tenant_id: str, cursor: str, block_ms: int) -> str:
        with self._changed:
            if self.down:
                self._changed.wait(block_ms / 1000)
                return "$"
            entries = self._entries.setdefault(tenant_id, [])
            newest = _seq_of(entries[-1]) if entries else 0
            after = newest if cursor == "$" else _seq_of(cursor)

            def newer() -> list[str]:
                return [e for e in entries if _seq_of(e) > after]

            self._changed.wait_for(lambda: bool(newer()), block_ms / 1000)
            found = newer()
            return found[-1] if found else cursor


def _seq_of(entry: str) -> int:
    return int(entry.split("-", 1)[0])
