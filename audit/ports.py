"""Audit's ports: what the use cases need from storage and from the alert stream. Docstrings
are contracts every adapter keeps; ``tests/contracts/audit_storage.py`` runs them on the
in-memory fakes (:mod:`audit.memory`) and on PostgreSQL and Redis (:mod:`audit.postgres`,
:mod:`audit.postgres_export`, :mod:`audit.postgres_tlog`, :mod:`audit.redis_wake`).

Opening a transaction: each ``...Storage`` port has ``transaction()`` (read-write) and a
read-only form; the store it yields is valid only inside the ``with`` block. Leaving the block
normally commits; leaving it by an exception rolls back everything written in it. Adapters raise
only :mod:`sealmark.errors`: ``AlreadyExists`` for a duplicate key, ``NotFound``, ``Unavailable``
when the database cannot be reached (the outcome of a commit is then unknown), and ``Aborted``
for a serialization failure or deadlock. Retry rule: after ``Aborted`` nothing of the block
was written; run the whole block again from the start (a block keeps no state between
attempts), or let the caller retry with the same request id (every Audit write is idempotent by
it).

Every read is scoped by tenant where it takes one: a row of another tenant is indistinguishable
from a missing one. Unit keys are code keys (GTIN-14 + serial) or ``sscc:`` + 18 digits."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from audit.domain import Alert, AlertStatus, RecallScope, Resolution
from sealmark.events import NewEvent
from sealmark.tenancy.model import Tenant
from sealmark.webhooks.events import OutboxEvent

# (unit, parent, action, event id, event time, attributes)
HistoryRow = tuple[str, str | None, str, str, datetime, dict[str, Any]]
# (kind, request id, occurred at, recorded at, payload)
EventRow = tuple[str, str, datetime, datetime, dict[str, Any]]
# (verification id, verified at, verdict, region, reasons, risk score)
ScanRow = tuple[str, datetime, str, str, list[str], float]
# (units, by shipment market, by last scan region, scans since, not shipped, dispensed)
RecallCounts = tuple[int, list[tuple[str, int]], list[tuple[str, int]], int, int, int]


@dataclass(frozen=True)
class CodeFacts:
    """What Trace shows of an issued code."""

    key: str
    gtin: str
    serial: str
    lot: str | None
    expiry: date | None
    state: str
    key_id: str | None
    signature: str | None
    work_order: str | None
    line_id: str | None
    request_id: str | None
    issued_at: datetime
    market: str | None


@dataclass(frozen=True)
class Recorded:
    """A recorded domain event, as the EPCIS export reads it."""

    id: int
    kind: str
    request_id: str
    occurred_at: datetime
    payload: dict[str, Any]
    subject: str = ""


@dataclass(frozen=True)
class Head:
    """A tenant's log: identity, key, and the latest signed checkpoint."""

    tenant_id: str
    origin: str
    key_name: str
    public_key: bytes
    private_key_pem: bytes
    size: int
    root_hash: bytes
    signed_note: str
    updated_at: datetime


class HistoryReader(Protocol):
    def containment_history(self, keys: list[str]) -> list[HistoryRow]:
        """Every containment change of the units in ``keys`` (any tenant: keys are unique),
        ordered by unit key, then oldest first per unit."""


