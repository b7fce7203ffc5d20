"""An in-memory fake of the Aggregator's storage port (:mod:`aggregator.ports`), for unit
tests. Same contract as PostgreSQL, run through the same suite
(``tests/contracts/aggregator_storage.py``).

A transaction holds the store-wide lock from its start to its end, so transactions run one
after another (what the unit locks of PostgreSQL give the Aggregator, and a little more). It
works on a copy of the committed state, made the committed state by a normal exit and dropped
when the block raises; a savepoint is a copy of the working state, put back when its block
raises. Reads outside a transaction see the committed state of the moment. The tables the
Aggregator reads but does not write (tenants, products, codes, SSCC allocations, lot holds)
are filled through the seeding methods of :class:`MemoryAggregationStorage`.

Over 500 lines on purpose: it is one fake of one port, each method beside the contract it
keeps; split, the copy-on-write state and the methods that share it would scatter.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aggregator.domain import ChildGroup, Level, SsccRange
from aggregator.ports import (
    AggregationStorage,
    Decommission,
    HistoryEntry,
    Rule,
    StoredResult,
    Unit,
)
from sealmark.errors import AlreadyExists, NotFound, SealmarkError, Unavailable
from sealmark.events import NewEvent
from sealmark.tenancy.model import Tenant
from sealmark.units import SSCC_PREFIX

T = TypeVar("T")
MAX_DEPTH = 16  # as the recursive walks of PostgreSQL
RETRY_ATTEMPTS = 5


@dataclass(frozen=True)
class _Stored:
    """A code or an SSCC as its table holds it."""

    tenant_id: str
    state: str
    level: Level
    gtin: str
    lot: str
    market: str | None


@dataclass(frozen=True)
class _Link:
    tenant_id: str
    parent: str
    level: Level
    event_id: str
    packed_at: datetime


@dataclass(frozen=True)
class _Decision:
    tenant_id: str
    decommission: Decommission
    undone_at: datetime | None = None


@dataclass
class _State:
    tenants: dict[str, Tenant] = field(default_factory=dict)
    products: dict[str, Level] = field(default_factory=dict)  # gtin -> pack level
    units: dict[str, _Stored] = field(default_factory=dict)
    ranges: list[tuple[str, SsccRange]] = field(default_factory=list)
    holds: dict[tuple[str, str], bool] = field(default_factory=dict)
    links: dict[str, _Link] = field(default_factory=dict)  # child -> its link
    history: list[tuple[int, str, str, HistoryEntry]] = field(default_factory=list)
    results: dict[tuple[str, str], StoredResult] = field(default_factory=dict)
    rules: dict[tuple[str, str], Rule] = field(default_factory=dict)
    decisions: dict[tuple[str, str], _Decision] = field(default_factory=dict)
    events: list[NewEvent] = field(default_factory=list)

    def copy(self) -> _State:
        """A copy whose changes leave this one alone (every value held is immutable)."""
        return _State(
            dict(self.tenants),
            dict(self.products),
            dict(self.units),
            list(self.ranges),
            dict(self.holds),
            dict(self.links),
            list(self.history),
            dict(self.results),
            dict(self.rules),
            dict(self.decisions),
            list(self.events),
        )


class MemoryAggregationStorage:
    """:class:`aggregator.ports.AggregationStorage` in memory. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.committed = _State()
        self._history_ids = itertools.count(1)
        self._open = threading.local()

    # -- the port -----------------------------------------------------------------------
    @contextmanager
    def reads(self) -> Iterator[MemoryAggregationStore]:
        yield MemoryAggregationStore(self, None)

    @contextmanager
    def transaction(self) -> Iterator[MemoryAggregationStore]:
        """One transaction; a thread opens one at a time (a second inside the first would
        commit over it, not beside it as PostgreSQL's would: refused instead)."""
        with self.lock:
            if getattr(self._open, "transaction", False):
                raise RuntimeError("a transaction is open on this thread already")
            self._open.transaction = True
            try:
                store = MemoryAggregationStore(self, self.committed.copy())
                yield store
                assert store.work is not None
                self.committed = store.work
            finally:
                self._open.transaction = False

    def retrying(self, fn: Callable[[], T]) -> T:
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                return fn()
            except SealmarkError as exc:
                if not exc.retryable or attempt == RETRY_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def next_history_id(self) -> int:
        with self.lock:
            return next(self._history_ids)

    # -- seeding (what other services write) --------------------------------------------
    def add_tenant(self, tenant: Tenant) -> None:
        with self.lock:
            self.committed.tenants[tenant.id] = tenant

    def add_product(self, tenant_id: str, gtin: str, level: Level = Level.ITEM) -> None:
        with self.lock:
            self.committed.products[gtin] = level

    def add_code(
        self,
        tenant_id: str,
        gtin: str,
        serial: str,
        *,
        lot: str = "",
        state: str = "commissioned",
        market: str | None = None,
    ) -> str:
        """A code of a product added before; returns its key."""
        with self.lock:
            level = self.committed.products[gtin]
            key = gtin + serial
            self.committed.units[key] = _Stored(tenant_id, state, level, gtin, lot, market)
            return key

    def add_sscc(self, tenant_id: str, sscc: str, level: Level, state: str = "commissioned") -> str:
        """A registered SSCC; returns its key."""
        with self.lock:
            key = SSCC_PREFIX + sscc
            self.committed.units[key] = _Stored(tenant_id, state, level, "", "", None)
            return key

    def allocate_ssccs(self, tenant_id: str, allocated: SsccRange) -> None:
        with self.lock:
            self.committed.ranges.append((tenant_id, allocated))

    def hold_lot(self, gtin: str, lot: str, held: bool = True) -> None:
        with self.lock:
            self.committed.holds[gtin, lot] = held

    def events(self, tenant_id: str) -> list[NewEvent]:
        """The tenant's committed domain events, oldest first."""
        with self.lock:
            return [e for e in self.committed.events if e.tenant_id == tenant_id]


