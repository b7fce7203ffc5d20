"""The Aggregator's storage ports. Docstrings are contracts that every adapter keeps; one suite
(``tests/contracts/aggregator_storage.py``) runs them on the in-memory fake
(:mod:`aggregator.memory`) and on PostgreSQL (:mod:`aggregator.postgres`).

A unit is a code (key ``gtin + serial``) or an SSCC (key ``"sscc:" + 18 digits``, see
:data:`sealmark.units.SSCC_PREFIX`). Adapters raise only :mod:`sealmark.errors`:
``AlreadyExists`` for a duplicate key, ``NotFound`` for a missing one, ``Aborted`` for a
serialization failure or deadlock (the whole transaction is lost: run it again),
``Unavailable`` when the database cannot be reached (a commit's outcome is then unknown).
Writes whose result no one reads (:meth:`AggregationStore.create_sscc`,
:meth:`~AggregationStore.add_links`, :meth:`~AggregationStore.append_event`) may be sent with
the transaction's next statement, so their error may be raised by that next call instead.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from aggregator.domain import ChildGroup, Level, SsccRange
from sealmark.events import NewEvent
from sealmark.tenancy.model import Tenant

T = TypeVar("T")

HistoryEntry = tuple[int, str | None, str, str, datetime, dict[str, str]]
"""(id, parent key or None, action, event id, event time, attributes) of a history row."""

StoredResult = tuple[str, str, dict[str, Any]]
"""(kind, fingerprint, result) stored under an event id."""


@dataclass(frozen=True)
class Unit:
    key: str
    state: str
    level: Level
    gtin: str  # empty for an SSCC
    lot: str
    market: str | None
    parent: str | None = None  # the unit it is packed in now
    held: bool = False  # its lot is on hold


@dataclass(frozen=True)
class Rule:
    capacity: int | None
    homogeneous: str  # none | gtin | lot


@dataclass(frozen=True)
class Decommission:
    unit_key: str
    event_id: str
    previous_state: str
    state: str
    token_id: str
    decided_at: datetime


class AggregationStore(Protocol):
    """The Aggregator's tables, seen from inside one transaction (or, from
    :meth:`AggregationStorage.reads`, one statement at a time)."""

    # -- tenants and events -------------------------------------------------------------
    def tenant(self, tenant_id: str) -> Tenant:
        """The tenant. Raises NotFound."""

    def append_event(self, event: NewEvent) -> None:
        """Append a domain event to the tenant's log, in this transaction: durable with its
        commit, gone with its rollback (or a savepoint's)."""

    # -- idempotency --------------------------------------------------------------------
    def stored_result(self, tenant_id: str, event_id: str) -> StoredResult | None:
        """The (kind, fingerprint, result) stored under the tenant's ``event_id``, or None."""

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
        """Keep the event's result (a JSON object); False, storing nothing, when one is
        stored under that id already (by this or another committed transaction)."""

    # -- locking ------------------------------------------------------------------------
    def lock(self, keys: list[str]) -> None:
        """Lock units by key until the transaction ends, in one order for every writer (so two
        writers never wait on each other in a cycle). A key need not be a stored unit."""

    def lock_chain(self, head: str, others: list[str]) -> list[str] | None:
        """Lock ``head``, ``others`` and the units above ``head``; return that chain of
        ancestors, nearest first (empty when ``head`` is packed in nothing), or None when it
        kept changing while being locked."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A block whose writes are rolled back alone when it raises (the transaction goes
        on); kept when it exits normally. On Unavailable nothing is rolled back (the
        connection is gone with the whole transaction)."""

    # -- units --------------------------------------------------------------------------
    def units(self, tenant_id: str, keys: list[str], *, lock: bool = False) -> dict[str, Unit]:
        """The tenant's units among ``keys`` by key (a code's level is its product's pack
        level), each with its parent and whether its lot is on hold; other tenants' units and
        unknown keys are left out. ``lock``: also lock the rows until the transaction ends."""

    def sscc_range(self, tenant_id: str, sscc: str) -> SsccRange | None:
        """The range allocated to the tenant that holds the 18-digit ``sscc``, if any."""

    def create_sscc(self, tenant_id: str, sscc: str, level: Level, at: datetime) -> Unit:
        """Register the 18-digit ``sscc`` as a commissioned unit of ``level`` with no market,
        and return it. Raises AlreadyExists (maybe on the next call) if it is registered."""

    def set_state(
        self, keys: list[str], state: str, at: datetime, market: str | None = None
    ) -> None:
        """Move the units of ``keys`` (any tenant's: the caller has checked them) to
        ``state``, and when ``market`` is given set it as their market; unknown keys are
        ignored."""

    # -- hierarchy ----------------------------------------------------------------------
    def owned_ancestors(self, tenant_id: str, key: str) -> list[str] | None:
        """The chain of parents of ``key``, nearest first (at most 16); None unless ``key``
        is one of the tenant's units."""

    def children(self, parent: str) -> list[str]:
        """The keys directly in ``parent``, in key order."""

    def descendants(self, roots: list[str]) -> list[tuple[str, str, int]]:
        """(key, parent, depth) of everything below ``roots`` (at most 16 deep), breadth
        first: by depth, then key."""

    def descendant_groups(
        self,
        tenant_id: str,
        root: str,
        all_levels: bool,
        after: tuple[int, str, str] | None,
        rows: int,
    ) -> list[ChildGroup]:
        """The units below ``root`` strictly after ``after`` in (depth, parent, key) order
        (keys compared by code point), as one group per parent and depth, in that order:
        groups until they hold at least ``rows`` units, or all there are. Direct children only
        unless ``all_levels`` (then three levels deep at most, never below an item). Each
        group's level, state and market are the common ones, with ``varying`` None, or
        ``varying`` holds (level, state, market) per key. Nothing unless ``root`` is one of
        the tenant's units."""

    def level_counts(self, root: str) -> tuple[dict[Level, int], int]:
        """How many units lie below ``root`` per level (levels with none left out), and how
        many of them directly."""

    def add_links(
        self,
        tenant_id: str,
        parent: str,
        children: list[Unit],
        event_id: str,
        at: datetime,
        action: str = "packed",
    ) -> None:
        """Put ``children`` into ``parent`` and add a history row (``action``, the parent)
        for each. Raises AlreadyExists (maybe on the next call) if one is packed already."""

    def move_children(self, old_parent: str, new_parent: str) -> list[str]:
        """Move everything directly in ``old_parent`` into ``new_parent``; return the keys
        moved, in no particular order."""

    def take_place(self, old_child: str, new_child: str, event_id: str, at: datetime) -> None:
        """``new_child`` takes ``old_child``'s place in its parent (``old_child`` leaves it)."""

    def remove_links(self, parent: str, children: list[str]) -> None:
        """Take ``children`` out of ``parent``; keys not in it are ignored."""

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
        """Add one history row per key, in order, with ids above every earlier row's."""

    def history(self, key: str, after_id: int, limit: int) -> list[HistoryEntry]:
        """The unit's history rows with id > ``after_id``, oldest first, at most ``limit``."""

    # -- rules --------------------------------------------------------------------------
    def rule(self, tenant_id: str, scope: str) -> Rule | None:
        """The tenant's packing rule of ``scope`` (a GTIN, or ``sscc-<level>``), or None."""

    def set_rule(self, tenant_id: str, scope: str, rule: Rule) -> None:
        """Set (or replace) the tenant's packing rule of ``scope``."""

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
        """Record that ``units`` went from their current state to ``state`` in ``event_id``.
        Raises AlreadyExists if one was recorded for a unit under that event id."""

    def open_decommission(self, key: str) -> Decommission | None:
        """The unit's latest decommission not undone (by ``decided_at``), if any."""

    def decommission_members(self, event_id: str, keys: list[str]) -> list[Decommission]:
        """The decommissions of ``event_id`` among ``keys`` not undone, in no particular
        order."""

    def undo_decommissions(self, event_id: str, keys: list[str], at: datetime) -> None:
        """Mark the decommissions of ``event_id`` of ``keys`` undone at ``at``."""


class AggregationStorage(Protocol):
    """Opens the stores. A use case never sees a connection: it reads through :meth:`reads`,
    writes in :meth:`transaction` and repeats a lost transaction through :meth:`retrying`."""

    def reads(self) -> AbstractContextManager[AggregationStore]:
        """A store for reads only: each call sees what is committed when it runs (no
        snapshot across calls); nothing is written through it, nothing is locked."""

    def transaction(self) -> AbstractContextManager[AggregationStore]:
        """One transaction: committed when the block exits normally, rolled back when it
        raises. Raises Aborted (at any call or at the commit) when it lost a conflict with a
        concurrent one, Unavailable when the database is gone."""

    def retrying(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` and, when it raises a retryable error (Aborted, Unavailable), call it
        again after a short backoff, a few times at most; the last error propagates. ``fn``
        opens its own transaction and keeps no state between calls."""