class AlertStore(Protocol):
    def alert(self, tenant_id: str, alert_id: int, lock: bool = False) -> Alert | None:
        """One alert of the tenant, or None. ``lock``: no other transaction changes it until
        this one ends."""

    def alerts(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        kinds: list[str] | None = None,
        signature: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        code_key: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """The tenant's alerts, newest (highest id) first, at most ``limit``. Filters (None:
        any): stored ``status`` value, stored ``kinds``, raised in [``since``, ``until``),
        ``code_key``, id below ``before_id``. ``signature`` True keeps only alerts whose
        details' reason is one of :data:`audit.domain.SIGNATURE_REASONS`, False drops them."""

    def alerts_after(self, tenant_id: str, after_id: int, limit: int) -> list[Alert]:
        """The tenant's alerts with id above ``after_id``, oldest first, at most ``limit``."""

    def alerts_by_id(self, tenant_id: str, ids: list[int]) -> list[Alert]:
        """Those of ``ids`` that are alerts of the tenant, by id ascending."""

    def last_alert_id(self, tenant_id: str) -> int:
        """The highest alert id of the tenant, 0 when it has none."""

    def set_alert_status(
        self,
        alert_id: int,
        status: AlertStatus,
        note: str | None,
        resolution: Resolution | None,
        actor: str,
        at: datetime,
    ) -> None:
        """Move the alert to ``status`` (ACKNOWLEDGED stamps ``acknowledged_at``, RESOLVED
        ``resolved_at`` with ``at``), set ``resolution`` and the actor; a None ``note`` keeps
        the note it had."""


class UnitStore(HistoryReader, Protocol):
    def code(self, tenant_id: str, key: str) -> CodeFacts | None:
        """The tenant's code with this key, or None."""

    def owns_product(self, tenant_id: str, gtin: str) -> bool:
        """Whether the GTIN is a product of the tenant."""

    def owns_unit(self, tenant_id: str, key: str) -> bool:
        """Whether a code key or ``sscc:…`` key is one of the tenant's units."""

    def status_events(self, tenant_id: str, gtin: str, serial: str) -> list[EventRow]:
        """Line status batches (``codes.*`` but ``codes.issued``) of the GTIN whose
        ``serials`` include ``serial``, in append order."""

    def logistics_events(self, tenant_id: str, keys: list[str]) -> list[EventRow]:
        """``logistics.*`` events of the tenant naming any of ``keys`` in ``codes``, in append
        order. The request id is '' when the event had none."""

    def recall_of(self, key: str) -> tuple[str, str, datetime, str] | None:
        """(recall id, reason, effective at, request id) of the recall that took ``key``."""

    def scans(self, key: str) -> list[ScanRow]:
        """Every scan of the code, oldest first."""


class RecallStore(Protocol):
    def lock_recalls(self, tenant_id: str) -> None:
        """Wait until no other transaction holds the tenant's recall lock, then hold it until
        this transaction ends: recalls of one tenant run one at a time."""

    def recall_by_request(self, tenant_id: str, request_id: str) -> tuple[str, str] | None:
        """(recall id, fingerprint) of the tenant's recall with this request id."""

    def add_recall(
        self,
        recall_id: str,
        tenant_id: str,
        request_id: str,
        scope: RecallScope,
        reason: str,
        at: datetime,
        token_id: str,
        fingerprint: str,
    ) -> None:
        """Store a recall effective ``at``. AlreadyExists when the recall id, or the request id
        within the tenant, is taken."""

    def recall(self, tenant_id: str, recall_id: str) -> tuple[str, datetime] | None:
        """(reason, effective at) of one of the tenant's recalls."""

    def recall_units(self, tenant_id: str, scope: RecallScope, recall_id: str, at: datetime) -> int:
        """Mark every unit of the tenant in ``scope`` whose state is one of
        :data:`audit.domain.RECALLABLE` recalled by ``recall_id`` (state ``recalled``, the
        previous state and market kept); a unit already taken by a recall keeps its first.
        Scopes: a lot's or a GTIN's codes, listed codes, or (``parent``) the listed units and
        everything inside them now, at any depth. Returns how many codes changed (SSCCs are
        marked too but not counted). Atomic: a concurrent writer sees all or none."""

    def recall_report(self, recall_id: str, effective_at: datetime) -> RecallCounts:
        """Over the codes the recall took: how many; how many by shipment market ('' for
        none), and by the region of their latest active scan, each most first then by name;
        scans of them at or after ``effective_at``; how many were commissioned and never
        shipped; how many were dispensed."""

    def hold_recalled_lot(
        self, tenant_id: str, gtin: str, lot: str, reason: str, at: datetime, by: str
    ) -> None:
        """Hold the lot (the Issuer's lot hold, created or overwritten): lines cannot
        commission, pack or ship it, and the Issuer refuses to release it while the recall
        stands."""

    def lot_hold(self, tenant_id: str, gtin: str, lot: str) -> tuple[bool, str] | None:
        """(held, reason) of the tenant's lot hold, None when the lot never had one."""

    def record(self, event: NewEvent) -> int:
        """Append a domain event (committed with the transaction); returns its id. Ids grow
        in append order. Kinds the transparency log covers are queued for it."""

    def add_outbox(self, events: Sequence[OutboxEvent]) -> int:
        """Put webhook events in the outbox, committed with this transaction, as
        ``verifier.ports.VerifierStore.add_outbox`` does (the same tables); how many were
        new."""


class ReportStore(Protocol):
    """Rows of the tabular reports, in the order and the columns :mod:`audit.reports` names.
    None for a filter means any."""

    def reconciliation(
        self, tenant_id: str, work_order: str, gtin: str | None, lot: str | None
    ) -> list[list[Any]]:
        """Per lot ('' for none) of the work order's codes, by lot: [lot, allocated,
        commissioned, scrapped, returned, shipped, outstanding]."""

    def scans_by_region_day(
        self, tenant_id: str, since: datetime | None, until: datetime | None, region: str | None
    ) -> list[list[Any]]:
        """Per UTC day and region, by day then region: [day, region, genuine, suspect,
        other, total]."""

    def hotspots(
        self, tenant_id: str, since: datetime | None, until: datetime | None, region: str | None
    ) -> list[list[Any]]:
        """Per region with any: [region, suspect_clone, counterfeit, diverted, alerts], the
        most first, then by region."""

    def nearing_expiry(
        self, tenant_id: str, gtin: str | None, lot: str | None, today: date, horizon: date
    ) -> list[list[Any]]:
        """Active codes expiring in [today, horizon], per (gtin, lot, expiry, market), by
        expiry, gtin, lot, market: [gtin, lot, expiry, market, units]."""

    def serial_products(
        self, tenant_id: str, gtin: str | None
    ) -> list[tuple[str, str, int, int, int]]:
        """Per product, by GTIN: (gtin, serial alphabet, serial length, codes issued, codes of
        the legacy serial scheme 1)."""

    def verdict_mix(
        self, tenant_id: str, since: datetime | None, until: datetime | None
    ) -> list[list[Any]]:
        """Per verdict of the tenant's scans in [since, until): [verdict, scans], the most
        first, then by verdict."""

    def unresolved_alerts(self, tenant_id: str) -> list[list[Any]]:
        """The tenant's alerts not resolved, counted per stored kind, signature (whether the
        details' reason is one of :data:`audit.domain.SIGNATURE_REASONS`) and status:
        [kind, signature, status, alerts], by kind, signature, status."""

    def recall_reach(self, tenant_id: str, limit: int) -> list[list[Any]]:
        """The tenant's latest ``limit`` recalls, newest first (then by id): [recall id,
        effective at, reason, codes taken, markets they had been shipped to, scans of them at
        or after the recall took effect]."""


class AuditStore(AlertStore, UnitStore, RecallStore, ReportStore, Protocol):
    """Everything the Auditor and the Reporter read and write, in one transaction."""


class AuditStorage(Protocol):
    def transaction(self) -> AbstractContextManager[AuditStore]:
        """A read-write transaction: commits when the block ends normally (see the module
        docstring for rollback and the retry rule)."""

    def reads(self) -> AbstractContextManager[AuditStore]:
        """Reads only (each read sees what is committed when it runs); a write method raises
        RuntimeError (a bug, not a condition)."""


class ExportReader(HistoryReader, Protocol):
    def tenant(self, tenant_id: str) -> Tenant:
        """The tenant (for its company prefixes). NotFound."""

    def owns_unit(self, tenant_id: str, key: str) -> bool:
        """As :meth:`UnitStore.owns_unit`."""

    def events(
        self, tenant_id: str, since: datetime | None, until: datetime | None
    ) -> Generator[Recorded, None, None]:
        """The tenant's events of the kinds :data:`sealmark.epcis.recorded.KINDS` that
        occurred in [since, until), in append order, produced as they are read. Close the
        generator before the snapshot ends."""

    def lot_facts(
        self, tenant_id: str, gtin: str, serials: list[str]
    ) -> dict[str, tuple[str, date | None]]:
        """serial → (lot, '' for none; expiry) of those of the GTIN's serials issued to the
        tenant."""

    def recalled(self, recall_id: str) -> list[str]:
        """The units a recall took, by key."""

    def lot_units(self, tenant_id: str, gtin: str, lot: str) -> set[str]:
        """The lot's codes and every unit that ever held one of them, at any depth."""

    def descendants_ever(self, keys: list[str]) -> set[str]:
        """``keys`` and every unit that was ever inside one of them, at any depth."""


class ExportStorage(Protocol):
    def snapshot(self) -> AbstractContextManager[ExportReader]:
        """One consistent snapshot for a whole export (a transaction that writes nothing)."""


class TlogStore(Protocol):
    def head(self, tenant_id: str, lock: bool = False) -> Head | None:
        """The tenant's log head, or None before its first integration. ``lock``: other
        transactions wait for this one before they lock or change it."""

    def create_head(self, head: Head) -> None:
        """Store a new head; nothing happens when the tenant has one (a racing first
        integration: the caller then reads and locks the stored one)."""

    def update_head(self, head: Head) -> None:
        """Replace the size, root, note and time of the tenant's head."""

    def take_queue(self, tenant_id: str) -> list[tuple[int, str, str, datetime, dict[str, Any]]]:
        """Consume the tenant's queued events: (event id, kind, request id or '', occurred at,
        payload), in append order. Committed with the transaction; an event committed later
        is queued for a later call, none is returned twice."""

    def leaf_hashes(self, tenant_id: str, size: int) -> list[bytes]:
        """The leaf hashes of entries 0 .. ``size`` - 1, in index order."""

    def append(
        self, tenant_id: str, start: int, entries: list[tuple[str, bytes, bytes, int]], at: datetime
    ) -> None:
        """Entries (kind, data, leaf hash, source event) at indices ``start``, ``start`` + 1…
        AlreadyExists when an index is taken (entries are never replaced)."""

    def index_of(self, tenant_id: str, leaf: bytes) -> int | None:
        """The lowest index of an entry with this leaf hash."""

    def entry(self, tenant_id: str, index: int) -> bytes:
        """The stored bytes of entry ``index``. NotFound."""

    def entries(
        self, tenant_id: str, start: int, count: int
    ) -> list[tuple[int, str, bytes, datetime]]:
        """(index, kind, data, integrated at) from ``start``, at most ``count``, in order."""

    def batch_units(
        self, tenant_id: str, request_id: str, first: int, count: int
    ) -> list[tuple[str, str]]:
        """(code key, signature or '') of the codes of issue request ``request_id`` with seq in
        [first, first + count), in seq order."""

    def signatures(self, tenant_id: str, keys: list[str]) -> dict[str, str]:
        """code key → signature ('' for none) of those of ``keys`` issued to the tenant."""

    def public_key(self, tenant_id: str, key_id: str) -> bytes | None:
        """The public key of the tenant's signing key ``key_id``."""

    def batch_entry_of(
        self, tenant_id: str, code_key: str
    ) -> tuple[int, bytes, str, int, int] | None:
        """(entry index, entry bytes, request id, first seq, count) of the logged issuance
        chunk (``codes.issued`` event) that holds the code; None when the code or its entry
        is not there."""


class TlogStorage(Protocol):
    def transaction(self) -> AbstractContextManager[TlogStore]:
        """As :meth:`AuditStorage.transaction`."""

    def reads(self) -> AbstractContextManager[TlogStore]:
        """As :meth:`AuditStorage.reads`."""


class AlertWake(Protocol):
    """The verifier's alert stream (one per tenant, entries appended as alerts are raised):
    only a wake-up, never the source of alerts."""

    def wait(self, tenant_id: str, cursor: str, block_ms: int) -> str:
        """Wait up to ``block_ms`` for an entry after ``cursor`` on the tenant's stream
        (``$``: after the newest now); return the id of the newest entry read, or ``cursor``
        when none came. Never raises: when the stream cannot be reached it waits
        ``block_ms`` and returns ``$``."""
