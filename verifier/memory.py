"""In-memory fakes of the Verifier's ports (verifier.ports), for unit tests: the same contract
as the PostgreSQL and Redis adapters (tests/contracts/verifier_storage.py runs on both).
Thread-safe. Seed them with the ``add_*`` methods, which stand in for the other services."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sealmark.errors import NotFound
from sealmark.webhooks.events import OutboxEvent, fan_out
from verifier.domain import ClientContext, History, Rules
from verifier.outbox import first_scan_events
from verifier.ports import (
    MAX_CODES,
    AlertRow,
    Limits,
    ProductFacts,
    PublicKey,
    Rebuild,
    ScanRow,
    StoredCode,
)

MAX_SESSIONS_KEPT = 64  # as the Redis adapter keeps


@dataclass
class _Tables:
    tenants: dict[str, list[str]] = field(default_factory=dict)  # tenant id -> prefixes
    products: dict[str, ProductFacts] = field(default_factory=dict)
    codes: dict[str, StoredCode] = field(default_factory=dict)
    recalls: dict[str, str] = field(default_factory=dict)
    keys: dict[str, list[PublicKey]] = field(default_factory=dict)
    rules: dict[str, Rules] = field(default_factory=dict)
    scans: dict[str, ScanRow] = field(default_factory=dict)  # by verification id, in order
    pin_uses: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    alerts: list[AlertRow] = field(default_factory=list)
    # The webhook outbox: active endpoints' event types, events by id, deliveries.
    endpoints: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    outbox: dict[tuple[str, str], OutboxEvent] = field(default_factory=dict)
    deliveries: list[tuple[str, str, str]] = field(default_factory=list)

    def add_outbox(self, events: Sequence[OutboxEvent]) -> int:
        endpoints = [(t, e, types) for (t, e), types in self.endpoints.items()]
        new = 0
        for event, ids in fan_out(events, endpoints):
            key = (event.tenant_id, event.event_id)
            if key in self.outbox:
                continue
            self.outbox[key] = event
            self.deliveries += [(event.tenant_id, i, event.event_id) for i in ids]
            new += 1
        return new


class MemoryVerifierStore:
    """:class:`~verifier.ports.VerifierStore` on the fake's tables."""

    def __init__(self, tables: _Tables, *, writable: bool) -> None:
        self._t = tables
        self._writable = writable

    def _writes(self) -> None:
        if not self._writable:
            raise RuntimeError("a reads() block writes nothing: use transaction()")

    def codes(self, code_keys: Sequence[str]) -> dict[str, StoredCode]:
        if len(code_keys) > MAX_CODES:
            raise ValueError(f"at most {MAX_CODES} codes per read, not {len(code_keys)}")
        return {k: self._t.codes[k] for k in code_keys if k in self._t.codes}

    def product(self, gtin: str) -> ProductFacts | None:
        return self._t.products.get(gtin)

    def recall_reason(self, code_key: str) -> str | None:
        return self._t.recalls.get(code_key)

    def prefixes(self) -> dict[str, str]:
        return {p: tenant for tenant, ps in self._t.tenants.items() for p in ps}

    def check_tenant(self, tenant_id: str) -> None:
        if tenant_id not in self._t.tenants:
            raise NotFound(f"tenant {tenant_id} not found")

    def public_keys(self, tenant_id: str) -> list[PublicKey]:
        return sorted(self._t.keys.get(tenant_id, []), key=lambda k: (k.created_at, k.key_id))

    def rules(self, tenant_id: str) -> Rules:
        return self._t.rules.get(tenant_id, Rules())

    def set_rules(self, tenant_id: str, rules: Rules, at: datetime) -> None:
        self._writes()
        self._t.rules[tenant_id] = rules

    def history(self, code_key: str) -> tuple[History, set[str]]:
        scans = [s for s in self._t.scans.values() if s.code_key == code_key]
        first = min((s for s in scans if s.active), key=lambda s: s.verified_at, default=None)
        last = max(
            (s for s in scans if s.latitude is not None),
            key=lambda s: s.verified_at,
            default=None,
        )
        sessions = {s.session_key for s in scans}
        history = History(
            first_at=first.verified_at if first else None,
            first_region=first.region if first else "",
            last_at=last.verified_at if last else None,
            last_latitude=last.latitude if last else None,
            last_longitude=last.longitude if last else None,
            sessions=len(sessions),
        )
        return history, sessions

    def claim_pin(
        self,
        code_key: str,
        tenant_id: str,
        verification_id: str,
        session_key: str,
        region: str,
        at: datetime,
    ) -> tuple[datetime, str] | None:
        self._writes()
        earlier = self._t.pin_uses.get(code_key)
        if earlier is not None:
            return earlier
        self._t.pin_uses[code_key] = (at, session_key)
        return None

    def add_alert(self, alert: AlertRow) -> int:
        self._writes()
        self._t.alerts.append(alert)
        return len(self._t.alerts)

    def add_outbox(self, events: Sequence[OutboxEvent]) -> int:
        self._writes()
        return self._t.add_outbox(events)


