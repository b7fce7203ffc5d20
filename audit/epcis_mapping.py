"""Recorded domain events as EPCIS events (:mod:`sealmark.epcis.events`).

=========================  ==============================================================
recorded                   exported
=========================  ==============================================================
codes.commissioned         Commission, one per (lot, expiry) in the batch, with the ILMD
aggregation.packed         Pack (none for a pack that added no child)
aggregation.unpacked       Unpack (no children when everything was taken out)
aggregation.reworked       Unpack of those removed, Pack of those added
aggregation.replaced       the old label unpacked and decommissioned, the new one packed in
                           its place, the old one's children moved into the new one
aggregation.sampled        Unpack from its parent, Decommission
logistics.shipped          Ship with the destination market
logistics.received         Receive
logistics.decommissioned   Decommission with the CBV retirement of the reason
audit.recalled             Recall of every unit it took, in events of at most 10,000 units
=========================  ==============================================================

Undoing a decommission is not exported: CBV has no event that reverses a disposition, and
the state it returns to is visible in the next event of the unit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from audit.export_storage import ExportStore, Recorded
from sealmark.epcis.document import Identifiers, stream_document
from sealmark.epcis.events import (
    Commission,
    Decommission,
    ExportEvent,
    Key,
    Pack,
    Recall,
    Receive,
    Retirement,
    Ship,
    Unpack,
)

RECALL_CHUNK = 10_000
_RETIREMENT = {
    "destroyed": Retirement.DESTROYED,
    "dispensed": Retirement.DISPENSED,
    "stolen": Retirement.STOLEN,
}


def epc(unit_key: str) -> Key:
    """A unit key as written by the Aggregator ('sscc:' + 18 digits, or GTIN-14 + serial)."""
    if unit_key.startswith("sscc:"):
        return unit_key[5:]
    return (unit_key[:14], unit_key[14:])


def offset_of(at: datetime) -> str:
    delta = at.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class Mapper:
    def __init__(self, store: ExportStore, tenant_id: str, identifiers: Identifiers) -> None:
        self._store = store
        self._tenant = tenant_id
        self._identifiers = identifiers
        self._recalled: dict[str, list[str]] = {}

    def document(self, events: Iterable[ExportEvent], created: datetime) -> Iterator[bytes]:
        return stream_document(events, self._identifiers, created)

    def units(self, recorded: Recorded) -> set[str]:
        """The unit keys an event names (for filtering by lot or code)."""
        p = recorded.payload
        if recorded.kind == "codes.commissioned":
            return {str(p["gtin"]) + str(s) for s in p.get("serials", [])}
        if recorded.kind == "audit.recalled":
            return set(self._recall_units(str(p["recall_id"])))
        found: set[str] = set()
        for name in ("parent", "old", "new", "code"):
            if p.get(name):
                found.add(str(p[name]))
        for name in ("children", "codes", "removed", "added"):
            found.update(str(k) for k in p.get(name) or [])
        return found

    def _recall_units(self, recall_id: str) -> list[str]:
        if recall_id not in self._recalled:
            self._recalled = {recall_id: self._store.recalled(recall_id)}  # keep one
        return self._recalled[recall_id]

    def events(self, recorded: Recorded) -> Iterator[ExportEvent]:
        p: dict[str, Any] = recorded.payload
        at = (
            datetime.fromisoformat(p["event_time"]) if p.get("event_time") else recorded.occurred_at
        )
        where: dict[str, Any] = {
            "event_time": at,
            "tz_offset": str(p.get("time_zone_offset") or offset_of(at)),
        }
        if str(p.get("location") or "").startswith(("urn:epc:id:sgln:", "https://")):
            where["read_point"] = p["location"]
        kind = recorded.kind
        if kind == "codes.commissioned":
            yield from self._commissioned(p, where)
        elif kind == "aggregation.packed":
            if p.get("children"):  # a repeated pack recorded as a no-op has nothing to say
                yield Pack(parent=epc(p["parent"]), children=_epcs(p["children"]), **where)
        elif kind == "aggregation.unpacked":
            children = () if p.get("all") else _epcs(p["children"])
            yield Unpack(parent=epc(p["parent"]), children=children, **where)
        elif kind == "aggregation.reworked":
            if p.get("removed"):
                yield Unpack(parent=epc(p["parent"]), children=_epcs(p["removed"]), **where)
            if p.get("added"):
                yield Pack(parent=epc(p["parent"]), children=_epcs(p["added"]), **where)
        elif kind == "aggregation.replaced":
            yield from self._replaced(p, where)
        elif kind == "aggregation.sampled":
            if p.get("parent"):
                yield Unpack(parent=epc(p["parent"]), children=(epc(p["code"]),), **where)
            yield Decommission(epcs=(epc(p["code"]),), **where)
        elif kind == "logistics.shipped":
            yield Ship(epcs=_epcs(p["codes"]), market=p.get("destination_market") or None, **where)
        elif kind == "logistics.received":
            yield Receive(epcs=_epcs(p["codes"]), **where)
        elif kind == "logistics.decommissioned":
            reason = _RETIREMENT.get(str(p.get("state")), Retirement.DECOMMISSIONED)
            yield Decommission(epcs=_epcs(p["codes"]), reason=reason, **where)
        elif kind == "audit.recalled":
            units = self._recall_units(str(p["recall_id"]))
            for start in range(0, len(units), RECALL_CHUNK):
                yield Recall(epcs=_epcs(units[start : start + RECALL_CHUNK]), **where)

    def _commissioned(self, p: dict[str, Any], where: dict[str, Any]) -> Iterator[ExportEvent]:
        gtin, serials = str(p["gtin"]), [str(s) for s in p.get("serials", [])]
        facts = self._store.lot_facts(self._tenant, gtin, serials)
        groups: dict[tuple[str, Any], list[str]] = {}
        for serial in serials:
            groups.setdefault(facts.get(serial, ("", None)), []).append(serial)
        for (lot, expiry), members in groups.items():
            yield Commission(
                epcs=tuple((gtin, s) for s in members), lot=lot or None, expiry=expiry, **where
            )

    def _replaced(self, p: dict[str, Any], where: dict[str, Any]) -> Iterator[ExportEvent]:
        old, new = epc(p["old"]), epc(p["new"])
        if p.get("parent"):
            yield Unpack(parent=epc(p["parent"]), children=(old,), **where)
        if p.get("children"):
            yield Unpack(parent=old, children=_epcs(p["children"]), **where)
        yield Decommission(epcs=(old,), **where)
        if p.get("parent"):
            yield Pack(parent=epc(p["parent"]), children=(new,), **where)
        if p.get("children"):
            yield Pack(parent=new, children=_epcs(p["children"]), **where)


def _epcs(keys: Iterable[str]) -> tuple[Key, ...]:
    return tuple(epc(str(k)) for k in keys)