class MemoryAggregationStore:
    """:class:`aggregator.ports.AggregationStore` on a transaction's working state (``work``),
    or, with ``work`` None, on the committed state for reads only."""

    def __init__(self, storage: MemoryAggregationStorage, work: _State | None) -> None:
        self._storage = storage
        self.work = work

    def _state(self) -> _State:
        return self.work if self.work is not None else self._storage.committed

    def _writing(self) -> _State:
        if self.work is None:
            raise RuntimeError("a reads() store writes nothing: use transaction()")
        return self.work

    # -- tenants and events -------------------------------------------------------------
    def tenant(self, tenant_id: str) -> Tenant:
        with self._storage.lock:
            found = self._state().tenants.get(tenant_id)
        if found is None:
            raise NotFound(f"tenant {tenant_id}")
        return found

    def append_event(self, event: NewEvent) -> None:
        with self._storage.lock:
            self._writing().events.append(event)

    # -- idempotency --------------------------------------------------------------------
    def stored_result(self, tenant_id: str, event_id: str) -> StoredResult | None:
        with self._storage.lock:
            found = self._state().results.get((tenant_id, event_id))
        if found is None:
            return None
        return found[0], found[1], json.loads(json.dumps(found[2]))

    def store_result(
        self,
        tenant_id: str,
        event_id: str,
        kind: str,
        fingerprint: str,
        result: dict[str, Any],
        token_id: str,
        at: datetime,
    ) -> bool:
        with self._storage.lock:
            results = self._writing().results
            if (tenant_id, event_id) in results:
                return False
            results[tenant_id, event_id] = (kind, fingerprint, json.loads(json.dumps(result)))
            return True

    # -- locking: a transaction holds the store-wide lock already -----------------------
    def lock(self, keys: list[str]) -> None:
        return None

    def lock_chain(self, head: str, others: list[str]) -> list[str] | None:
        with self._storage.lock:
            return self._chain(self._state(), head)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        saved = self._writing().copy()
        try:
            yield
        except Unavailable:
            raise
        except BaseException:
            self.work = saved
            raise

    # -- units --------------------------------------------------------------------------
    def units(self, tenant_id: str, keys: list[str], *, lock: bool = False) -> dict[str, Unit]:
        with self._storage.lock:
            state = self._state()
            out: dict[str, Unit] = {}
            for key in keys:
                stored = state.units.get(key)
                if stored is None or stored.tenant_id != tenant_id:
                    continue
                link = state.links.get(key)
                held = bool(stored.lot) and state.holds.get((stored.gtin, stored.lot), False)
                out[key] = Unit(
                    key,
                    stored.state,
                    stored.level,
                    stored.gtin,
                    stored.lot,
                    stored.market,
                    link.parent if link else None,
                    held,
                )
            return out

    def sscc_range(self, tenant_id: str, sscc: str) -> SsccRange | None:
        with self._storage.lock:
            ranges = self._state().ranges
            return next((r for t, r in ranges if t == tenant_id and r.holds(sscc)), None)

    def create_sscc(self, tenant_id: str, sscc: str, level: Level, at: datetime) -> Unit:
        key = SSCC_PREFIX + sscc
        with self._storage.lock:
            units = self._writing().units
            if key in units:
                raise AlreadyExists(f"SSCC {sscc} is registered")
            units[key] = _Stored(tenant_id, "commissioned", level, "", "", None)
        return Unit(key, "commissioned", level, "", "", None)

    def set_state(
        self, keys: list[str], state: str, at: datetime, market: str | None = None
    ) -> None:
        with self._storage.lock:
            units = self._writing().units
            for key in keys:
                stored = units.get(key)
                if stored is not None:
                    units[key] = replace(
                        stored, state=state, market=stored.market if market is None else market
                    )

    # -- hierarchy ----------------------------------------------------------------------
    def owned_ancestors(self, tenant_id: str, key: str) -> list[str] | None:
        with self._storage.lock:
            state = self._state()
            stored = state.units.get(key)
            if stored is None or stored.tenant_id != tenant_id:
                return None
            return self._chain(state, key)

    def children(self, parent: str) -> list[str]:
        with self._storage.lock:
            return self._children(self._state(), parent)

    def descendants(self, roots: list[str]) -> list[tuple[str, str, int]]:
        with self._storage.lock:
            state = self._state()
            out: list[tuple[str, str, int]] = []
            level = [(k, r) for r in dict.fromkeys(roots) for k in self._children(state, r)]
            depth = 1
            while level and depth <= MAX_DEPTH:
                out.extend((k, p, depth) for k, p in sorted(level))
                level = [(c, k) for k, _ in level for c in self._children(state, k)]
                depth += 1
            return out

    def descendant_groups(
        self,
        tenant_id: str,
        root: str,
        all_levels: bool,
        after: tuple[int, str, str] | None,
        rows: int,
    ) -> list[ChildGroup]:
        with self._storage.lock:
            state = self._state()
            stored = state.units.get(root)
            if stored is None or stored.tenant_id != tenant_id:
                return []
            found: list[tuple[int, str, str, int, str, str | None]] = []
            frontier = [root]
            for depth in (1, 2, 3) if all_levels else (1,):
                below = []
                for parent in frontier:
                    for key in self._children(state, parent):
                        unit = state.units.get(key)
                        link = state.links[key]
                        found.append(
                            (
                                depth,
                                parent,
                                key,
                                int(link.level),
                                unit.state if unit else "",
                                unit.market if unit else None,
                            )
                        )
                        if link.level > Level.ITEM:
                            below.append(key)
                frontier = below
        start = after or (0, "", "")
        groups: dict[tuple[int, str], list[tuple[str, int, str, str | None]]] = {}
        for depth, parent, key, level, unit_state, market in sorted(found):
            if (depth, parent, key) > start:
                groups.setdefault((depth, parent), []).append((key, level, unit_state, market))
        out: list[ChildGroup] = []
        upto = 0
        for (depth, parent), members in sorted(groups.items()):
            upto += len(members)
            if upto - len(members) >= rows:
                break
            out.append(_group(depth, parent, members))
        return out

    def level_counts(self, root: str) -> tuple[dict[Level, int], int]:
        counts: dict[Level, int] = {}
        with self._storage.lock:
            state = self._state()
            direct = self._children(state, root)
            frontier, depth = direct, 1
            while frontier and depth <= MAX_DEPTH:
                for key in frontier:
                    level = state.links[key].level
                    counts[level] = counts.get(level, 0) + 1
                frontier = [c for k in frontier for c in self._children(state, k)]
                depth += 1
        return counts, len(direct)

    def add_links(
        self,
        tenant_id: str,
        parent: str,
        children: list[Unit],
        event_id: str,
        at: datetime,
        action: str = "packed",
    ) -> None:
        with self._storage.lock:
            links = self._writing().links
            for child in children:
                if child.key in links:
                    raise AlreadyExists(f"{child.key} is packed already")
            for child in children:
                links[child.key] = _Link(tenant_id, parent, child.level, event_id, at)
            self.record_history(tenant_id, [c.key for c in children], parent, action, event_id, at)

    def move_children(self, old_parent: str, new_parent: str) -> list[str]:
        with self._storage.lock:
            links = self._writing().links
            moved = self._children(self._writing(), old_parent)
            for key in moved:
                links[key] = replace(links[key], parent=new_parent)
            return moved

    def take_place(self, old_child: str, new_child: str, event_id: str, at: datetime) -> None:
        with self._storage.lock:
            links = self._writing().links
            link = links.get(old_child)
            if link is None:
                return
            if new_child in links:
                raise AlreadyExists(f"{new_child} is packed already")
            del links[old_child]
            links[new_child] = replace(link, event_id=event_id, packed_at=at)

    def remove_links(self, parent: str, children: list[str]) -> None:
        with self._storage.lock:
            links = self._writing().links
            for key in children:
                link = links.get(key)
                if link is not None and link.parent == parent:
                    del links[key]

    def record_history(
        self,
        tenant_id: str,
        keys: list[str],
        parent: str | None,
        action: str,
        event_id: str,
        at: datetime,
        attributes: dict[str, str] | None = None,
    ) -> None:
        with self._storage.lock:
            history = self._writing().history
            for key in keys:
                row_id = self._storage.next_history_id()
                entry = (row_id, parent, action, event_id, at, dict(attributes or {}))
                history.append((row_id, tenant_id, key, entry))

    def history(self, key: str, after_id: int, limit: int) -> list[HistoryEntry]:
        with self._storage.lock:
            rows = [e for _, _, k, e in self._state().history if k == key and e[0] > after_id]
        return [(i, p, a, ev, at, dict(attrs)) for i, p, a, ev, at, attrs in rows[:limit]]

    # -- rules --------------------------------------------------------------------------
    def rule(self, tenant_id: str, scope: str) -> Rule | None:
        with self._storage.lock:
            return self._state().rules.get((tenant_id, scope))

    def set_rule(self, tenant_id: str, scope: str, rule: Rule) -> None:
        with self._storage.lock:
            self._writing().rules[tenant_id, scope] = rule

    # -- decommissions ------------------------------------------------------------------
    def record_decommissions(
        self,
        tenant_id: str,
        units: list[Unit],
        state: str,
        event_id: str,
        token_id: str,
        at: datetime,
    ) -> None:
        with self._storage.lock:
            decisions = self._writing().decisions
            for unit in units:
                if (unit.key, event_id) in decisions:
                    raise AlreadyExists(f"{unit.key} was decommissioned in {event_id}")
            for unit in units:
                made = Decommission(unit.key, event_id, unit.state, state, token_id, at)
                decisions[unit.key, event_id] = _Decision(tenant_id, made)

    def open_decommission(self, key: str) -> Decommission | None:
        with self._storage.lock:
            open_ = [
                d.decommission
                for (k, _), d in self._state().decisions.items()
                if k == key and d.undone_at is None
            ]
        return max(open_, key=lambda d: d.decided_at, default=None)

    def decommission_members(self, event_id: str, keys: list[str]) -> list[Decommission]:
        with self._storage.lock:
            decisions = self._state().decisions
            found = [decisions.get((k, event_id)) for k in dict.fromkeys(keys)]
        return [d.decommission for d in found if d is not None and d.undone_at is None]

    def undo_decommissions(self, event_id: str, keys: list[str], at: datetime) -> None:
        with self._storage.lock:
            decisions = self._writing().decisions
            for key in keys:
                found = decisions.get((key, event_id))
                if found is not None:
                    decisions[key, event_id] = replace(found, undone_at=at)

    # -- internals ----------------------------------------------------------------------
    @staticmethod
    def _children(state: _State, parent: str) -> list[str]:
        return sorted(k for k, link in state.links.items() if link.parent == parent)

    @staticmethod
    def _chain(state: _State, key: str) -> list[str]:
        chain: list[str] = []
        link = state.links.get(key)
        while link is not None and len(chain) < MAX_DEPTH:
            chain.append(link.parent)
            link = state.links.get(link.parent)
        return chain


def _group(depth: int, parent: str, members: list[tuple[str, int, str, str | None]]) -> ChildGroup:
    """One parent's units at one depth, as PostgreSQL's grouping statement builds it."""
    levels = [m[1] for m in members]
    states = [m[2] for m in members]
    markets = [m[3] for m in members if m[3] is not None]
    uniform = (
        min(levels) == max(levels)
        and min(states) == max(states)
        and (not markets or (len(markets) == len(members) and min(markets) == max(markets)))
    )
    varying = None if uniform else tuple((lv, st, mk or None) for _, lv, st, mk in members)
    return ChildGroup(
        depth,
        parent,
        "\n".join(m[0] for m in members),
        len(members),
        min(levels),
        min(states),
        min(markets) if markets else None,
        varying,
    )


if TYPE_CHECKING:  # the fake keeps the port's signatures (checked by mypy, not at run time)
    _conforms: AggregationStorage = MemoryAggregationStorage()