class MemoryVerifierStorage:
    """:class:`~verifier.ports.VerifierStorage` and :class:`~verifier.ports.ScanSink` in
    memory. A transaction works on a copy of the tables, swapped in when it commits; blocks
    run one at a time."""

    def __init__(self) -> None:
        self._tables = _Tables()
        self._lock = threading.RLock()
        self._open = threading.local()
        self.fail_appends: Exception | None = None  # raised by append_scans while set

    @contextmanager
    def reads(self) -> Iterator[MemoryVerifierStore]:
        with self._lock:
            yield MemoryVerifierStore(self._tables, writable=False)

    @contextmanager
    def transaction(self) -> Iterator[MemoryVerifierStore]:
        """One transaction; a thread opens one at a time (a second inside the first would
        commit over it, not beside it as PostgreSQL's would: refused instead)."""
        with self._lock:
            if getattr(self._open, "transaction", False):
                raise RuntimeError("a transaction is open on this thread already")
            self._open.transaction = True
            try:
                draft = copy.deepcopy(self._tables)
                yield MemoryVerifierStore(draft, writable=True)
                self._tables = draft
            finally:
                self._open.transaction = False

    def append_scans(self, scans: Sequence[ScanRow]) -> None:
        with self._lock:
            if self.fail_appends is not None:
                raise self.fail_appends
            for scan in scans:
                self._tables.scans.setdefault(scan.verification_id, scan)
            self._tables.add_outbox(first_scan_events(scans))

    # -- seeding and inspection (what the Issuer, Audit and tenancy write in production) ---
    def add_tenant(self, tenant_id: str, prefixes: Sequence[str]) -> None:
        with self._lock:
            self._tables.tenants[tenant_id] = list(prefixes)

    def add_product(self, gtin: str, facts: ProductFacts) -> None:
        with self._lock:
            self._tables.products[gtin] = facts

    def add_code(self, code_key: str, code: StoredCode) -> None:
        with self._lock:
            self._tables.codes[code_key] = code

    def set_state(self, code_key: str, state: str) -> None:
        with self._lock:
            self._tables.codes[code_key] = replace(self._tables.codes[code_key], state=state)

    def add_key(self, tenant_id: str, key: PublicKey) -> None:
        with self._lock:
            self._tables.keys.setdefault(tenant_id, []).append(key)

    def recall(self, code_key: str, reason: str) -> None:
        with self._lock:
            self._tables.recalls[code_key] = reason

    def add_endpoint(self, tenant_id: str, endpoint_id: str, events: Sequence[str]) -> None:
        """An active webhook endpoint (Audit registers them in production)."""
        with self._lock:
            self._tables.endpoints[(tenant_id, endpoint_id)] = tuple(events)

    def outbox(self, tenant_id: str) -> list[tuple[OutboxEvent, list[str]]]:
        """The tenant's outbox events, each with its deliveries' endpoint ids."""
        with self._lock:
            return [
                (
                    event,
                    sorted(e for t, e, i in self._tables.deliveries if (t, i) == key),
                )
                for key, event in self._tables.outbox.items()
                if key[0] == tenant_id
            ]

    @property
    def scans(self) -> list[ScanRow]:
        with self._lock:
            return list(self._tables.scans.values())

    @property
    def alerts(self) -> list[AlertRow]:
        with self._lock:
            return list(self._tables.alerts)


