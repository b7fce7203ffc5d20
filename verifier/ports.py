"""The Verifier's ports: the stored codes and their facts (PostgreSQL), the scan log's sink
(PostgreSQL) and the hot scan state with its rate gate (Redis). Docstrings are contracts that
every adapter keeps; ``tests/contracts/verifier_storage.py`` holds them to it, on the in-memory
fakes (``verifier.memory``) and on the real servers (``verifier.postgres``,
``verifier.redis_state``).

Errors raised by adapters are only those of :mod:`sealmark.errors`: ``NotFound`` for an
unknown tenant where one is named, ``Aborted`` for a serialization failure or deadlock and
``Unavailable`` when the server cannot be reached (both retryable: run the whole transaction
again), ``InvalidArgument`` for a value the store refuses. Retry rule: the Verifier retries
nothing itself on the scan path (a scan is answered or fails fast); its writes (``claim_pin``,
``add_alert``, ``set_rules``, ``append_scans``) are each safe to run again whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sealmark.gs1.links import ProductLink
from sealmark.webhooks.events import OutboxEvent
from verifier.domain import ClientContext, History, Rules

MAX_CODES = 16  # keys per read of codes (so at most 16 statements prepared per connection)


@dataclass(frozen=True)
class StoredCode:
    tenant_id: str
    state: str
    lot: str
    expiry: date | None
    production_date: date | None
    key_id: str | None
    pin_hash: bytes | None
    market: str | None


@dataclass(frozen=True)
class ProductFacts:
    """What a consumer is told of the product behind a code, besides the code's own lot and
    dates."""

    name: str
    brand: str
    code_profile: str = "signed"  # "compact": its codes carry a MAC in AI (92), not AI (8030)


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    public_key: bytes  # raw Ed25519, 32 bytes
    created_at: datetime
    retired_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class ScanRow:
    verification_id: str
    tenant_id: str | None
    code_key: str | None
    verdict: str
    reasons: list[str]
    risk_score: float
    session_key: str
    region: str
    latitude: float | None
    longitude: float | None
    active: bool
    verified_at: datetime


@dataclass(frozen=True)
class AlertRow:
    tenant_id: str | None
    kind: str
    code_key: str | None
    verification_id: str | None
    details: dict[str, Any]
    raised_at: datetime


class VerifierStore(Protocol):
    """What the Verifier reads and writes, inside one :class:`VerifierStorage` block."""

    def codes(self, code_keys: Sequence[str]) -> dict[str, StoredCode]:
        """The stored codes among ``code_keys`` (GTIN + serial), by key; keys not stored are
        absent, a key asked twice is answered once. ValueError for more than
        :data:`MAX_CODES` keys (a caller's bug: batches are cut to that size)."""

    def product(self, gtin: str) -> ProductFacts | None:
        """The product's name, its brand's name and its code profile; None for a GTIN no
        brand registered."""

    def recall_reason(self, code_key: str) -> str | None:
        """What the brand told consumers when it recalled the code; None if not recalled."""

    def prefixes(self) -> dict[str, str]:
        """Company prefix → tenant id, for every tenant."""

    def check_tenant(self, tenant_id: str) -> None:
        """Return when the tenant exists; raise NotFound ("tenant X not found") otherwise."""

    def public_keys(self, tenant_id: str) -> list[PublicKey]:
        """The tenant's signing keys (public halves), oldest first (by creation time, then
        key id); empty for a tenant with none, or an unknown one."""

    def rules(self, tenant_id: str) -> Rules:
        """The tenant's verification rules; the defaults (``Rules()``) when none were set."""

    def set_rules(self, tenant_id: str, rules: Rules, at: datetime) -> None:
        """Replace the tenant's rules (the last write wins). The caller checks the tenant."""

    def history(self, code_key: str) -> tuple[History, set[str]]:
        """A serial's scan history from the scan log: the first *active* scan (time and
        region), the last scan that carried a location, and the distinct session keys of
        every scan (``History.sessions`` is their count). Empty History for no scans."""

    def claim_pin(
        self,
        code_key: str,
        tenant_id: str,
        verification_id: str,
        session_key: str,
        region: str,
        at: datetime,
    ) -> tuple[datetime, str] | None:
        """Record the first correct PIN entry of the code. None when this is it; otherwise
        the earlier (first) use as (time, session key), which stays unchanged: this entry is
        then a reuse. Two concurrent first entries: exactly one gets None."""

    def add_alert(self, alert: AlertRow) -> int:
        """Store an alert; return its id (ids increase in the order alerts are added)."""

    def add_outbox(self, events: Sequence[OutboxEvent]) -> int:
        """Put webhook events in the outbox, committed with this transaction: those of
        tenants with an active endpoint subscribed to the event's type, each with a pending
        delivery per such endpoint (see ``sealmark.storage.postgres_outbox``). An event id
        already stored stays as it was, with no new delivery. Returns how many were new."""


class VerifierStorage(Protocol):
    """Opens :class:`VerifierStore` blocks; a use case never sees a connection."""

    def reads(self) -> AbstractContextManager[VerifierStore]:
        """Reads only, each seeing what is committed when it runs (no snapshot across them):
        the hot path's lookups. A write through it is a bug (RuntimeError)."""

    def transaction(self) -> AbstractContextManager[VerifierStore]:
        """One transaction: committed when the block ends normally, rolled back when it
        raises (nothing of it is then visible). Aborted or Unavailable from the block or its
        commit: run the whole block again (an Unavailable commit has an unknown outcome,
        so the block must be safe to run twice, as every write here is)."""


class ScanSink(Protocol):
    """Where the scan log's batches go (``verifier.scanlog.ScanLog`` queues and flushes)."""

    def append_scans(self, scans: Sequence[ScanRow]) -> None:
        """Store the batch, all or nothing, and in the same transaction the webhook events of
        its first genuine scans (``verifier.outbox.first_scan_events``, as
        :meth:`VerifierStore.add_outbox` stores them). A verification id already stored is
        not stored again (a batch retried after an unknown outcome). Aborted or Unavailable: nothing
        was stored, or the outcome is unknown; send the same batch again. Scans are then
        seen by :meth:`VerifierStore.history`."""


@dataclass(frozen=True)
class Limits:
    """Whom to count (a client address, scoped by the caller) and the limits that apply."""

    client: str
    per_minute: int  # -1: admitted already (record() then only records)
    guesses: int


# The scan log's history of a serial plus this process's scans not yet written.
Rebuild = Callable[[str], tuple[History, set[str]]]


class ScanStateStore(Protocol):
    """The hot path's state: per-serial scan history, per-client request and guess counts,
    alert de-duplication and alert notices. The truth is the scan log; this holds a copy that
    may be lost at any time (it is rebuilt through the ``rebuild`` callback). Never raises
    for its own server being away: it then answers from the rebuild and per-process counters
    and reports ``degraded``. Request counts are per calendar minute."""

    @property
    def degraded(self) -> bool:
        """True while the state's server is away (answers come from the fallbacks)."""

    def record(
        self,
        code_key: str,
        context: ClientContext,
        session: str,
        active: bool,
        now: datetime,
        rebuild: Rebuild,
        limits: Limits,
    ) -> tuple[History, bool, str]:
        """Admit the client (unless ``limits.per_minute`` is -1: admitted already) and add
        this scan to the serial's state, atomically. Returns (the History before this scan,
        with ``sessions`` counting this scan's session; whether the state's server answered;
        why the client is refused, "" when admitted).

        Refused (over ``per_minute`` requests this minute, or more than ``guesses`` guesses
        in the window): nothing is recorded, History() is returned. A serial the state does
        not know is seeded from ``rebuild(code_key)`` first (at most 64 sessions are kept).
        First verification: set by the first *active* scan (time, region), never moved.
        Last located scan: every scan with a location replaces it. Times keep milliseconds."""

    def admit(self, limits: Limits) -> str:
        """Count one request of ``limits.client`` this minute; why it is refused (more than
        ``per_minute`` requests, or more than ``guesses`` guesses), "" when admitted."""

    def guessed(self, client: str, window_s: int) -> int:
        """Count one guessing signal of ``client``; return its count in the window (the
        window starts at the first signal)."""

    def first_time(self, key: str, ttl_s: int) -> bool:
        """True the first time ``key`` is seen within ``ttl_s`` seconds, False after that
        (alert de-duplication). Without its server, always True."""

    def publish_alert(self, tenant_id: str, alert_id: int, kind: str) -> None:
        """Notify the tenant's alert watchers (the alert itself is already stored). Best
        effort: dropped without its server."""

    def close(self) -> None:
        """Release what this object holds itself (not a client the caller passed in)."""


@dataclass(frozen=True)
class MediaRef:
    """A picture of the consumer page, without its bytes: what the page links to."""

    kind: str  # "logo" or "image"
    gtin: str  # 14 digits, or "" for the tenant's own logo
    sha256: str  # hex digest of the bytes: the name of /media/{sha256}.{ext}
    media_type: str  # image/png, image/jpeg or image/webp
    width: int
    height: int
    alt: str  # the brand's alt text; "" = the page words one


@dataclass(frozen=True)
class MediaBlob:
    sha256: str
    media_type: str
    body: bytes


class MediaReader(Protocol):
    """The pictures the brands registered through the Issuer (table product_media), read
    only. Each method is one read that sees what is committed when it runs."""

    def media_refs(self, tenant_id: str, gtin: str) -> list[MediaRef]:
        """The tenant's pictures for ``gtin`` and its own (GTIN ""), by GTIN ("" first), then
        kind; empty when none."""

    def media_blob(self, sha256: str) -> MediaBlob | None:
        """The stored bytes whose SHA-256 is ``sha256`` (lower-case hex); None when no
        picture has them."""
# ------------------------------------------------------------------------ the resolver's catalog


@dataclass(frozen=True)
class CatalogEntry:
    """A registered product as the resolver shows it: whose it is, its name, its brand's."""

    tenant_id: str
    gtin: str
    name: str
    brand: str


@dataclass(frozen=True)
class LotStatus:
    """What is known of one lot of a product. ``issued``: codes of the lot were issued;
    ``recalled``: the Audit recalled the lot or the whole product (``recall_reason`` is what
    the brand told consumers, from the first such recall); ``held``: a QC hold stands."""

    issued: bool = False
    recalled: bool = False
    recall_reason: str = ""
    held: bool = False
    hold_reason: str = ""


class ProductCatalog(Protocol):
    """What the resolver reads (the non-serialised pages and the linkset): registered
    products, the links their brands registered, lot status. Reads only, each committed
    when it runs; the hot verification path never calls it. Errors: as above (Unavailable
    when the server cannot be reached)."""

    def entry(self, gtin: str) -> CatalogEntry | None:
        """The product registered with this 14-digit GTIN, None for none."""

    def links(self, tenant_id: str, gtin: str) -> list[ProductLink]:
        """The links the tenant registered for the product, in the order they were given
        (ties by link type, language, context, URL); empty for none or another tenant's."""

    def lot_status(self, tenant_id: str, gtin: str, lot: str) -> LotStatus:
        """The lot's status; ``LotStatus()`` for a lot nothing is known of. A recall of the
        whole GTIN recalls every lot of it."""

    def product_recall(self, tenant_id: str, gtin: str) -> str | None:
        """What the brand told consumers when it recalled every code of the GTIN (the first
        such recall); None when it did not."""

    def brand_of_prefix(self, digits: str) -> tuple[str, str] | None:
        """(tenant id, brand name) of the tenant whose company prefix begins ``digits``
        (an SSCC without its extension digit, say); None when no tenant's does."""
