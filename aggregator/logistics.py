"""Logistics on whole hierarchies: ship, receive, decommission and its undo. Each acts on the
named units and everything they contain, locked roots first."""

from __future__ import annotations

from datetime import datetime

from aggregator.base import (
    NOWHERE,
    AggregatorBase,
    Outcome,
    Where,
    check_text,
    fingerprint,
    where_facts,
)
from aggregator.domain import (
    DECOMMISSION_STATES,
    MAX_LOGISTICS,
    SHIPPABLE,
    check_event_id,
    check_undo,
    distinct_units,
    event_time,
)
from aggregator.ports import AggregationStore, Unit
from sealmark.errors import FailedPrecondition, InvalidArgument, NotFound
from sealmark.lifecycle import CodeState, check_transition
from sealmark.tenancy.model import Principal, Role, validate_market
from sealmark.units import UnitRef


class Logistics(AggregatorBase):
    # -- logistics ----------------------------------------------------------------------
    def ship(
        self,
        principal: Principal,
        event_id: str,
        codes: list[UnitRef],
        to_party: str,
        market: str,
        where: Where = NOWHERE,
        biz_transactions: list[tuple[str, str]] | None = None,
    ) -> Outcome:
        """Every unit and all it contains goes in_transit, to ``market``."""
        principal.require(Role.LOGISTICS)
        name = "ShipRequest"
        self._check_logistics(principal, event_id, codes, where, name)
        if not to_party.strip() or len(to_party) > 128:
            raise InvalidArgument(f"{name}.to_party", "required, at most 128 characters")
        validate_market(market, f"{name}.destination_market")
        transactions = biz_transactions_of(biz_transactions or [], name)

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
            return len(units), payload_of(
                codes,
                len(units),
                when,
                where,
                to_party=to_party,
                destination_market=market,
                biz_transactions=transactions,
            )

        request = fingerprint(codes, to_party, market, where, transactions)
        return self._write(principal, "logistics.shipped", event_id, request, "", apply)

    def receive(
        self,
        principal: Principal,
        event_id: str,
        codes: list[UnitRef],
        from_party: str,
        where: Where = NOWHERE,
        biz_transactions: list[tuple[str, str]] | None = None,
    ) -> Outcome:
        """Shipped units, and all they contain, are received."""
        principal.require(Role.LOGISTICS)
        name = "ReceiveRequest"
        self._check_logistics(principal, event_id, codes, where, name)
        if len(from_party) > 128:
            raise InvalidArgument(f"{name}.from_party", "at most 128 characters")
        transactions = biz_transactions_of(biz_transactions or [], name)

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
            return len(units), payload_of(
                codes, len(units), when, where, from_party=from_party, biz_transactions=transactions
            )

        request = fingerprint(codes, from_party, where, transactions)
        return self._write(principal, "logistics.received", event_id, request, "", apply)

    def decommission(
        self,
        principal: Principal,
        event_id: str,
        codes: list[UnitRef],
        reason: str,
        where: Where = NOWHERE,
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
        check_text(note, f"{name}.note", 500)
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
            return len(units), payload_of(
                codes, len(units), when, where, reason=reason, state=target.value, note=note
            )

        request = fingerprint(codes, reason, where, note)
        return self._write(principal, "logistics.decommissioned", event_id, request, "", apply)

    def undo_decommission(
        self,
        principal: Principal,
        event_id: str,
        codes: list[UnitRef],
        where: Where = NOWHERE,
        note: str = "",
    ) -> Outcome:
        """Revert each unit's latest decommission (and its descendants'): within 10 days, by
        the same party, never from recalled, expired, destroyed or stolen."""
        principal.require(Role.LOGISTICS)
        name = "UndoDecommissionRequest"
        self._check_logistics(principal, event_id, codes, where, name)
        check_text(note, f"{name}.note", 500)

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
            return restored, payload_of(
                codes, restored, when, where, note=note, restored_state=back
            )

        request = fingerprint(codes, where, note)
        return self._write(principal, "logistics.decommission_undone", event_id, request, "", apply)

    # -- internals ----------------------------------------------------------------------
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


def payload_of(
    codes: list[UnitRef], affected: int, when: datetime, where: Where, **facts: object
) -> dict[str, object]:
    """The domain event payload of a logistics write."""
    return {
        "codes": [c.key for c in codes],
        "affected": affected,
        **facts,
        "event_time": when.isoformat(),
        **where_facts(where),
    }


def biz_transactions_of(items: list[tuple[str, str]], name: str) -> list[list[str]]:
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
