"""Packing at line speed: pack, unpack, rework, replace a damaged label, take a sample, and
the packing rules a parent must keep (capacity, one GTIN or lot).

A writer locks every unit it reads the hierarchy of (the parent, its ancestors and the
children) in one sorted call, so two conflicting packs of one child serialise and exactly one
wins, and two packs that would close a cycle between them cannot both pass their cycle check.
"""

from __future__ import annotations

import time
from datetime import datetime

from aggregator.base import (
    NOWHERE,
    TENANT_TTL_S,
    AggregatorBase,
    Outcome,
    Where,
    check_text,
    fingerprint,
    where_facts,
)
from aggregator.domain import (
    MAX_CHILDREN,
    REPLACEABLE,
    Level,
    check_event_id,
    check_packable,
    distinct_units,
    event_time,
    parent_level,
)
from aggregator.ports import AggregationStore, Rule, Unit
from sealmark.errors import FailedPrecondition, InvalidArgument, NotFound
from sealmark.lifecycle import CodeState, check_transition
from sealmark.tenancy.model import Principal, Role
from sealmark.units import UnitRef


class Packing(AggregatorBase):
    # -- pack / unpack ------------------------------------------------------------------
    def pack(
        self,
        principal: Principal,
        event_id: str,
        parent: UnitRef,
        children: list[UnitRef],
        where: Where = NOWHERE,
        level: Level | None = None,
        line_id: str = "",
    ) -> Outcome:
        """Put ``children`` into ``parent`` (adding to what it holds)."""
        name = "PackRequest"
        self._check_packing(principal, name, event_id, where, parent, children, 1)
        check_text(line_id, f"{name}.line_id", 64)

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
                **where_facts(where),
            }

        return self._write(
            principal,
            "aggregation.packed",
            event_id,
            fingerprint(parent, children, where, level, line_id),
            parent.key,
            apply,
        )

    def unpack(
        self,
        principal: Principal,
        event_id: str,
        parent: UnitRef,
        children: list[UnitRef],
        where: Where = NOWHERE,
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
                **where_facts(where),
            }

        return self._write(
            principal,
            "aggregation.unpacked",
            event_id,
            fingerprint(parent, children, where, line_id),
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
        where: Where = NOWHERE,
    ) -> Outcome:
        """A new label for a damaged one: ``new`` takes ``old``'s place (same parent, same
        children, same logistics state and market); ``old`` becomes scrapped. ``new`` is an
        allocated or commissioned code of the same GTIN (an SSCC for an SSCC), free and empty."""
        principal.require(Role.LINE)
        name = "ReplaceRequest"
        check_event_id(event_id, f"{name}.event_id")
        where.check(name)
        check_text(reason, f"{name}.reason", 500)
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
                **where_facts(where),
            }

        request = fingerprint(old, new, reason, where)
        return self._write(principal, "aggregation.replaced", event_id, request, old.key, apply)

    def sample(
        self,
        principal: Principal,
        event_id: str,
        code: UnitRef,
        reason: str = "",
        where: Where = NOWHERE,
    ) -> Outcome:
        """Take a unit out for QA: unpacked from its parent in the same event, state sampled
        (a decommission, so it can be undone within the window)."""
        principal.require(Role.LINE)
        name = "SampleRequest"
        check_event_id(event_id, f"{name}.event_id")
        where.check(name)
        check_text(reason, f"{name}.reason", 500)
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
                **where_facts(where),
            }

        request = fingerprint(code, reason, where)
        return self._write(principal, "aggregation.sampled", event_id, request, code.key, apply)

    def rework(
        self,
        principal: Principal,
        event_id: str,
        parent: UnitRef,
        children: list[UnitRef],
        reason: str = "",
        where: Where = NOWHERE,
    ) -> Outcome:
        """The parent's whole content becomes ``children``, as one event (unpack all, pack)."""
        name = "ReworkRequest"
        self._check_packing(principal, name, event_id, where, parent, children, 0)
        check_text(reason, f"{name}.reason", 500)

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
                **where_facts(where),
            }

        request = fingerprint(parent, children, reason, where)
        return self._write(principal, "aggregation.reworked", event_id, request, parent.key, apply)

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
        with self._storage.transaction() as store:
            store.tenant(tenant_id)
            store.set_rule(tenant_id, scope, rule)
        self._rules[tenant_id, scope] = (time.monotonic(), rule)
        return rule

    # -- internals ----------------------------------------------------------------------
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
