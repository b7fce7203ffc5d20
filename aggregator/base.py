"""What every Aggregator use case shares: the write of one idempotent event (one transaction,
or a savepoint of a :meth:`AggregatorBase.batch`), the tenant's company prefixes, the locks on
a hierarchy, SSCC registration and lot holds, and the request checks and fingerprints."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime

from aggregator.domain import Level, SsccRange, check_offset
from aggregator.ports import AggregationStorage, AggregationStore, Rule, Unit
from sealmark.clock import Clock
from sealmark.epcis.recorded import business_event_id
from sealmark.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
)
from sealmark.events import NewEvent
from sealmark.tenancy.model import Principal, Tenant, validate_market
from sealmark.units import UnitRef

TENANT_TTL_S = 5.0
RANGES_KEPT = 64


@dataclass(frozen=True)
class Where:
    """When and where an event happened (EPCIS eventTime, bizLocation, readPoint)."""

    event_time: datetime | None = None
    time_zone_offset: str = ""
    location: str = ""
    market: str = ""
    read_point: str = ""

    def check(self, prefix: str) -> None:
        check_offset(self.time_zone_offset, f"{prefix}.event_time_zone_offset")
        if self.market:
            validate_market(self.market, f"{prefix}.place.market")
        for name in ("location", "read_point"):
            if len(getattr(self, name)) > 128:
                raise InvalidArgument(f"{prefix}.place.{name}", "at most 128 characters")


NOWHERE = Where()  # no time (now), place or market given


@dataclass(frozen=True)
class Outcome:
    event_id: str
    duplicate: bool
    affected: int
    recorded_at: datetime
    epcis_event_id: str = ""  # the eventID of this event in every EPCIS export


@dataclass(frozen=True)
class HistoryRow:
    event_id: str
    action: str
    parent: UnitRef | None
    event_time: datetime
    attributes: dict[str, str] = field(default_factory=dict)


class AggregatorBase:
    """The state and internals the operation families (:mod:`aggregator.packing`,
    :mod:`aggregator.logistics`, :mod:`aggregator.queries`) build on."""

    def __init__(self, storage: AggregationStorage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._tenants: dict[str, tuple[float, Tenant]] = {}
        self._local = threading.local()  # the shared transaction of a batch()
        self._rules: dict[tuple[str, str], tuple[float, Rule | None]] = {}
        # Per tenant, the SSCC ranges that registered a pack lately, newest first: a line
        # packs into its allocation's SSCCs one after another.
        self._ranges: dict[str, list[SsccRange]] = {}

    def _write(
        self,
        principal: Principal,
        kind: str,
        event_id: str,
        fingerprint: str,
        subject: str,
        apply: Callable[[AggregationStore, datetime], tuple[int, dict[str, object]]],
    ) -> Outcome:
        def body(store: AggregationStore) -> Outcome:
            stored = store.stored_result(principal.tenant_id, event_id)
            if stored is not None:
                if (stored[0], stored[1]) != (kind, fingerprint):
                    raise AlreadyExists(
                        f"event_id {event_id} was used for another {stored[0]} event"
                    )
                result = stored[2]
                return Outcome(
                    event_id,
                    True,
                    int(result["affected"]),
                    datetime.fromisoformat(result["recorded_at"]),
                    str(result.get("epcis_event_id") or ""),
                )
            now = self._clock.now()
            affected, payload = apply(store, now)
            # A write that changed nothing (a pack of children already in the parent, under a
            # new event id: a line re-sending what it did) answers OK and records no domain
            # event, which would be an AggregationEvent without children. Its result is
            # stored all the same, so a resend of that id is a duplicate. Nor has it an
            # EPCIS event; any other write is known by the id the caller, the export and
            # the transparency log all share.
            epcis_id = business_event_id(kind, payload, now) if affected else ""
            payload["epcis_event_id"] = epcis_id
            # The domain event goes first, in one round trip with the result: if another
            # writer stored a result first, both are rolled back below.
            if affected:
                store.append_event(
                    NewEvent(
                        tenant_id=principal.tenant_id,
                        kind=kind,
                        subject=subject or f"event:{event_id}",
                        occurred_at=now,
                        payload=payload,
                        request_id=event_id,
                    )
                )
            stored_now = store.store_result(
                principal.tenant_id,
                event_id,
                kind,
                fingerprint,
                {"affected": affected, "recorded_at": now.isoformat(), "epcis_event_id": epcis_id},
                principal.token_id,
                now,
            )
            if not stored_now:
                # The same event id was being written concurrently and committed first:
                # roll back and answer as a resend (or ALREADY_EXISTS if it differs).
                raise _Raced
            return Outcome(event_id, False, affected, now, epcis_id)

        shared: AggregationStore | None = getattr(self._local, "store", None)
        if shared is not None:
            return _in_savepoint(shared, body)

        def attempt() -> Outcome:
            with self._storage.transaction() as store:
                return body(store)

        def once_more_if_raced() -> Outcome:
            try:
                return attempt()
            except _Raced:
                return attempt()

        return self._storage.retrying(once_more_if_raced)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: the writes made in this block, on this thread, share one transaction,
        each under its own savepoint (a failed one is rolled back alone and raises as usual).
        It commits when the block exits; nothing of it is durable before. A retryable error
        (deadlock, serialization) inside raises :class:`BatchInterrupted`: the caller commits
        what came before by leaving the block and runs the rest one by one."""
        with self._storage.transaction() as store:
            self._local.store = store
            try:
                yield
            finally:
                self._local.store = None

    def _owned(self, principal: Principal, refs: list[UnitRef], name: str) -> None:
        """PermissionDenied for a GTIN or SSCC outside the tenant's company prefixes."""
        tenant = self._tenant(principal.tenant_id)
        gtins: set[str] = set()  # the items of a case mostly share one GTIN: check it once
        for ref in refs:
            if ref.is_sscc:
                owned = tenant.owns_sscc(ref.sscc)
            elif ref.gtin in gtins:
                continue
            else:
                owned = tenant.owns_gtin(ref.gtin)
                gtins.add(ref.gtin)
            if not owned:
                raise PermissionDenied(f"{name}: {ref} is not under your company prefixes")

    def _tenant(self, tenant_id: str) -> Tenant:
        """The tenant, cached for a few seconds: its prefixes are read on every event, and
        change only when an admin adds one (seen here within TENANT_TTL_S)."""
        cached = self._tenants.get(tenant_id)
        if cached is not None and time.monotonic() - cached[0] < TENANT_TTL_S:
            return cached[1]
        with self._storage.reads() as store:
            tenant = store.tenant(tenant_id)
        self._tenants[tenant_id] = (time.monotonic(), tenant)
        return tenant

    def _lock_with_ancestors(
        self, store: AggregationStore, parent: str, others: list[str]
    ) -> list[str]:
        """Lock the parent, the others and the parent's ancestors; return the ancestors."""
        chain = store.lock_chain(parent, others)
        if chain is None:
            raise FailedPrecondition(f"the hierarchy above {UnitRef.of_key(parent)} keeps changing")
        return chain

    def _register_sscc(
        self, store: AggregationStore, tenant_id: str, sscc: str, level: Level, now: datetime
    ) -> Unit | None:
        """Register ``sscc`` as a unit if it falls in a range allocated to the tenant; None
        when it does not. Allocations are never withdrawn, so a range found once is kept (the
        last RANGES_KEPT per tenant) and the next SSCCs of a line's allocation need no read."""
        ranges = self._ranges.get(tenant_id, [])
        found = next((r for r in ranges if r.holds(sscc)), None)
        if found is None:
            found = store.sscc_range(tenant_id, sscc)
            if found is None:
                return None
            self._ranges[tenant_id] = [found, *ranges][:RANGES_KEPT]
        return store.create_sscc(tenant_id, sscc, level, now)

    def _check_holds(
        self,
        store: AggregationStore,
        tenant_id: str,
        units: list[Unit],
        verb: str,
        expand: bool = True,
    ) -> None:
        """FailedPrecondition when a unit, or anything inside one, is of a lot on hold
        (``expand=False``: ``units`` hold their descendants already)."""
        containers = [u.key for u in units if u.level > Level.ITEM] if expand else []
        inside = [k for k, _, _ in store.descendants(containers)] if containers else []
        extra = list(store.units(tenant_id, inside).values()) if inside else []
        for unit in [*units, *extra]:
            if unit.held:
                raise FailedPrecondition(
                    f"lot {unit.lot} of GTIN {unit.gtin} is on hold: cannot be {verb}"
                )


