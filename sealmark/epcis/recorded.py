"""Recorded domain events (kind + payload, :mod:`sealmark.events`) as EPCIS events, and the
one ``eventID`` each business event is known by.

The writers (Aggregator, Issuer) call :func:`business_event_id` with the payload they are
about to store, answer the caller with it and store it with the event (the transparency log
commits to it); the exporter maps the same payload with :func:`export_events`, so the id in
the RPC answer, in the log and in the export is one value by construction. Pure module.

What the caller said becomes:

=====================  ===================================================================
payload field          EPCIS 2.0 / CBV 2.0
=====================  ===================================================================
event_time             ``eventTime`` (the recording time only when the caller gave none)
time_zone_offset       ``eventTimeZoneOffset`` (``+00:00`` when the caller gave none)
location               ``bizLocation``: an SGLN URN or http(s) URI as given, a GLN-13 as
                       ``https://id.gs1.org/414/…``, any other site id under our namespace
read_point             ``readPoint``, written the same way
to_party / from_party  ``destinationList`` / ``sourceList`` entry of type ``owning_party``
                       (a GLN-13 as ``https://id.gs1.org/417/…``)
biz_transactions       ``bizTransactionList``: a CBV type name as given, any other under our
                       namespace; an id that is not a URI under our namespace
reason / note          extension ``sealmark:reason``
destination_market     extension ``sealmark:market`` (Ship)
=====================  ===================================================================

A business event that needs several EPCIS events (a sample out of a case: unpacking, then
sampling) is known by its *primary* one (:data:`PRIMARY`); old rows without the newer
fields export as before, with what they have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sealmark.epcis.document import EXTENSION_NAMESPACE, Identifiers, event_json
from sealmark.epcis.events import (
    BIZ_TRANSACTION_TYPES,
    Commission,
    Decommission,
    ExportEvent,
    Key,
    Link,
    LotStatus,
    Pack,
    Recall,
    Receive,
    Replace,
    Restore,
    Retirement,
    Sample,
    Ship,
    Unpack,
)
from sealmark.gs1.checkdigit import is_valid_key

__all__ = [
    "KINDS",
    "Mapped",
    "business_event_id",
    "epc",
    "event_ids",
    "export_events",
    "location_uri",
    "party_uri",
]

GS1 = "https://id.gs1.org"
RECALL_CHUNK = 10_000
_RETIREMENT = {
    "destroyed": Retirement.DESTROYED,
    "dispensed": Retirement.DISPENSED,
    "stolen": Retirement.STOLEN,
    "locked": Retirement.NON_SELLABLE,
    "sampled": Retirement.NON_SELLABLE,
}
# The CBV disposition a unit is in again after its decommission is undone, by our state.
RESTORED_DISPOSITION = {
    "commissioned": "active",
    "in_transit": "in_transit",
    "received": "in_progress",
    "dispensed": "dispensed",
    "locked": "sellable_not_accessible",
}


@dataclass(frozen=True, slots=True)
class Mapped:
    """The EPCIS events of one business event; ``events[primary]`` names it (None: it has
    no EPCIS event, e.g. a rework that changed nothing)."""

    events: tuple[ExportEvent, ...]
    primary: int | None = 0


def epc(unit_key: str) -> Key:
    """A unit key as the writers store it ('sscc:' + 18 digits, or GTIN-14 + serial)."""
    if unit_key.startswith("sscc:"):
        return unit_key[5:]
    return (unit_key[:14], unit_key[14:])


def _epcs(keys: Iterable[object]) -> tuple[Key, ...]:
    return tuple(epc(str(k)) for k in keys)


def _ours(kind: str, text: str) -> str:
    return f"{EXTENSION_NAMESPACE}{kind}/{quote(text, safe='')}"


def _is_uri(text: str) -> bool:
    return text.startswith(("urn:", "https://", "http://")) and not any(c.isspace() for c in text)


def location_uri(text: str) -> str:
    """A place as the caller named it (GLN-13, SGLN URN, URI or a site id of the brand's)."""
    if _is_uri(text):
        return text
    if len(text) == 13 and text.isascii() and text.isdigit() and is_valid_key(text):
        return f"{GS1}/414/{text}"
    return _ours("location", text)


def party_uri(text: str) -> str:
    """A party as the caller named it (GLN-13, URI or a party id of the brand's)."""
    if _is_uri(text):
        return text
    if len(text) == 13 and text.isascii() and text.isdigit() and is_valid_key(text):
        return f"{GS1}/417/{text}"
    return _ours("party", text)


def _transactions(raw: object) -> tuple[Link, ...]:
    out: list[Link] = []
    for item in raw if isinstance(raw, list) else []:
        kind, ident = str(item[0]), str(item[1])
        kind = kind if kind in BIZ_TRANSACTION_TYPES or _is_uri(kind) else _ours("btt", kind)
        out.append((kind, ident if _is_uri(ident) else _ours("bt", ident)))
    return tuple(out)


def offset_of(at: datetime) -> str:
    delta = at.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def event_time(payload: Mapping[str, Any], occurred_at: datetime) -> datetime:
    """When the caller said the event happened; the recording time when it said nothing."""
    when = payload.get("event_time")
    return datetime.fromisoformat(str(when)) if when else occurred_at


def _common(payload: Mapping[str, Any], occurred_at: datetime) -> dict[str, Any]:
    at = event_time(payload, occurred_at)
    common: dict[str, Any] = {
        "event_time": at,
        "tz_offset": str(payload.get("time_zone_offset") or offset_of(at)),
        "biz_transactions": _transactions(payload.get("biz_transactions")),
    }
    if payload.get("location"):
        common["biz_location"] = location_uri(str(payload["location"]))
    if payload.get("read_point"):
        common["read_point"] = location_uri(str(payload["read_point"]))
    note = payload.get("note") if "note" in payload else payload.get("reason")
    if note:
        common["note"] = str(note)
    return common


Facts = Callable[[str, list[str]], Mapping[str, tuple[str, date | None]]]
"""(gtin, serials) → serial → (lot, expiry): the ILMD of commissioned codes."""
Units = Callable[[str], list[str]]
"""recall id → the unit keys the recall took, sorted."""


def export_events(
    kind: str,
    payload: Mapping[str, Any],
    occurred_at: datetime,
    *,
    subject: str = "",
    facts: Facts | None = None,
    recalled: Units | None = None,
) -> Mapped:
    """The EPCIS events of a recorded event of ``kind`` (one of :data:`KINDS`).

    ``facts`` is needed for ``codes.commissioned`` and ``recalled`` for ``audit.recalled``
    (both read stored state); ``subject`` names the lot of an old ``lot.held`` row. Raises
    KeyError for another kind, and the EpcisError of :mod:`sealmark.epcis.events` when the
    payload does not make a valid event."""
    common = _common(payload, occurred_at)
    p = payload
    if kind == "codes.commissioned":
        if facts is None:
            raise ValueError("codes.commissioned needs facts")
        return Mapped(tuple(_commissioned(p, common, facts)))
    if kind == "audit.recalled":
        if recalled is None:
            raise ValueError("audit.recalled needs recalled")
        units = recalled(str(p["recall_id"]))
        return Mapped(
            tuple(
                Recall(epcs=_epcs(units[start : start + RECALL_CHUNK]), **common)
                for start in range(0, len(units), RECALL_CHUNK)
            )
        )
    return _MAPPERS[kind](p, common, subject)


def business_event_id(
    kind: str, payload: Mapping[str, Any], occurred_at: datetime, *, subject: str = ""
) -> str:
    """The ``eventID`` (CBV 2.0 event hash) of the primary EPCIS event of a business event
    about to be recorded; "" when it has none. The hash does not depend on how identifiers
    are written, so this is the id in every export. Same errors as :func:`export_events`."""
    mapped = export_events(kind, payload, occurred_at, subject=subject)
    if mapped.primary is None:
        return ""
    return str(event_json(mapped.events[mapped.primary], _IDS)["eventID"])


_IDS = Identifiers()


def event_ids(
    kind: str,
    payload: Mapping[str, Any],
    occurred_at: datetime,
    *,
    facts: Facts | None = None,
    recalled: Units | None = None,
) -> list[str]:
    """The ``eventID`` of every EPCIS event of a business event, in export order (a line's
    batch of several lots is one commissioning event per lot). Same errors as
    :func:`export_events`."""
    mapped = export_events(kind, payload, occurred_at, facts=facts, recalled=recalled)
    return [str(event_json(event, _IDS)["eventID"]) for event in mapped.events]


def _commissioned(
    p: Mapping[str, Any], common: dict[str, Any], facts: Facts
) -> Iterable[ExportEvent]:
    gtin, serials = str(p["gtin"]), [str(s) for s in p.get("serials", [])]
    known = facts(gtin, serials)
    groups: dict[tuple[str, date | None], list[str]] = {}
    for serial in serials:
        groups.setdefault(known.get(serial, ("", None)), []).append(serial)
    for (lot, expiry), members in groups.items():
        yield Commission(
            epcs=tuple((gtin, s) for s in members), lot=lot or None, expiry=expiry, **common
        )


def _packed(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    if not p.get("children"):
        # Before no-op packs stopped being recorded (issue 28), a repeated pack was stored
        # with no children; it says nothing and must not break the brand's export.
        return Mapped((), None)
    return Mapped((Pack(parent=epc(p["parent"]), children=_epcs(p["children"]), **common),))


def _unpacked(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    children = () if p.get("all") else _epcs(p["children"])
    return Mapped((Unpack(parent=epc(p["parent"]), children=children, **common),))


def _reworked(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    """Everything out, then the new content in (both ``repackaging``); rows recorded before
    the content was kept give what left and what came."""
    parent, step = epc(p["parent"]), "repackaging"
    if not p.get("removed") and not p.get("added"):
        return Mapped((), None)  # nothing changed: no EPCIS event
    if "content" in p:
        out: ExportEvent = Unpack(parent=parent, step=step, **common)
        if not p["content"]:
            return Mapped((out,))
        return Mapped(
            (out, Pack(parent=parent, children=_epcs(p["content"]), step=step, **common)), 1
        )
    events: list[ExportEvent] = []
    if p.get("removed"):
        events.append(Unpack(parent=parent, children=_epcs(p["removed"]), step=step, **common))
    if p.get("added"):
        events.append(Pack(parent=parent, children=_epcs(p["added"]), step=step, **common))
    return Mapped(tuple(events), len(events) - 1)


def _replaced(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    """The new label takes the old one's place: out of its parent and in (both
    ``replacing``, ``active``), its children moved over the same way; a label with neither
    is an ObjectEvent naming both."""
    old, new = epc(p["old"]), epc(p["new"])
    parent = epc(p["parent"]) if p.get("parent") else None
    children = _epcs(p.get("children") or [])
    how = {"step": "replacing", "disposition": "active", **common}
    events: list[ExportEvent] = []
    if parent is not None:
        events.append(Unpack(parent=parent, children=(old,), **how))
        events.append(Pack(parent=parent, children=(new,), **how))
    primary = len(events) - 1
    if children:
        events.append(Unpack(parent=old, children=children, **how))
        events.append(Pack(parent=new, children=children, **how))
    if not events:
        return Mapped((Replace(old=old, new=new, **common),))
    return Mapped(tuple(events), primary if primary >= 0 else len(events) - 1)


def _sampled(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    code = epc(p["code"])
    if p.get("parent"):
        unpack = Unpack(parent=epc(p["parent"]), children=(code,), **common)
        return Mapped((unpack, Sample(epcs=(code,), **common)), 1)
    return Mapped((Sample(epcs=(code,), **common),))


def _scrapped(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    gtin = str(p["gtin"])
    epcs = tuple((gtin, str(s)) for s in p.get("serials", []))
    return Mapped((Decommission(epcs=epcs, reason=Retirement.SCRAPPED, **common),))


def _shipped(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    to = (("owning_party", party_uri(str(p["to_party"]))),) if p.get("to_party") else ()
    market = p.get("destination_market") or None
    return Mapped((Ship(epcs=_epcs(p["codes"]), market=market, destinations=to, **common),))


def _received(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    src = (("owning_party", party_uri(str(p["from_party"]))),) if p.get("from_party") else ()
    return Mapped((Receive(epcs=_epcs(p["codes"]), sources=src, **common),))


def _decommissioned(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    reason = _RETIREMENT.get(str(p.get("state")), Retirement.DECOMMISSIONED)
    return Mapped((Decommission(epcs=_epcs(p["codes"]), reason=reason, **common),))


def _undone(p: Mapping[str, Any], common: dict[str, Any], _: str) -> Mapped:
    disposition = RESTORED_DISPOSITION.get(str(p.get("restored_state")))
    return Mapped((Restore(epcs=_epcs(p["codes"]), disposition=disposition, **common),))


def _lot(p: Mapping[str, Any], common: dict[str, Any], subject: str, held: bool) -> Mapped:
    gtin, lot = str(p.get("gtin") or ""), str(p.get("lot") or "")
    if not gtin and subject.startswith("lot:"):  # rows recorded before gtin/lot were
        gtin, _, lot = subject[4:].partition(":")
    return Mapped((LotStatus(gtin=gtin, lot=lot, held=held, **common),))


def _held(p: Mapping[str, Any], common: dict[str, Any], subject: str) -> Mapped:
    return _lot(p, common, subject, True)


def _released(p: Mapping[str, Any], common: dict[str, Any], subject: str) -> Mapped:
    return _lot(p, common, subject, False)


_MAPPERS: dict[str, Callable[[Mapping[str, Any], dict[str, Any], str], Mapped]] = {
    "codes.scrapped": _scrapped,
    "aggregation.packed": _packed,
    "aggregation.unpacked": _unpacked,
    "aggregation.reworked": _reworked,
    "aggregation.replaced": _replaced,
    "aggregation.sampled": _sampled,
    "logistics.shipped": _shipped,
    "logistics.received": _received,
    "logistics.decommissioned": _decommissioned,
    "logistics.decommission_undone": _undone,
    "lot.held": _held,
    "lot.released": _released,
}
KINDS = ("codes.commissioned", *_MAPPERS, "audit.recalled")
"""Every recorded kind that is exported, in the order the docs list them."""
