"""EPCIS 2.0 JSON-LD export: our events as schema-valid EPCIS events whose ``eventID`` is their
CBV 2.0 event hash, streamed as one EPCISDocument in constant memory.

Identifiers are written as GS1 Digital Link URIs or as EPC URNs (:class:`Identifiers`); the
event hash turns both into the same canonical form, so an event has the same ``eventID`` in
either format. Errors: :class:`~sealmark.epcis.events.EpcisError` names the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sealmark.epcis.canonical import canonical_time
from sealmark.epcis.events import (
    TZ_OFFSET,
    Commission,
    Decommission,
    EpcisError,
    ExportEvent,
    Key,
    LotStatus,
    Pack,
    Recall,
    Receive,
    Replace,
    Restore,
    Sample,
    Ship,
    Unpack,
)
from sealmark.epcis.hashing import JsonLdContext, event_hash
from sealmark.gs1.digital_link import encode_component
from sealmark.gs1.epc import lgtin_urn, sgtin_urn, sscc_urn

__all__ = [
    "CONTEXT",
    "EXTENSION_NAMESPACE",
    "EpcisError",
    "IdentifierFormat",
    "Identifiers",
    "check_event",
    "event_json",
    "stream_document",
    "timestamp",
]

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"
# Our extension namespace (prefix ``sealmark``): the destination market, the reason given,
# and identifiers of ours that have no GS1 key (sites, parties, transaction ids).
EXTENSION_NAMESPACE = "https://ns.sealmark.example/epcis/"
# cbvmda is in the standard context too; we declare it so that hashers which read only the
# document's own prefixes (as the GS1 reference implementation does) expand it the same way.
CONTEXT: list[str | dict[str, str]] = [
    EPCIS_CONTEXT,
    {"cbvmda": "urn:epcglobal:cbv:mda:", "sealmark": EXTENSION_NAMESPACE},
]
_EVENT_TYPES = frozenset({"ObjectEvent", "AggregationEvent", "TransactionEvent"})
_EVENT_TYPES |= {"TransformationEvent", "AssociationEvent"}
_STEM = re.compile(r"https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~-]+)*")
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


class IdentifierFormat(StrEnum):
    """How identifiers are written in an export."""

    DIGITAL_LINK = "digital_link"
    EPC_URN = "epc_urn"


@dataclass(frozen=True, slots=True)
class Identifiers:
    """How keys are written: Digital Link URIs under ``stem`` (``https://id.gs1.org/01/…/21/…``,
    ``…/00/…``), or EPC URNs (``urn:epc:id:sgtin:…``, ``urn:epc:id:sscc:…``), which need the
    company-prefix length of each GTIN-14 / SSCC-18 from ``prefix_length`` (for instance
    ``Tenant.prefix_length_for``). Raises EpcisError naming ``prefix_length`` when URNs are
    asked for without it."""

    format: IdentifierFormat = IdentifierFormat.DIGITAL_LINK
    prefix_length: Callable[[str], int] | None = None
    stem: str = "https://id.gs1.org"

    def __post_init__(self) -> None:
        if self.format is IdentifierFormat.EPC_URN and self.prefix_length is None:
            raise EpcisError("prefix_length", "EPC URNs need the company-prefix length")
        if not _STEM.fullmatch(self.stem):
            raise EpcisError(
                "stem", f"{self.stem[:60]!r}: want https://host[/path], no '/' at the end"
            )

    def render(self, key: Key) -> str:
        """The URI of a (GTIN-14, serial) item or an SSCC-18. Keys are taken as valid (the
        event classes validated them). Raises the InvalidArgument of :mod:`sealmark.gs1` for a
        prefix length outside 6..12, and whatever ``prefix_length`` raises for a key it does
        not know."""
        if self.prefix_length is not None and self.format is IdentifierFormat.EPC_URN:
            if isinstance(key, str):
                return sscc_urn(key, self.prefix_length(key))
            return sgtin_urn(key[0], key[1], self.prefix_length(key[0]))
        # No second validation here: an export of millions of codes pays for it per key.
        if isinstance(key, str):
            return f"{self.stem}/00/{key}"
        return f"{self.stem}/01/{key[0]}/21/{encode_component(key[1])}"

    def render_class(self, gtin: str, lot: str) -> str:
        """The URI of a lot of a GTIN-14 (EPC class ``lgtin`` or a Digital Link with AI 10)."""
        if self.prefix_length is not None and self.format is IdentifierFormat.EPC_URN:
            return lgtin_urn(gtin, lot, self.prefix_length(gtin))
        return f"{self.stem}/01/{gtin}/10/{encode_component(lot)}"


def timestamp(moment: datetime) -> str:
    """An aware datetime as an EPCIS timestamp: UTC, milliseconds, ``Z``. Raises EpcisError
    for a naive datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise EpcisError("timestamp", "must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_json(event: ExportEvent, identifiers: Identifiers) -> dict[str, Any]:
    """The EPCIS 2.0 JSON of ``event``; its ``eventID`` is the CBV 2.0 event hash, computed
    under :data:`CONTEXT` (the context :func:`stream_document` writes). Raises the
    InvalidArgument of :mod:`sealmark.gs1` when a key cannot be written."""
    body = _body(event, identifiers)
    return {"type": body["type"], "eventID": event_hash(body, CONTEXT)} | body


_AGGREGATION = (Pack, Unpack)


def _body(event: ExportEvent, identifiers: Identifiers) -> dict[str, Any]:
    def uris(keys: tuple[Key, ...]) -> list[str]:
        return [identifiers.render(key) for key in keys]

    body: dict[str, Any] = {
        "type": "AggregationEvent" if isinstance(event, _AGGREGATION) else "ObjectEvent",
        "eventTime": timestamp(event.event_time),
        "eventTimeZoneOffset": event.tz_offset,
    }
    match event:
        case Pack() | Unpack():
            body["parentID"] = identifiers.render(event.parent)
            if event.children:  # an Unpack without children empties the parent
                body["childEPCs"] = uris(event.children)
            body["action"] = "ADD" if isinstance(event, Pack) else "DELETE"
            body |= {"bizStep": event.step, "disposition": event.disposition}
        case Commission():
            body |= {"epcList": uris(event.epcs), "action": "ADD"}
            body |= {"bizStep": "commissioning", "disposition": "active"}
        case Ship():
            body |= {"epcList": uris(event.epcs), "action": "OBSERVE"}
            body |= {"bizStep": "shipping", "disposition": "in_transit"}
        case Receive():
            body |= {"epcList": uris(event.epcs), "action": "OBSERVE"}
            body |= {"bizStep": "receiving", "disposition": "in_progress"}
        case Decommission():
            body |= {"epcList": uris(event.epcs), "action": event.reason.action}
            body |= {"bizStep": event.reason.biz_step, "disposition": event.reason.disposition}
        case Recall():
            body |= {"epcList": uris(event.epcs), "action": "OBSERVE"}
            body |= {"bizStep": "holding", "disposition": "recalled"}
        case Sample():
            body |= {"epcList": uris(event.epcs), "action": "OBSERVE"}
            body |= {"bizStep": "sampling", "disposition": "non_sellable_other"}
        case Replace():
            body |= {"epcList": [identifiers.render(event.old)], "action": "OBSERVE"}
            body |= {"bizStep": "replacing", "disposition": "inactive"}
        case Restore():
            body |= {"epcList": uris(event.epcs), "action": "OBSERVE"}
            if event.disposition is not None:
                body["disposition"] = event.disposition
        case LotStatus():
            body["quantityList"] = [{"epcClass": identifiers.render_class(event.gtin, event.lot)}]
            body["action"] = "OBSERVE"
            body["bizStep"] = "holding"
            body["disposition"] = "sellable_not_accessible" if event.held else "sellable_accessible"
    if event.read_point is not None:
        body["readPoint"] = {"id": event.read_point}
    if event.biz_location is not None:
        body["bizLocation"] = {"id": event.biz_location}
    if event.biz_transactions:
        body["bizTransactionList"] = [
            {"type": kind, "bizTransaction": ident} for kind, ident in event.biz_transactions
        ]
    if event.sources:
        body["sourceList"] = [{"type": kind, "source": ident} for kind, ident in event.sources]
    if event.destinations:
        body["destinationList"] = [
            {"type": kind, "destination": ident} for kind, ident in event.destinations
        ]
    if isinstance(event, Commission) and (event.lot is not None or event.expiry is not None):
        body["ilmd"] = {}
        if event.lot is not None:
            body["ilmd"]["cbvmda:lotNumber"] = event.lot
        if event.expiry is not None:
            body["ilmd"]["cbvmda:itemExpirationDate"] = event.expiry.isoformat()
    if isinstance(event, Ship) and event.market is not None:
        body["sealmark:market"] = event.market
    if isinstance(event, Replace):
        body["sealmark:replacedBy"] = identifiers.render(event.new)
    if isinstance(event, Restore):
        body["sealmark:undoes"] = "decommissioning"
    if event.note:
        body["sealmark:reason"] = event.note
    return body


def check_event(
    event: Mapping[str, Any],
    context: JsonLdContext | None = None,
    *,
    verify_event_id: bool = True,
) -> None:
    """Enforce the EPCIS rules the JSON schema does not check. Raises EpcisError naming the
    field (``AggregationEvent.parentID`` …) when:

    * the type is not an EPCIS event type, or ``eventTime`` is not a timestamp with an offset,
      or ``eventTimeZoneOffset`` is not ``±hh:mm`` within −14:00..+14:00;
    * an AggregationEvent ADD or DELETE has no ``parentID``, an ADD has no children, a
      child appears twice or is its own parent;
    * an ObjectEvent names neither EPCs nor quantities (nor sensor data);
    * ``eventID`` is a CBV 2.0 event hash (``ni:///…?ver=CBV2.0``) that is not this event's,
      under ``context`` (default :data:`CONTEXT`); skipped with ``verify_event_id=False``.
    """
    kind = event.get("type")
    if kind not in _EVENT_TYPES:
        raise EpcisError("type", f"{str(kind)[:40]!r} is not an EPCIS event type")
    time = event.get("eventTime")
    if not isinstance(time, str) or canonical_time(time) is None:
        raise EpcisError(f"{kind}.eventTime", "want a date-time with seconds and an offset")
    offset = event.get("eventTimeZoneOffset")
    if not isinstance(offset, str) or not TZ_OFFSET.fullmatch(offset):
        raise EpcisError(f"{kind}.eventTimeZoneOffset", "want ±hh:mm within -14:00..+14:00")
    action = event.get("action")
    if kind == "AggregationEvent":
        parent, children = event.get("parentID"), list(event.get("childEPCs") or [])
        if action in ("ADD", "DELETE") and not parent:
            raise EpcisError(f"{kind}.parentID", f"required when action is {action}")
        if action == "ADD" and not children and not event.get("childQuantityList"):
            raise EpcisError(f"{kind}.childEPCs", "an ADD needs at least one child")
        if len(set(children)) != len(children) or parent in children:
            raise EpcisError(f"{kind}.childEPCs", "a child appears twice or is its own parent")
    if kind == "ObjectEvent" and not any(
        event.get(name) for name in ("epcList", "quantityList", "sensorElementList")
    ):
        raise EpcisError(f"{kind}.epcList", "an ObjectEvent needs EPCs or quantities")
    event_id = event.get("eventID")
    is_hash = isinstance(event_id, str) and event_id.startswith("ni:///")
    if verify_event_id and is_hash and event_id != event_hash(event, context or CONTEXT):
        raise EpcisError(f"{kind}.eventID", "is not the CBV 2.0 event hash of this event")


def stream_document(
    events: Iterable[ExportEvent],
    identifiers: Identifiers,
    created: datetime,
    sender: str | None = None,
    *,
    chunk_size: int = 1 << 16,
) -> Iterator[bytes]:
    """One EPCISDocument (compact UTF-8 JSON) holding ``events`` in order, as byte chunks of
    about ``chunk_size`` bytes. Events are pulled, converted and checked one at a time and
    nothing is kept after its chunk is yielded, so any number of events runs in constant
    memory. Raises EpcisError (naming ``creationDate`` or the event's field) or the
    InvalidArgument of :mod:`sealmark.gs1` when an event cannot be written; the chunks
    yielded before it are then not a complete document."""
    head: dict[str, Any] = {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": _created(created),
    }
    if sender is not None:
        head["sender"] = sender
    pending = [_JSON.encode(head)[:-1] + ',"epcisBody":{"eventList":[']
    size, separator = len(pending[0]), ""
    for event in events:
        body = event_json(event, identifiers)
        check_event(body, verify_event_id=False)  # the id was just computed from the body
        text = separator + _JSON.encode(body)
        pending.append(text)
        size, separator = size + len(text), ","
        if size >= chunk_size:
            yield "".join(pending).encode("utf-8")
            pending, size = [], 0
    pending.append("]}}")
    yield "".join(pending).encode("utf-8")


def _created(moment: datetime) -> str:
    try:
        return timestamp(moment)
    except EpcisError as exc:
        raise EpcisError("creationDate", exc.reason) from exc