class _Raced(Exception):
    """Another transaction stored a result under the same event id first."""


class BatchInterrupted(Exception):
    """A write in :meth:`Aggregator.batch` met a retryable error and was rolled back; the
    writes before it stand. Run it (and the ones after it) outside the batch."""


def _in_savepoint(store: AggregationStore, body: Callable[[AggregationStore], Outcome]) -> Outcome:
    """Run ``body`` in the batch's transaction under a savepoint: on failure roll back just
    it. A write raced by another event of the same id is answered from the winner's result
    (once); a retryable error interrupts the batch (Unavailable is raised as it is: the
    transaction is gone)."""
    for attempt in (1, 2):
        try:
            with store.savepoint():
                return body(store)
        except _Raced:
            if attempt == 2:
                raise BatchInterrupted from None
            continue  # the other writer's result is visible now: answer from it
        except Aborted as exc:
            raise BatchInterrupted from exc
    raise AssertionError("unreachable")


def fingerprint(*parts: object) -> str:
    def plain(value: object) -> object:
        if isinstance(value, UnitRef):
            return value.key
        if isinstance(value, Where):
            return {k: str(v) if v is not None else None for k, v in asdict(value).items()}
        if isinstance(value, Level):
            return value.label
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    text = json.dumps([plain(p) for p in parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def where_facts(where: Where) -> dict[str, object]:
    return {
        k: v
        for k, v in (
            ("time_zone_offset", where.time_zone_offset),
            ("location", where.location),
            ("market", where.market),
            ("read_point", where.read_point),
        )
        if v
    }


def check_text(value: str, name: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(name, f"at most {limit} characters")
