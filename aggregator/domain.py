"""The packing hierarchy's rules, without storage: unit references, levels, event times,
decommission reasons and the undo window. Pure: standard library and sealmark's pure core."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import IntEnum

from sealmark.errors import FailedPrecondition, InvalidArgument
from sealmark.lifecycle import CodeState
from sealmark.units import UnitRef
from sealmark.validators import check_request_id

# as EPCIS 2.0 has it (-14:00..+14:00): a stored offset must export
OFFSET = re.compile(r"[+-]((0\d|1[0-3]):[0-5]\d|14:00)")
MAX_CHILDREN = 10_000
MAX_LOGISTICS = 1_000
FUTURE_SLACK = timedelta(minutes=5)
UNDO_WINDOW = timedelta(days=10)


class Level(IntEnum):
    ITEM = 1
    BUNDLE = 2
    CASE = 3
    PALLET = 4

    @classmethod
    def named(cls, name: str) -> Level:
        return _LEVELS[name]

    @property
    def label(self) -> str:
        return self.name.lower()


_LEVELS = {level.name.lower(): level for level in Level}


# A unit under a parent, as ListChildren streams it: (key, parent key, depth, level, state,
# market or None), keys as :attr:`UnitRef.key`.
ChildRow = tuple[str, str, int, int, str, str | None]


@dataclass(frozen=True, slots=True)
class ChildGroup:
    """The units under one parent at one depth, as ListChildren streams them, in key order.

    ``keys`` are joined by newlines (no key holds one: serials are CSET 82, SSCCs digits), so
    that a pallet's 1,440 items come from the database as 60 values, not 1,440 rows. Their
    level, state and market are ``level``, ``state`` and ``market`` when all share them (the
    usual case), else ``varying`` holds them per key."""

    depth: int
    parent: str
    keys: str
    count: int
    level: int
    state: str
    market: str | None
    varying: tuple[tuple[int, str, str | None], ...] | None = None

    def rows(self) -> list[ChildRow]:
        keys = self.keys.split("\n")
        if self.varying is None:
            return [(k, self.parent, self.depth, self.level, self.state, self.market) for k in keys]
        return [
            (k, self.parent, self.depth, level, state, market)
            for k, (level, state, market) in zip(keys, self.varying, strict=True)
        ]

    def split(self, n: int) -> tuple[ChildGroup, ChildGroup]:
        """The first ``n`` units (0 < n < count) and the rest."""
        keys = self.keys.split("\n")
        v = self.varying
        return (
            replace(self, keys="\n".join(keys[:n]), count=n, varying=v and v[:n]),
            replace(self, keys="\n".join(keys[n:]), count=self.count - n, varying=v and v[n:]),
        )

    @property
    def last_key(self) -> str:
        return self.keys.rpartition("\n")[2]


@dataclass(frozen=True)
class SsccRange:
    """SSCCs allocated to a tenant by one AllocateSsccs: extension digit, company prefix and
    serial references ``first`` .. ``first + quantity - 1``."""

    extension_digit: int
    company_prefix: str
    first: int
    quantity: int

    def holds(self, sscc: str) -> bool:
        """Whether the 18-digit ``sscc`` is one of this range's."""
        cut = 1 + len(self.company_prefix)
        return (
            sscc[:1] == str(self.extension_digit)
            and sscc[1:cut] == self.company_prefix
            and self.first <= int(sscc[cut:17]) < self.first + self.quantity
        )


def check_event_id(value: str, field: str) -> str:
    return check_request_id(value, field)


def event_time(value: datetime | None, now: datetime, field: str) -> datetime:
    """The event's time: now when unset; never more than five minutes ahead of the server."""
    if value is None:
        return now
    if value > now + FUTURE_SLACK:
        raise InvalidArgument(field, f"{value.isoformat()} is in the future")
    return value


def check_offset(value: str, field: str) -> str:
    if value and not OFFSET.fullmatch(value):
        raise InvalidArgument(field, f"{value!r}, want ±HH:MM such as +08:00")
    return value


def distinct_units(refs: list[UnitRef], field: str, low: int, high: int) -> list[UnitRef]:
    if not low <= len(refs) <= high:
        raise InvalidArgument(field, f"{len(refs)} given, want {low}..{high}")
    seen: set[str] = set()
    for ref in refs:
        if ref.key in seen:
            raise InvalidArgument(field, f"{ref} is listed twice")
        seen.add(ref.key)
    return refs


# -- states ------------------------------------------------------------------------------------

PACKABLE = frozenset({CodeState.COMMISSIONED, CodeState.RECEIVED})
SHIPPABLE = frozenset({CodeState.COMMISSIONED, CodeState.RECEIVED})
# A damaged label may be replaced wherever the unit still is in the active supply chain.
REPLACEABLE = frozenset({CodeState.COMMISSIONED, CodeState.IN_TRANSIT, CodeState.RECEIVED})
DECOMMISSION_STATES = {
    "dispensed": CodeState.DISPENSED,
    "destroyed": CodeState.DESTROYED,
    "stolen": CodeState.STOLEN,
    "locked": CodeState.LOCKED,
    "exported": CodeState.EXPORTED,
    "sample": CodeState.SAMPLED,
    "free_sample": CodeState.SAMPLED,
}
# PRODUCT.md §4: an undo is never possible from these.
NEVER_UNDONE = frozenset(
    {CodeState.RECALLED, CodeState.EXPIRED, CodeState.DESTROYED, CodeState.STOLEN}
)


def check_packable(unit: UnitRef, state: str, role: str) -> None:
    if state not in PACKABLE:  # CodeState members are their names as str
        raise FailedPrecondition(
            f"{role} {unit} is {state}: only commissioned or received units can be packed"
        )


def check_undo(
    unit: UnitRef,
    current: str,
    decommissioned_state: str,
    decided_at: datetime,
    decided_by: str,
    caller: str,
    now: datetime,
) -> None:
    """Raise FailedPrecondition unless the decommission of ``unit`` may be undone now by
    ``caller``: within ten days, by the same party, and never from a final or recalled state."""
    state = CodeState(current)
    if state in NEVER_UNDONE:
        raise FailedPrecondition(f"{unit} is {state.value}: a decommission from it is final")
    if current != decommissioned_state:
        raise FailedPrecondition(
            f"{unit} is {current}, not {decommissioned_state} as its decommission left it"
        )
    if now - decided_at > UNDO_WINDOW:
        raise FailedPrecondition(
            f"{unit} was decommissioned at {decided_at.isoformat()}: more than 10 days ago"
        )
    if decided_by != caller:
        raise FailedPrecondition(f"{unit} was decommissioned by another party: only it may undo")


def parent_level(
    parent: UnitRef,
    requested: Level | None,
    product_level: Level | None,
    stored: Level | None,
    children: list[Level],
) -> Level:
    """The parent's level: a code's is its product's; an SSCC keeps the level it was first
    packed at, else the one requested, else one above its highest child (at most a pallet)."""
    known = product_level if not parent.is_sscc else stored
    if known is not None:
        if requested is not None and requested != known:
            raise InvalidArgument(
                "parent_level", f"{requested.label} given, but {parent} is a {known.label}"
            )
        return known
    if requested is not None:
        if requested is Level.ITEM:
            raise InvalidArgument("parent_level", "an SSCC is a bundle, case or pallet")
        return requested
    return Level(min(max(children, default=Level.ITEM) + 1, Level.PALLET))
