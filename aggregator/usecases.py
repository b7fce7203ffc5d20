"""The Aggregator: pack and unpack at line speed, logistics on whole hierarchies, and the
queries that shipping, recall and diversion checks follow.

Every write is one transaction, idempotent by its event id (the result is stored with a
fingerprint of the request; a resend returns it, a different request under the same id is
ALREADY_EXISTS). Writers take transaction-scoped advisory locks on every unit they read the
hierarchy of (the parent, its ancestors and the children), all in one sorted statement, so two
conflicting packs of one child serialise and exactly one wins, and two packs that would close a
cycle between them cannot both pass their cycle check.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime

from aggregator.domain import (
    DECOMMISSION_STATES,
    MAX_CHILDREN,
    MAX_LOGISTICS,
    REPLACEABLE,
    SHIPPABLE,
    ChildGroup,
    Level,
    SsccRange,
    check_event_id,
    check_offset,
    check_packable,
    check_undo,
    distinct_units,
    event_time,
    parent_level,
)
from aggregator.storage import AggregationStore, Rule, Unit
from sealmark.clock import Clock
from sealmark.epcis.recorded import business_event_id
from sealmark.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from sealmark.events import NewEvent
from sealmark.lifecycle import CodeState, check_transition
from sealmark.storage.postgres import PostgresDatabase, PostgresUnitOfWork, retrying
from sealmark.tenancy.model import Principal, Role, Tenant, validate_market
from sealmark.units import UnitRef

MAX_PAGE = 1000
TENANT_TTL_S = 5.0
RANGES_KEPT = 64
DEFAULT_PAGE = 500


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


@dataclass(frozen=True)
class Outcome:
    event_id: str
    duplicate: bool
    affected: int
    recorded_at: datetime
    epcis_event_id: str = ""  # the eventID of this event in every EPCIS export


EXPLODE_BATCH_ROWS = 10_000  # rows fetched per statement while streaming children


@dataclass(frozen=True)
class HistoryRow:
    event_id: str
    action: str
    parent: UnitRef | None
    event_time: datetime
    attributes: dict[str, str] = field(default_factory=dict)


class Aggregator:
    def __init__(self, database: PostgresDatabase, clock: Clock) -> None:
        self._db = database
        self._clock = clock
        self._tenants: dict[str, tuple[float, Tenant]] = {}
        self._local = threading.local()  # the shared unit of work of a batch()
        self._rules: dict[tuple[str, str], tuple[float, Rule | None]] = {}
        # Per tenant, the SSCC ranges that registered a pack lately, newest first: a line
        # packs into its allocation's SSCCs one after another.
        self._ranges: dict[str, list[SsccRange]] = {}

    # -- pack / unpack ------------------------------------------------------------------
    def pack(
        self,
        principal: Principal,
        event_id: str,
        parent: UnitRef,
        children: list[UnitRef],
        where: Where = Where(),
        level: Level | None = None,
        line_id: str = "",
    ) -> Outcome:
        """Put ``children`` into ``parent`` (adding to what it holds)."""
        name = "PackRequest"
        self._check_packing(principal, name, event_id, where, parent, children, 1)
        _check_text(line_id, f"{name}.line_id", 64)

        def apply(store: AggregationStore, now: datetime) -> tuple[int, dict[str, object]]:
            when = event_time(where.event_time, now, f"{name}.event_time")
            box, new = self._admit(store, principal.tenant_id, parent, children, level, now, name)
            self._check_rule(store, principal.tenant_id, parent, box, new)
            store.add_links(principal.tenant_id, parent.key, new, event_id, when)
            return len(new), {
                "parent": parent.key,
                "parent_level": box.level.label,
                "children": [u.key for u in new],
                "line_id": line_id,
                "event_time": when.isoformat(),
                **_where(where),
            }

        return self._write(
            principal,
            "aggregation.packed",
            event_id,
            _fingerprint(parent, children, where, level, line_id),
            parent.key,
            apply,
        )

    def unpack(
        self,
        principal: Principal,
        event_id: str,
        parent: UnitRef,
        children: list[UnitRef],
        where: Where = Where(),
        line_id: str = "",
    ) -> Outcome:
        """Take ``children`` out of ``parent``; none given = everything it holds."""
        name = "UnpackRequest"
        self._check_packing(principal, name, event_id, where, parent, children, 0)

        def apply(store: AggregationStore, now: datetime) -> tuple[int, dict[str, object]]:
            when = event_time(where.event_time, now, f"{name}.event_time")
            self._lock_with_ancestors(store, parent.key, [c.key for c in children])
            if not store.units(principal.tenant_id, [parent.key]):
                raise NotFound(f"{name}.parent: {parent} was not issued to you")
            inside = store.children(parent.key)
            if children:
                held = set(inside)
                for child in children:
                    if child.key not in held:
                        raise FailedPrecondition(f"{child} is not in {parent}")
                keys = [c.key for c in children]
            else:
                keys = inside
            store.remove_links(parent.key, keys)
            store.record_history(principal.tenant_id, keys, parent.key, "unpacked", event_id, when)
            return len(keys), {
                "parent": parent.key,
                "children": keys,
                "all": not children,
                "line_id": line_id,
                "event_time": when.isoformat(),
                **_where(where),
            }

        return self._write(
            principal,
            "aggregation.unpacked",
            event_id,
            _fingerprint(parent, children, where, line_id),
            parent.key,
            apply,
        )

    def replace(
        self,
        principal: Principal,
        event_id: str,
        old: UnitRef,
        new: UnitRef,
        reason: str = "",
        where: Where = Where(),
    ) -> Outcome:
        """A new label for a damaged one: ``new`` takes ``old``'s place (same parent, same
        children, same logistics state and market); ``old`` becomes scrapped. ``new`` is an
        allocated or commissioned code of the same GTIN (an SSCC for an SSCC), free and empty."""
        principal.require(Role.LINE)
        name = "ReplaceRequest"
        check_event_id(event_id, f"{name}.event_id")
        where.check(name)
        _check_text(reason, f"{name}.reason", 500)
        if old.key == new.key:
            raise InvalidArgument(f"{name}.new_code", "is the old code itself")
        if old.is_sscc != new.is_sscc or (not old.is_sscc and old.gtin != new.gtin):
            raise InvalidArgument(
                f"{name}.new_code", f"{new} cannot replace {old}: want the same GTIN (or an SSCC)"
            )
        self._owned(principal, [old, new], name)

        def apply(store: AggregationStore, now: datetime) -> tuple[int, dict[str, object]]:
            when = event_time(where.event_time, now, f"{name}.event_time")
            chain = self._lock_with_ancestors(store, old.key, [new.key])
            units = store.units(principal.tenant_id, [old.key, new.key], lock=True)
            if old.key not in units:
                raise NotFound(f"{name}.old_code: {old} was not issued to you")
            gone = units[old.key]
            if CodeState(gone.state) not in REPLACEABLE:
                raise FailedPrecondition(f"{old} is {gone.state}: it cannot be replaced")
            fresh = units.get(new.key)
            if fresh is None and new.is_sscc:
                fresh = self._register_sscc(store, principal.tenant_id, new.sscc, gone.level, now)
            if fresh is None:
                raise NotFound(f"{name}.new_code: {new} was not issued to you")
            if fresh.state not in (CodeState.ALLOCATED.value, CodeState.COMMISSIONED.value):
                raise FailedPrecondition(f"{new} is {fresh.state}: a replacement must be unused")
            if fresh.parent is not None or store.children(new.key):
                raise FailedPrecondition(f"{new} is packed or holds units: it must be free")
            if fresh.level != gone.level:
                raise FailedPrecondition(
                    f"{new} is a {fresh.level.label}, {old} a {gone.level.label}"
                )
            if fresh.held:
                raise FailedPrecondition(f"lot {fresh.lot} of GTIN {fresh.gtin} is on hold")
            store.lock(store.children(old.key))
            moved = store.move_children(old.key, new.key)
            if gone.parent is not None:
                store.take_place(old.key, new.key, event_id, when)
            store.set_state([new.key], gone.state, now, gone.market)
            store.set_state([old.key], CodeState.SCRAPPED.value, now)
            up = gone.parent
            store.record_history(
                principal.tenant_id,
                [old.key],
                up,
                "replaced",
                event_id,
                when,
                {"replaced_by": new.key, "reason": reason},
            )
            store.record_history(
                principal.tenant_id,
                [new.key],
                up,
                "replaced",
                event_id,
                when,
                {"replaces": old.key, "reason": reason},
            )
            if moved:
                store.record_history(
                    principal.tenant_id,
                    moved,
                    new.key,
                    "replaced",
                    event_id,
                    when,
                    {"from": old.key},
                )
            return 2 + len(moved), {
                "old": old.key,
                "new": new.key,
                "parent": up,
                "ancestors": chain,
                "children": moved,
                "state": gone.state,
                "reason": reason,
                "event_time": when.isoformat(),
                **_where(where),
            }

        fingerprint = _fingerprint(old, new, reason, where)
        return self._write(principal, "aggregation.replaced", event_id, fingerprint, old.key, apply)

    def sample(
        self,
        principal: Principal,
        event_id: str,
        code: UnitRef,
        reason: str = "",
        where: Where = Where(),
    ) -> Outcome:
        """Take a unit out for QA: unpacked from its parent in the same event, state sampled
        (a decommission, so it can be undone within the window)."""
        principal.require(Role.LINE)
        name = "SampleRequest"
        check_event_id(event_id, f"{name}.event_id")
        where.check(name)
        _check_text(reason, f"{name}.reason", 500)
        self._owned(principal, [code], name)

        def apply(store: AggregationStore, now: datetime) -> tuple[int, dict[str, object]]:
            when = event_time(where.event_time, now, f"{name}.event_time")
            self._lock_with_ancestors(store, code.key, [])
            unit = store.units(principal.tenant_id, [code.key], lock=True).get(code.key)
            if unit is None:
                raise NotFound(f"{name}.code: {code} was not issued to you")
            if store.children(code.key):
                raise FailedPrecondition(f"{code} holds units: unpack it before sampling it")
            check_transition(str(code), CodeState(unit.state), CodeState.SAMPLED)
            if unit.parent is not None:
                store.remove_links(unit.parent, [code.key])
            store.record_history(
                principal.tenant_id,
                [code.key],
                unit.parent,
                "sampled",
                event_id,
                when,
                {"reason": reason},
            )
            store.record_decommissions(
                principal.tenant_id,
                [unit],
                CodeState.SAMPLED.value,
                event_id,
                principal.token_id,
                now,
            )
            store.set_state([code.key], CodeState.SAMPLED.value, now)
            return 1, {
                "code": code.key,
                "parent": unit.parent,
                "reason": reason,
                "event_time": when.isoformat(),
                **_where(where),
            }

        fingerprint = _fingerprint(code, reason, where)
        return self._write(principal, "aggregation.sampled", event_id, fingerprint, code.key, apply)

    def rework(
        self,
        principal: Principal,
        event_id: str,
        parent: UnitRef,
        children: list[UnitRef],
        reason: str = "",
        where: Where = Where(),
    ) -> Outcome:
        """The parent's whole content becomes ``children``, as one event (unpack all, pack)."""
        name = "ReworkRequest"
        self._check_packing(principal, name, event_id, where, parent, children, 0)
        _check_text(reason, f"{name}.reason", 500)

        def apply(store: AggregationStore, now: datetime) -> tuple[int, dict[str, object]]:
            when = event_time(where.event_time, now, f"{name}.event_time")
            if not store.units(principal.tenant_id, [parent.key]):
                raise NotFound(f"{name}.parent: {parent} was not issued to you")
            box, new = self._admit(store, principal.tenant_id, parent, children, None, now, name)
            before = store.children(parent.key)  # the parent is locked by now
            wanted = {c.key for c in children}
            leaving = [k for k in before if k not in wanted]
            staying = [k for k in before if k in wanted]
            self._check_rule(store, principal.tenant_id, parent, box, new, staying)
            store.lock(leaving)
            store.remove_links(parent.key, leaving)
            store.record_history(
                principal.tenant_id,
                leaving,
                parent.key,
                "reworked",
                event_id,
                when,
                {"direction": "out", "reason": reason},
            )
            store.add_links(
                principal.tenant_id,
                parent.key,
                new,
                event_id,
                when,
                "reworked",
            )
            return len(leaving) + len(new), {
                "parent": parent.key,
                "removed": leaving,
                "added": [u.key for u in new],
                "content": [c.key for c in children],
                "reason": reason,
                "event_time": when.isoformat(),
                **_where(where),
            }

        fingerprint = _fingerprint(parent, children, reason, where)
        return self._write(
            principal, "aggregation.reworked", event_id, fingerprint, parent.key, apply
        )

    # -- logistics ----------------------------------------------------------------------
    def ship(
        self,
        principal: Principal,
        event_id: str,
        codes: list[UnitRef],
        to_party: str,
        market: str,
        where: Where = Where(),
        biz_transactions: list[tuple[str, str]] | None = None,
    ) -> Outcome:
        """Every unit and all it contains goes in_transit, to ``market``."""
        principal.require(Role.LOGISTICS)
        name = "ShipRequest"
        self._check_logistics(principal, event_id, codes, where, name)
        if not to_party.strip() or len(to_party) > 128:
            raise InvalidArgument(f"{name}.to_party", "required, at most 128 characters")
        validate_market(market, f"{name}.destination_market")
        transactions = _biz_transactions(biz_transactions or [], name)

        def apply(store: AggregationStore, now: datetime) -> tuple[int, dict[str, object]]:
            when = event_time(where.event_time, now, f"{name}.event_time")
            units = self._hierarchies(store, principal.tenant_id, codes, name)
            for unit in units:
                if CodeState(unit.state) not in SHIPPABLE:
                    raise FailedPrecondition(
                        f"{UnitRef.of_key(unit.key)} is {unit.state}: cannot be shipped"
                    )
            self._check_holds(store, principal.tenant_id, units, "shipped", expand=False)
            store.set_state([u.key for u in units], CodeState.IN_TRANSIT.value, now, market)
            return len(units), _payload(
                codes,
                len(units),
                when,
                where,
                to_party=to_party,
                destination_market=market,
                biz_transactions=transactions,
            )

        fingerprint = _fingerprint(codes, to_party, market, where, transactions)
        return self._write(principal, "logistics.shipped", event_id, fingerprint, "", apply)

    def receive(
        self,
        principal: Principal,
        event_id: str,
        codes: list[UnitRef],
        from_party: str,
        where: Where = Where(),
        biz_transactions: list[tuple[str, str]] | None = None,
    ) -> Outcome:
        """Shipped units, and all they contain, are received."""
        principal.require(Role.LOGISTICS)
        name = "ReceiveRequest"
        self._check_logistics(principal, event_id, codes, where, name)
        if len(from_party) > 128:
            raise InvalidArgument(f"{name}.from_party", "at most 128 characters")
        transactions = _biz_transactions(biz_transactions or [], name)

        def apply(store: AggregationStore, now: datetime) -> tuple[int, dict[str, object]]:
            when = event_time(where.event_time, now, f"{name}.event_time")
            units = self._hierarchies(store, principal.tenant_id, codes, name)
            for unit in units:
                if unit.state != CodeState.IN_TRANSIT.value:
                    raise FailedPrecondition(
                        f"{UnitRef.of_key(unit.key)} is {unit.state}: only shipped units"
                        " can be received"
                    )
            store.set_state([u.key for u in units], CodeState.RECEIVED.value, now)
            return len(units), _payload(
                codes, len(units), when, where, from_party=from_party, biz_transactions=transactions
            )

        fingerprint = _fingerprint(codes, from_party, where, transactions)
        return self._write(principal, "logistics.received", event_id, fingerprint, "", apply)

    def decommission(
        self,
        principal: Principal,
        event_id: str,
        codes: list[UnitRef],
        reason: str,
        where: Where = Where(),
        note: str = "",
    ) -> Outcome:
        """Take units, and all they contain, out of the supply chain (``reason`` is one of
        :data:`aggregator.domain.DECOMMISSION_STATES`)."""
        principal.require(Role.LOGISTICS)
        name = "DecommissionRequest"
        self._check_logistics(principal, event_id, codes, where, name)
        if reason not in DECOMMISSION_STATES:
            raise InvalidArgument(
                f"{name}.reason", f"required: one of {', '.join(DECOMMISSION_STATES)}"
            )
        _check_text(note, f"{name}.note", 500)
        target = DECOMMISSION_STATES[reason]

        def apply(store: AggregationStore, now: datetime) -> tuple[int, dict[str, object]]:
            when = event_time(where.event_time, now, f"{name}.event_time")
            units = self._hierarchies(store, principal.tenant_id, codes, name)
            for unit in units:
                check_transition(str(UnitRef.of_key(unit.key)), CodeState(unit.state), target)
            store.record_decommissions(
                principal.tenant_id, units, target.value, event_id, principal.token_id, now
            )
            store.set_state([u.key for u in units], target.value, now)
            return len(units), _payload(
                codes, len(units), when, where, reason=reason, state=target.value, note=note
            )

        fingerprint = _fingerprint(codes, reason, where, note)
        return self._write(principal, "logistics.decommissioned", event_id, fingerprint, "", apply)

    def undo_decommission(
        self,
        principal: Principal,
        event_id: str,
        codes: list[UnitRef],
        where: Where = Where(),
        note: str = "",
    ) -> Outcome:
        """Revert each unit's latest decommission (and its descendants'): within 10 days, by
        the same party, never from recalled, expired, destroyed or stolen."""
        principal.require(Role.LOGISTICS)
        name = "UndoDecommissionRequest"
        self._check_logistics(principal, event_id, codes, where, name)
        _check_text(note, f"{name}.note", 500)

        def apply(store: AggregationStore, now: datetime) -> tuple[int, dict[str, object]]:
            when = event_time(where.event_time, now, f"{name}.event_time")
            units = {u.key: u for u in self._hierarchies(store, principal.tenant_id, codes, name)}
            restored = 0
            returned_to: set[str] = set()
            for code in codes:
                latest = store.open_decommission(code.key)
                if latest is None:
                    raise FailedPrecondition(f"{code} has no decommission to undo")
                check_undo(
                    code,
                    units[code.key].state,
                    latest.state,
                    latest.decided_at,
                    latest.token_id,
                    principal.token_id,
                    now,
                )
                below = [k for k, _, _ in store.descendants([code.key])]
                members = store.decommission_members(latest.event_id, [code.key, *below])
                by_state: dict[str, list[str]] = {}
                for member in members:
                    if units[member.unit_key].state == member.state:  # untouched since
                        by_state.setdefault(member.previous_state, []).append(member.unit_key)
                        if member.unit_key == code.key:
                            returned_to.add(member.previous_state)
                for state, keys in by_state.items():
                    store.set_state(keys, state, now)
                    restored += len(keys)
                store.undo_decommissions(
                    latest.event_id, [k for keys in by_state.values() for k in keys], now
                )
            # The state the named units return to, when it is one for all (EPCIS disposition).
            back = returned_to.pop() if len(returned_to) == 1 else ""
            return restored, _payload(codes, restored, when, where, note=note, restored_state=back)

        fingerprint = _fingerprint(codes, where, note)
        return self._write(
            principal, "logistics.decommission_undone", event_id, fingerprint, "", apply
        )

    # -- rules --------------------------------------------------------------------------
    def set_rule(self, tenant_id: str, scope: str, capacity: int | None, homogeneous: str) -> Rule:
        """Packing rule for a parent GTIN, or for SSCC parents of one level
        (``sscc-bundle`` / ``sscc-case`` / ``sscc-pallet``)."""
        if scope not in ("sscc-bundle", "sscc-case", "sscc-pallet") and not (
            len(scope) == 14 and scope.isdigit()
        ):
            raise InvalidArgument("scope", "a GTIN-14, or sscc-bundle / sscc-case / sscc-pallet")
        if capacity is not None and not 1 <= capacity <= 100_000:
            raise InvalidArgument("capacity", f"{capacity}, want 1..100000")
        if homogeneous not in ("none", "gtin", "lot"):
            raise InvalidArgument("homogeneous", "one of none, gtin, lot")
        rule = Rule(capacity, homogeneous)
        with self._db.unit_of_work() as uow:
            uow.tenants.get(tenant_id)
            AggregationStore(uow).set_rule(tenant_id, scope, rule)
            uow.commit()
        self._rules[tenant_id, scope] = (time.monotonic(), rule)
        return rule

    # -- queries ------------------------------------------------------------------------
    def children(
        self,
        principal: Principal,
        parent: UnitRef,
        all_levels: bool,
        page_size: int = 0,
        page_token: str = "",
    ) -> Iterator[tuple[list[ChildGroup], str]]:
        """Pages of the units under ``parent`` now, breadth first (by depth, then parent, then
        key), each with the token that resumes after it (empty on the last page). A page is
        ``page_size`` units in groups of one parent (a group cut at a page's end goes on in
        the next)."""
        self._owned(principal, [parent], "ListChildrenRequest")
        size = _page_size(page_size, "ListChildrenRequest.page.page_size")
        after = _child_token(page_token)
        per_fetch = size * max(1, EXPLODE_BATCH_ROWS // size)
        first, sent = True, False
        while True:
            with self._db.reads() as uow:
                store = AggregationStore(uow)
                groups = store.descendant_groups(
                    principal.tenant_id, parent.key, all_levels, after, per_fetch + 1
                )
                # Nothing back: an empty parent, or not one of the tenant's units at all.
                if first and not groups and not store.units(principal.tenant_id, [parent.key]):
                    raise NotFound(f"ListChildrenRequest.parent: {parent} was not issued to you")
            first = False
            fetched = sum(g.count for g in groups)
            more = fetched > per_fetch
            left = min(fetched, per_fetch)  # units of this fetch still to send
            pending = deque(groups)
            page: list[ChildGroup] = []
            room = size
            while left:
                group = pending.popleft()
                if group.count > min(room, left):
                    group, rest = group.split(min(room, left))
                    pending.appendleft(rest)
                page.append(group)
                room -= group.count
                left -= group.count
                if not room or not left:
                    after = (group.depth, group.parent, group.last_key)
                    last = not more and not left
                    yield page, "" if last else _child_token_of(after)
                    page, room, sent = [], size, True
            if not sent:  # nothing at all (or nothing after the token): one empty page
                yield [], ""
            if not more:
                return

    def counts(self, principal: Principal, parent: UnitRef) -> tuple[dict[Level, int], int]:
        self._owned(principal, [parent], "GetCountsRequest")
        with self._db.reads() as uow:
            store = AggregationStore(uow)
            if not store.units(principal.tenant_id, [parent.key]):
                raise NotFound(f"GetCountsRequest.parent: {parent} was not issued to you")
            return store.level_counts(parent.key)

    def ancestors(self, principal: Principal, code: UnitRef) -> list[UnitRef]:
        """The parent chain of ``code`` now, nearest first (the last is the top parent)."""
        self._owned(principal, [code], "GetAncestorsRequest")
        with self._db.reads() as uow:
            chain = AggregationStore(uow).owned_ancestors(principal.tenant_id, code.key)
        if chain is None:
            raise NotFound(f"GetAncestorsRequest.code: {code} was not issued to you")
        return [UnitRef.of_key(k) for k in chain]

    def history(
        self, principal: Principal, code: UnitRef, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[HistoryRow], str]:
        self._owned(principal, [code], "GetContainmentHistoryRequest")
        size = _page_size(page_size, "GetContainmentHistoryRequest.page.page_size")
        try:
            after = int(page_token) if page_token else 0
        except ValueError:
            raise InvalidArgument(
                "GetContainmentHistoryRequest.page.page_token", "not a token this server gave"
            ) from None
        with self._db.reads() as uow:
            store = AggregationStore(uow)
            if not store.units(principal.tenant_id, [code.key]):
                raise NotFound(f"GetContainmentHistoryRequest.code: {code} was not issued to you")
            rows = store.history(code.key, after, size + 1)
        page = rows[:size]
        token = str(page[-1][0]) if len(rows) > size else ""
        return [
            HistoryRow(event, action, UnitRef.of_key(up) if up else None, at, attrs)
            for _, up, action, event, at, attrs in page
        ], token

    # -- internals ----------------------------------------------------------------------
    def _write(
        self,
        principal: Principal,
        kind: str,
        event_id: str,
        fingerprint: str,
        subject: str,
        apply: Callable[[AggregationStore, datetime], tuple[int, dict[str, object]]],
    ) -> Outcome:
        def body(uow: PostgresUnitOfWork) -> Outcome:
            store = AggregationStore(uow)
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
                uow.events.append_later(
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

        shared: PostgresUnitOfWork | None = getattr(self._local, "uow", None)
        if shared is not None:
            return _in_savepoint(shared, body)

        def attempt() -> Outcome:
            with self._db.unit_of_work() as uow:
                outcome = body(uow)
                uow.commit()
                return outcome

        def once_more_if_raced() -> Outcome:
            try:
                return attempt()
            except _Raced:
                return attempt()

        return retrying(once_more_if_raced)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: the writes made in this block, on this thread, share one transaction,
        each under its own savepoint (a failed one is rolled back alone and raises as usual).
        It commits when the block exits; nothing of it is durable before. A retryable error
        (deadlock, serialization) inside raises :class:`BatchInterrupted`: the caller commits
        what came before by leaving the block and runs the rest one by one."""
        with self._db.unit_of_work() as uow:
            self._local.uow = uow
            try:
                yield
            finally:
                self._local.uow = None
            uow.commit()

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
        with self._db.reads() as uow:
            tenant = uow.tenants.get(tenant_id)
        self._tenants[tenant_id] = (time.monotonic(), tenant)
        return tenant

    def _admit(
        self,
        store: AggregationStore,
        tenant_id: str,
        parent: UnitRef,
        children: list[UnitRef],
        level: Level | None,
        now: datetime,
        name: str,
    ) -> tuple[Unit, list[Unit]]:
        """Lock and check a pack of ``children`` into ``parent``: the parent (an SSCC is
        registered on first use), no cycle, every child issued to the tenant, packable, free
        (or in this very parent already), of a lower level, no lot on hold.
        Returns the parent and the children to link."""
        ancestors = set(self._lock_with_ancestors(store, parent.key, [c.key for c in children]))
        for child in children:
            if child.key in ancestors:
                raise FailedPrecondition(
                    f"{child} contains {parent}: packing it inside would make a cycle"
                )
        units = store.units(tenant_id, [parent.key, *(c.key for c in children)], lock=True)
        found = units.pop(parent.key, None)
        for child in children:
            if child.key not in units:
                raise NotFound(f"{name}.children: {child} was not issued to you")
        box = self._parent_unit(store, tenant_id, parent, found, level, units, now)
        check_packable(parent, box.state, "parent")
        new: list[Unit] = []
        for child in children:
            unit = units[child.key]
            if unit.parent == parent.key:
                continue  # already in this very parent: not an error
            if unit.parent is not None:
                raise FailedPrecondition(
                    f"{child} is already packed in {UnitRef.of_key(unit.parent)}"
                )
            check_packable(child, unit.state, "child")
            if unit.level >= box.level:
                raise FailedPrecondition(
                    f"{child} is a {unit.level.label}: it cannot go into {parent}, "
                    f"a {box.level.label}"
                )
            new.append(unit)
        self._check_holds(store, tenant_id, new, "packed")
        return box, new

    def _lock_with_ancestors(
        self, store: AggregationStore, parent: str, others: list[str]
    ) -> list[str]:
        """Lock the parent, the others and the parent's ancestors; return the ancestors."""
        chain = store.lock_chain(parent, others)
        if chain is None:
            raise FailedPrecondition(f"the hierarchy above {UnitRef.of_key(parent)} keeps changing")
        return chain

    def _parent_unit(
        self,
        store: AggregationStore,
        tenant_id: str,
        parent: UnitRef,
        found: Unit | None,
        requested: Level | None,
        children: dict[str, Unit],
        now: datetime,
    ) -> Unit:
        """The parent as stored (``found``, locked), or registered now if it is an SSCC
        allocated to the tenant; its level checked against the children's."""
        levels = [u.level for u in children.values()]
        if found is not None:
            parent_level(parent, requested, found.level, found.level, levels)
            return found
        if not parent.is_sscc:
            raise NotFound(f"PackRequest.parent: {parent} was not issued to you")
        level = parent_level(parent, requested, None, None, levels)
        created = self._register_sscc(store, tenant_id, parent.sscc, level, now)
        if created is None:
            raise NotFound(
                f"PackRequest.parent: SSCC {parent.sscc} was not allocated to you (AllocateSsccs)"
            )
        return created

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

    def _check_rule(
        self,
        store: AggregationStore,
        tenant_id: str,
        parent: UnitRef,
        box: Unit,
        new: list[Unit],
        staying: list[str] | None = None,
    ) -> None:
        """The parent's packing rule over what it will hold: ``staying`` (default: all it
        holds now) and ``new``."""
        if not new:
            return
        scope = f"sscc-{box.level.label}" if parent.is_sscc else box.gtin
        rule = self._rule(store, tenant_id, scope)
        if rule is None:
            return
        existing = store.children(parent.key) if staying is None else staying
        if rule.capacity is not None and len(existing) + len(new) > rule.capacity:
            raise FailedPrecondition(
                f"{parent} is full: it holds {len(existing)}, {len(new)} more would pass its"
                f" capacity of {rule.capacity}"
            )
        if rule.homogeneous != "none":
            units = [*store.units(tenant_id, existing).values(), *new]
            kinds = {(u.gtin, u.lot) if rule.homogeneous == "lot" else u.gtin for u in units}
            if len(kinds) > 1:
                raise FailedPrecondition(
                    f"{parent} takes one {rule.homogeneous} only: these children would mix"
                    f" {len(kinds)}"
                )

    def _check_packing(
        self,
        principal: Principal,
        name: str,
        event_id: str,
        where: Where,
        parent: UnitRef,
        children: list[UnitRef],
        fewest: int,
    ) -> None:
        """What every line event on a parent and its children must satisfy before any read."""
        principal.require(Role.LINE)
        check_event_id(event_id, f"{name}.event_id")
        distinct_units(children, f"{name}.children", fewest, MAX_CHILDREN)
        where.check(name)
        if parent.key in {c.key for c in children}:
            raise InvalidArgument(f"{name}.children", f"{parent} cannot be packed into itself")
        self._owned(principal, [parent, *children], name)

    def _rule(self, store: AggregationStore, tenant_id: str, scope: str) -> Rule | None:
        """The packing rule of ``scope``, cached like the tenant (rules change rarely and are
        read on every pack; a change applies everywhere within TENANT_TTL_S)."""
        cached = self._rules.get((tenant_id, scope))
        if cached is not None and time.monotonic() - cached[0] < TENANT_TTL_S:
            return cached[1]
        rule = store.rule(tenant_id, scope)
        self._rules[tenant_id, scope] = (time.monotonic(), rule)
        return rule

    def _check_logistics(
        self,
        principal: Principal,
        event_id: str,
        codes: list[UnitRef],
        where: Where,
        name: str,
    ) -> None:
        check_event_id(event_id, f"{name}.event_id")
        distinct_units(codes, f"{name}.codes", 1, MAX_LOGISTICS)
        where.check(name)
        self._owned(principal, codes, name)

    def _hierarchies(
        self, store: AggregationStore, tenant_id: str, roots: list[UnitRef], name: str
    ) -> list[Unit]:
        """The roots and everything they contain, locked (roots first)."""
        store.lock([r.key for r in roots])
        below = [k for k, _, _ in store.descendants([r.key for r in roots])]
        keys = list(dict.fromkeys([*(r.key for r in roots), *below]))
        units = store.units(tenant_id, keys, lock=True)
        for root in roots:
            if root.key not in units:
                raise NotFound(f"{name}.codes: {root} was not issued to you")
        return [units[k] for k in keys if k in units]


class _Raced(Exception):
    """Another transaction stored a result under the same event id first."""


class BatchInterrupted(Exception):
    """A write in :meth:`Aggregator.batch` met a retryable error and was rolled back; the
    writes before it stand. Run it (and the ones after it) outside the batch."""


def _in_savepoint(
    uow: PostgresUnitOfWork, body: Callable[[PostgresUnitOfWork], Outcome]
) -> Outcome:
    """Run ``body`` in ``uow`` under a savepoint: on failure roll back just it. SAVEPOINT and
    RELEASE are deferred: they travel with the body's first statement and the next event's
    (or the commit), instead of costing two round trips of their own."""
    for attempt in (1, 2):
        uow.defer("SAVEPOINT aggregation_event")
        try:
            outcome = body(uow)
        except _Raced:
            uow.execute("ROLLBACK TO SAVEPOINT aggregation_event")
            if attempt == 2:
                raise BatchInterrupted from None
            continue  # the other writer's result is visible now: answer from it
        except (Aborted, Unavailable) as exc:
            if isinstance(exc, Unavailable):
                raise
            uow.execute("ROLLBACK TO SAVEPOINT aggregation_event")
            raise BatchInterrupted from exc
        except BaseException:
            uow.execute("ROLLBACK TO SAVEPOINT aggregation_event")
            raise
        uow.defer("RELEASE SAVEPOINT aggregation_event")
        return outcome
    raise AssertionError("unreachable")


def _fingerprint(*parts: object) -> str:
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


def _payload(
    codes: list[UnitRef], affected: int, when: datetime, where: Where, **facts: object
) -> dict[str, object]:
    """The domain event payload of a logistics write."""
    return {
        "codes": [c.key for c in codes],
        "affected": affected,
        **facts,
        "event_time": when.isoformat(),
        **_where(where),
    }


def _where(where: Where) -> dict[str, object]:
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


def _biz_transactions(items: list[tuple[str, str]], name: str) -> list[list[str]]:
    if len(items) > 20:
        raise InvalidArgument(f"{name}.biz_transactions", "at most 20")
    out = []
    for kind, ident in items:
        if not kind or len(kind) > 64 or not ident or len(ident) > 128:
            raise InvalidArgument(
                f"{name}.biz_transactions", "each needs a type (≤ 64) and an id (≤ 128)"
            )
        out.append([kind, ident])
    return out


def _check_text(value: str, name: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(name, f"at most {limit} characters")


def _page_size(value: int, name: str) -> int:
    if value < 0 or value > MAX_PAGE:
        raise InvalidArgument(name, f"{value}, want 0..{MAX_PAGE}")
    return value or DEFAULT_PAGE


def _child_token_of(after: tuple[int, str, str]) -> str:
    """The page token resuming after (depth, parent, key): ``depth parent key``."""
    return f"{after[0]} {after[1]} {after[2]}"


def _child_token(token: str) -> tuple[int, str, str] | None:
    """(depth, parent, key) of the last unit sent, from ``depth parent key`` (no key holds a
    space)."""
    if not token:
        return None
    parts = token.split(" ")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1] or not parts[2]:
        raise InvalidArgument("ListChildrenRequest.page.page_token", "not a token this server gave")
    return int(parts[0]), parts[1], parts[2]
