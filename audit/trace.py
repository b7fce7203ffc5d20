"""Trace: the whole life of one unit, from the rows other services wrote.

Events on a parent apply to what it held at that moment (PRODUCT.md §4), so the containment
history of the unit and of every parent it ever had gives the intervals in which each ancestor
held it; a logistics event on an ancestor is inherited when its time falls inside one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit.domain import Alert, TraceEvent, TraceItem, TraceScan, in_order
from audit.ports import CodeFacts, HistoryReader, UnitStore

_ACTIONS = {
    "packed": "PACKED",
    "unpacked": "UNPACKED",
    "replaced": "REPLACED",
    "replacing": "REPLACED",
    "sampled": "SAMPLED",
    "reworked": "REWORKED",
}
_LOGISTICS = {
    "logistics.shipped": ("SHIPPED", "in_transit"),
    "logistics.received": ("RECEIVED", "received"),
    "logistics.decommissioned": ("DECOMMISSIONED", ""),
    "logistics.decommission_undone": ("DECOMMISSION_UNDONE", ""),
}
_MAX_DEPTH = 4  # item → bundle → case → pallet


@dataclass(frozen=True)
class Held:
    """``ancestor`` held the unit from ``since`` until ``until`` (None: still)."""

    ancestor: str
    since: datetime
    until: datetime | None

    def covers(self, at: datetime) -> bool:
        return self.since <= at and (self.until is None or at < self.until)


def holders(store: HistoryReader, key: str) -> tuple[list[Held], list[tuple[Any, ...]]]:
    """Every ancestor that ever held ``key`` with when, and ``key``'s own history rows."""
    own: list[tuple[Any, ...]] = []
    held: list[Held] = []
    frontier = {key: [Held(key, datetime.min.replace(tzinfo=UTC), None)]}
    for depth in range(_MAX_DEPTH):
        rows = store.containment_history(list(frontier))
        if depth == 0:
            own = [r for r in rows if r[0] == key]
        found: dict[str, list[Held]] = {}
        for unit, spans in frontier.items():
            for parent, since, until in _parent_spans([r for r in rows if r[0] == unit]):
                for span in spans:  # the parent holds `key` while both holds overlap
                    start = max(since, span.since)
                    ends = [t for t in (until, span.until) if t is not None]
                    end = min(ends, default=None)
                    if end is None or start < end:
                        found.setdefault(parent, []).append(Held(parent, start, end))
        held.extend(h for spans in found.values() for h in spans)
        if not found:
            break
        frontier = found
    return held, own


def _parent_spans(rows: list[tuple[Any, ...]]) -> list[tuple[str, datetime, datetime | None]]:
    """(parent, from, until) from one unit's history rows, oldest first. How the Aggregator
    writes them: ``packed`` enters; ``unpacked`` and ``sampled`` leave; ``reworked`` leaves
    with direction "out" and enters otherwise; ``replaced`` leaves for the old label
    (``replaced_by``), enters for the new one (``replaces``) and moves the children of a
    replaced parent into the new one (``from``)."""
    spans: list[tuple[str, datetime, datetime | None]] = []
    current: tuple[str, datetime] | None = None
    for _, parent, action, _, at, attributes in rows:
        attrs = attributes or {}
        out = attrs.get("direction") == "out"
        enters = bool(parent) and (
            action == "packed"
            or (action == "reworked" and not out)
            or (action == "replaced" and ("replaces" in attrs or "from" in attrs))
        )
        leaves = (
            action in ("unpacked", "sampled")
            or (action == "reworked" and out)
            or (action == "replaced" and "replaced_by" in attrs)
        )
        if (enters or leaves) and current is not None:
            spans.append((current[0], current[1], at))
            current = None
        if enters:
            current = (parent, at)
    if current is not None:
        spans.append((current[0], current[1], None))
    return spans


def _attrs(payload: dict[str, Any], *names: str) -> dict[str, str]:
    return {n: str(payload[n]) for n in names if payload.get(n) not in (None, "", [])}


def trace(
    store: UnitStore,
    tenant_id: str,
    key: str,
    code: CodeFacts | None,
    alerts: list[Alert],
) -> list[TraceItem]:
    """Everything recorded about ``key`` (a code key or ``sscc:…``), oldest first."""
    items: list[TraceItem] = []
    if code is not None:
        items.append(
            TraceEvent(
                "ISSUED",
                code.request_id or "",
                code.issued_at,
                state="allocated",
                attributes=_attrs({"lot": code.lot, "expiry": code.expiry}, "lot", "expiry"),
                key_id=code.key_id or "",
                work_order=code.work_order or "",
                line_id=code.line_id or "",
            )
        )
        for kind, event_id, at, recorded, payload in store.status_events(
            tenant_id, code.gtin, code.serial
        ):
            state = kind.removeprefix("codes.")
            items.append(
                TraceEvent(
                    state.upper(),
                    event_id,
                    at,
                    state=state,
                    attributes=_attrs(payload, "reason"),
                    work_order=code.work_order or "",
                    line_id=str(payload.get("line_id") or ""),
                    recorded_at=recorded,
                )
            )
    held, own = holders(store, key)
    for _, parent, action, event_id, at, attributes in own:
        items.append(
            TraceEvent(
                _ACTIONS.get(action, action.upper()),
                event_id,
                at,
                parent=parent,
                attributes={str(k): str(v) for k, v in (attributes or {}).items()},
            )
        )
    ancestors = sorted({h.ancestor for h in held})
    for kind, event_id, at, recorded, payload in store.logistics_events(
        tenant_id, [key, *ancestors]
    ):
        if kind not in _LOGISTICS:
            continue
        when = (
            datetime.fromisoformat(str(payload.get("event_time")))
            if "event_time" in payload
            else at
        )
        roots = set(payload.get("codes", []))
        via: str | None = None
        if key not in roots:
            via = next((h.ancestor for h in held if h.ancestor in roots and h.covers(when)), None)
            if via is None:
                continue  # the ancestor was shipped before or after it held this unit
        name, state = _LOGISTICS[kind]
        items.append(
            TraceEvent(
                name,
                event_id,
                when,
                state=str(payload.get("state") or state),
                inherited_from=via,
                attributes=_attrs(
                    payload,
                    "to_party",
                    "from_party",
                    "destination_market",
                    "reason",
                    "note",
                    "market",
                    "location",
                ),
                recorded_at=recorded,
                epcis_event_id=str(payload.get("epcis_event_id") or ""),
            )
        )
    recall = store.recall_of(key)
    if recall is not None:
        recall_id, reason, at, request_id = recall
        items.append(
            TraceEvent(
                "RECALLED",
                request_id,
                at,
                state="recalled",
                attributes={"recall_id": recall_id, "reason": reason},
            )
        )
    for verification_id, at, verdict, region, reasons, risk in store.scans(key):
        items.append(TraceScan(verification_id, at, verdict, region, reasons, risk))
    items.extend(alerts)
    return in_order(items)
