"""The events Sealmark exports as EPCIS 2.0, as plain frozen values: the exporter's input.

Identifiers are our internal keys, never URIs: an item is the pair ``(gtin14, serial)``, a
logistic unit an 18-digit SSCC string. The exporter decides how to write them (Digital Link
or EPC URN, :mod:`sealmark.epcis.document`).

How each kind is expressed in EPCIS / CBV 2.0:

=============  ========================================================================
Commission     ObjectEvent ADD, ``commissioning``, ``active``; ilmd ``cbvmda:lotNumber``
               and ``cbvmda:itemExpirationDate`` when known
Pack           AggregationEvent ADD, ``packing``, ``in_progress`` (or the ``step`` and
               ``disposition`` of what it is part of: ``repackaging``, ``replacing``)
Unpack         AggregationEvent DELETE, ``unpacking``, ``in_progress`` (likewise); no
               children = everything unpacked
Ship           ObjectEvent OBSERVE, ``shipping``, ``in_transit``; the receiving party in
               ``destinationList``; the destination *market* (ISO 3166, e.g. ``DE``,
               ``CN-31``) as the extension ``sealmark:market``, because CBV has no
               source/destination type for a market and a country code is not a location
Receive        ObjectEvent OBSERVE, ``receiving``, ``in_progress``; the sending party in
               ``sourceList``
Sample         ObjectEvent OBSERVE, ``sampling``, ``non_sellable_other``
Replace        ObjectEvent OBSERVE of the damaged label, ``replacing``, ``inactive``, with
               the new label as the extension ``sealmark:replacedBy``
Decommission   ObjectEvent with the bizStep, disposition and action of its
               :class:`Retirement`: only destruction is a DELETE (the object ceased to
               exist); a decommissioned, dispensed, stolen or expired pack still exists
Restore        ObjectEvent OBSERVE, the disposition the units return to, extension
               ``sealmark:undoes`` = ``decommissioning``: CBV has no step that reverses a
               decommission, so there is no bizStep
LotStatus      ObjectEvent OBSERVE of the lot's class (``quantityList``, no quantity: a hold
               covers codes not yet issued), ``holding``: ``sellable_not_accessible`` when
               held, ``sellable_accessible`` when released
Recall         ObjectEvent OBSERVE, ``holding``, ``recalled``: the units are taken aside;
               CBV 2.0 has no recall step, and holding is the step that segregates objects
=============  ========================================================================

Every event may carry ``read_point`` / ``biz_location`` (location URIs), business
transactions (``bizTransactionList``), sources and destinations (``sourceList`` /
``destinationList``) and the caller's free-text reason or note, ``note`` (extension
``sealmark:reason``).

Errors: ``EpcisError`` (an :class:`~sealmark.errors.InvalidArgument` and a ``ValueError``)
names the offending field; invalid GTINs, serials, SSCCs and lots raise the InvalidArgument
of :mod:`sealmark.gs1`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

from sealmark.errors import InvalidArgument
from sealmark.gs1.ai import validate_value
from sealmark.gs1.checkdigit import validate_sscc
from sealmark.tenancy.model import validate_market

ItemKey = tuple[str, str]
"""An item: (GTIN-14, serial)."""
Key = ItemKey | str
"""An item key, or an SSCC-18 for a logistic unit."""

TZ_OFFSET = re.compile(r"[+-]((0\d|1[0-3]):[0-5]\d|14:00)")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_SERIAL = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")  # AI 21: CSET 82, 1..20
# CBV 2.0 short names; anything else must be a URI.
BIZ_TRANSACTION_TYPES = frozenset(
    {"bol", "cert", "desadv", "inv", "pedigree", "po", "poc", "prodorder", "recadv", "rma"}
    | {"testprd", "testres", "upevt"}
)
SOURCE_DEST_TYPES = frozenset({"owning_party", "possessing_party", "location"})
Link = tuple[str, str]
"""A typed reference: (CBV type or type URI, identifier URI)."""


class EpcisError(InvalidArgument, ValueError):
    """An event that breaks an EPCIS / CBV rule. ``field`` names the field."""


class Retirement(Enum):
    """Why a code left the supply chain: (action, bizStep, disposition) in CBV 2.0 terms."""

    DECOMMISSIONED = ("OBSERVE", "decommissioning", "inactive")
    NON_SELLABLE = ("OBSERVE", "decommissioning", "non_sellable_other")  # locked, sampled
    SCRAPPED = ("DELETE", "decommissioning", "damaged")  # a label damaged before use
    DESTROYED = ("DELETE", "destroying", "destroyed")
    DISPENSED = ("OBSERVE", "dispensing", "dispensed")
    STOLEN = ("OBSERVE", "decommissioning", "stolen")
    EXPIRED = ("OBSERVE", "decommissioning", "expired")

    @property
    def action(self) -> str:
        return self.value[0]

    @property
    def biz_step(self) -> str:
        return self.value[1]

    @property
    def disposition(self) -> str:
        return self.value[2]


def validate_key(key: object, field: str) -> Key:
    """Return ``key`` if it is an (GTIN-14, serial) pair or an SSCC-18; raise
    InvalidArgument naming ``field`` (``field.gtin``, ``field.serial``) otherwise."""
    if isinstance(key, str):
        return validate_sscc(key, field)
    if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key):
        gtin, serial = key
        if len(gtin) != 14:
            raise InvalidArgument(f"{field}.gtin", f"{gtin[:20]!r}: want a GTIN-14")
        validate_value("01", gtin, f"{field}.gtin")
        validate_value("21", serial, f"{field}.serial")
        return (gtin, serial)
    raise InvalidArgument(field, "want a (gtin14, serial) pair or an SSCC-18 string")


def _keys(keys: tuple[Key, ...], field: str, *, required: bool = True) -> None:
    if required and not keys:
        raise EpcisError(field, "at least one identifier is required")
    gtins: set[str] = set()  # the items of a case mostly share one GTIN: check it once
    for i, key in enumerate(keys):
        if isinstance(key, tuple) and len(key) == 2 and key[0] in gtins:
            if not (isinstance(key[1], str) and _SERIAL.fullmatch(key[1])):
                validate_key(key, f"{field}[{i}]")  # raises, naming what is wrong
            continue
        validate_key(key, f"{field}[{i}]")
        if isinstance(key, tuple):
            gtins.add(key[0])
    if len(set(keys)) != len(keys):
        raise EpcisError(field, "an identifier appears twice")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    """What every exported event has: when, in which local offset, and optionally where.

    ``event_time`` must be timezone-aware; ``tz_offset`` is ``±hh:mm`` (−14:00..+14:00);
    ``read_point`` and ``biz_location`` are location URIs (SGLN URN or GLN Digital Link)
    written as given. Raises EpcisError naming the field.
    """

    event_time: datetime
    tz_offset: str
    read_point: str | None = None
    biz_location: str | None = None
    biz_transactions: tuple[Link, ...] = ()
    sources: tuple[Link, ...] = ()
    destinations: tuple[Link, ...] = ()
    note: str | None = None

    def __post_init__(self) -> None:
        if self.event_time.tzinfo is None or self.event_time.utcoffset() is None:
            raise EpcisError("event_time", "must be timezone-aware")
        if not TZ_OFFSET.fullmatch(self.tz_offset):
            raise EpcisError("tz_offset", f"{self.tz_offset[:20]!r}: want ±hh:mm, -14:00..+14:00")
        for name in ("read_point", "biz_location"):
            value = getattr(self, name)
            if value is not None and not _URI.fullmatch(value):
                raise EpcisError(name, f"{value[:60]!r} is not a URI")
        _links(self.biz_transactions, "biz_transactions", BIZ_TRANSACTION_TYPES)
        _links(self.sources, "sources", SOURCE_DEST_TYPES)
        _links(self.destinations, "destinations", SOURCE_DEST_TYPES)


def _links(links: tuple[Link, ...], field: str, words: frozenset[str]) -> None:
    for i, (kind, ident) in enumerate(links):
        if kind not in words and not _URI.fullmatch(kind):
            raise EpcisError(f"{field}[{i}].type", f"{kind[:40]!r}: want a CBV name or a URI")
        if not _URI.fullmatch(ident):
            raise EpcisError(f"{field}[{i}]", f"{ident[:60]!r} is not a URI")


# The CBV 2.0 steps a packing event may name: what it is part of.
AGGREGATION_STEPS = frozenset({"packing", "unpacking", "repackaging", "replacing"})


def _step_and_disposition(step: str, disposition: str) -> None:
    if step not in AGGREGATION_STEPS:
        raise EpcisError(
            "step", f"{step[:40]!r}: want one of {', '.join(sorted(AGGREGATION_STEPS))}"
        )
    if disposition not in DISPOSITIONS:
        raise EpcisError("disposition", f"{disposition[:40]!r} is not a CBV disposition")


@dataclass(frozen=True, slots=True, kw_only=True)
class Commission(_Event):
    """Codes printed, verified and made active; ``lot`` and ``expiry`` go in the ilmd."""

    epcs: tuple[Key, ...]
    lot: str | None = None
    expiry: date | None = None

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        _keys(self.epcs, "epcs")
        if self.lot is not None:
            validate_value("10", self.lot, "lot")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pack(_Event):
    """``children`` (at least one) put into ``parent``."""

    parent: Key
    children: tuple[Key, ...]
    step: str = "packing"
    disposition: str = "in_progress"

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        validate_key(self.parent, "parent")
        _keys(self.children, "children")
        if self.parent in self.children:
            raise EpcisError("children", "a parent cannot contain itself")
        _step_and_disposition(self.step, self.disposition)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unpack(_Event):
    """``children`` taken out of ``parent``; no children means everything was taken out."""

    parent: Key
    children: tuple[Key, ...] = ()
    step: str = "unpacking"
    disposition: str = "in_progress"

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        validate_key(self.parent, "parent")
        _keys(self.children, "children", required=False)
        _step_and_disposition(self.step, self.disposition)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ship(_Event):
    """``epcs`` shipped, optionally to a ``market``."""

    epcs: tuple[Key, ...]
    market: str | None = None

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        _keys(self.epcs, "epcs")
        if self.market is not None:
            validate_market(self.market, "market")


@dataclass(frozen=True, slots=True, kw_only=True)
class Receive(_Event):
    """``epcs`` received."""

    epcs: tuple[Key, ...]

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        _keys(self.epcs, "epcs")


@dataclass(frozen=True, slots=True, kw_only=True)
class Decommission(_Event):
    """``epcs`` taken out of the supply chain for ``reason``."""

    epcs: tuple[Key, ...]
    reason: Retirement = Retirement.DECOMMISSIONED

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        _keys(self.epcs, "epcs")


@dataclass(frozen=True, slots=True, kw_only=True)
class Recall(_Event):
    """``epcs`` recalled by the brand."""

    epcs: tuple[Key, ...]

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        _keys(self.epcs, "epcs")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample(_Event):
    """``epcs`` taken out for quality control."""

    epcs: tuple[Key, ...]

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        _keys(self.epcs, "epcs")


@dataclass(frozen=True, slots=True, kw_only=True)
class Replace(_Event):
    """The damaged label ``old`` replaced by ``new``."""

    old: Key
    new: Key

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        validate_key(self.old, "old")
        validate_key(self.new, "new")
        if self.old == self.new:
            raise EpcisError("new", "is the old label itself")


DISPOSITIONS = frozenset(
    {"active", "container_closed", "damaged", "destroyed", "dispensed", "disposed", "encoded"}
    | {"expired", "in_progress", "in_transit", "inactive", "no_pedigree_match"}
    | {"non_sellable_other", "partially_dispensed", "recalled", "reserved", "retail_sold"}
    | {"returned", "sellable_accessible", "sellable_not_accessible", "stolen", "unknown"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Restore(_Event):
    """A decommission of ``epcs`` undone; ``disposition`` (a CBV 2.0 disposition) is what
    they return to, None when it is not one for all of them."""

    epcs: tuple[Key, ...]
    disposition: str | None = None

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        _keys(self.epcs, "epcs")
        if self.disposition is not None and self.disposition not in DISPOSITIONS:
            raise EpcisError("disposition", f"{self.disposition[:40]!r} is not a CBV disposition")


@dataclass(frozen=True, slots=True, kw_only=True)
class LotStatus(_Event):
    """Lot ``lot`` of ``gtin`` put on hold (``held``) or released."""

    gtin: str
    lot: str
    held: bool

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        validate_key((self.gtin, "0"), "gtin")
        validate_value("10", self.lot, "lot")


ExportEvent = (
    Commission
    | Pack
    | Unpack
    | Ship
    | Receive
    | Decommission
    | Recall
    | Sample
    | Replace
    | Restore
    | LotStatus
)
"""Every event kind the exporter writes."""