@dataclass
class _Serial:
    first_ms: int | None = None
    first_region: str = ""
    last_ms: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    sessions: set[str] = field(default_factory=set)


class MemoryScanState:
    """:class:`~verifier.ports.ScanStateStore` in memory, with the Redis scripts' semantics.
    ``available = False`` plays a Redis that is away (degraded: answers from the rebuild).
    ``clock`` gives the wall time in seconds (request minutes, expiries)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._serials: dict[str, _Serial] = {}
        self._requests: dict[tuple[str, int], int] = {}
        self._guesses: dict[str, tuple[float, int]] = {}  # client -> (window end, count)
        self._once: dict[str, float] = {}  # key -> expiry
        self.published: list[tuple[str, int, str]] = []  # (tenant, alert id, kind)
        self.available = True

    @property
    def degraded(self) -> bool:
        return not self.available

    def close(self) -> None:
        pass

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
        if limits.per_minute >= 0:
            why = self.admit(limits)
            if why:
                return History(), self.available, why
        if not self.available:
            history, sessions = rebuild(code_key)
            sessions.add(session)
            return replace(history, sessions=len(sessions)), False, ""
        with self._lock:
            known = code_key in self._serials
        if not known:
            history, sessions = rebuild(code_key)  # outside the lock: it reads the scan log
            seeded = _Serial(
                _ms(history.first_at),
                history.first_region,
                _ms(history.last_at),
                history.last_latitude,
                history.last_longitude,
                set(sorted(sessions)[:MAX_SESSIONS_KEPT]),
            )
        with self._lock:
            serial = self._serials.get(code_key)
            if serial is None:
                serial = self._serials[code_key] = seeded
            before = History(
                first_at=_time(serial.first_ms),
                first_region=serial.first_region,
                last_at=_time(serial.last_ms),
                last_latitude=serial.latitude,
                last_longitude=serial.longitude,
            )
            if len(serial.sessions) < MAX_SESSIONS_KEPT:
                serial.sessions.add(session)
            now_ms = _ms(now)
            if active and serial.first_ms is None:
                serial.first_ms, serial.first_region = now_ms, context.region
            if context.latitude is not None:
                serial.last_ms = now_ms
                serial.latitude, serial.longitude = context.latitude, context.longitude
            return replace(before, sessions=len(serial.sessions)), True, ""

    def admit(self, limits: Limits) -> str:
        minute = int(self._clock() // 60)
        with self._lock:
            key = (limits.client, minute)
            count = self._requests[key] = self._requests.get(key, 0) + 1
            guesses = self._guess_count(limits.client)
        if count > limits.per_minute:
            return f"more than {limits.per_minute} verifications a minute from this client"
        if guesses > limits.guesses:
            return "too many unknown serials or wrong PINs from this client"
        return ""

    def _guess_count(self, client: str) -> int:
        window = self._guesses.get(client)
        if window is None or window[0] <= self._clock():
            return 0
        return window[1]

    def guessed(self, client: str, window_s: int) -> int:
        with self._lock:
            count = self._guess_count(client) + 1
            end = self._guesses[client][0] if count > 1 else self._clock() + window_s
            self._guesses[client] = (end, count)
            return count

    def first_time(self, key: str, ttl_s: int) -> bool:
        if not self.available:
            return True
        now = self._clock()
        with self._lock:
            if self._once.get(key, 0.0) > now:
                return False
            self._once[key] = now + ttl_s
            return True

    def publish_alert(self, tenant_id: str, alert_id: int, kind: str) -> None:
        if self.available:
            with self._lock:
                self.published.append((tenant_id, alert_id, kind))


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)
