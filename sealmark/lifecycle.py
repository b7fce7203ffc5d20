"""Serial-number lifecycle (after OPEN-SCS / OPC 30260 and the EU hub pack states). Pure.

    allocated ──► commissioned ──► in_transit ──► received ──► (in_transit again) …
        │              │  └──► dispensed | destroyed | sampled | stolen | locked | exported
        ├──► returned  │       | recalled | expired | scrapped (damaged label replaced)
        └──► scrapped  └──► …

returned, scrapped and destroyed are final: the serial is never used again. Undo of a
decommission (dispensed, locked, exported, sampled) is a separate rule with a time limit.
"""

from __future__ import annotations

from enum import StrEnum

from sealmark.errors import FailedPrecondition


class CodeState(StrEnum):
    ALLOCATED = "allocated"
    COMMISSIONED = "commissioned"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    RETURNED = "returned"
    SCRAPPED = "scrapped"
    DISPENSED = "dispensed"
    DESTROYED = "destroyed"
    SAMPLED = "sampled"
    STOLEN = "stolen"
    LOCKED = "locked"
    RECALLED = "recalled"
    EXPIRED = "expired"
    EXPORTED = "exported"


S = CodeState
_DECOMMISSION = {
    S.DISPENSED,
    S.DESTROYED,
    S.SAMPLED,
    S.STOLEN,
    S.LOCKED,
    S.RECALLED,
    S.EXPIRED,
    S.EXPORTED,
}
ALLOWED: dict[CodeState, frozenset[CodeState]] = {
    S.ALLOCATED: frozenset({S.COMMISSIONED, S.RETURNED, S.SCRAPPED}),
    S.COMMISSIONED: frozenset({S.IN_TRANSIT, S.SCRAPPED, *_DECOMMISSION}),
    S.IN_TRANSIT: frozenset({S.RECEIVED, S.STOLEN, S.DESTROYED, S.RECALLED, S.EXPIRED, S.LOCKED}),
    S.RECEIVED: frozenset({S.IN_TRANSIT, *_DECOMMISSION}),
    S.LOCKED: frozenset({S.DESTROYED, S.RECALLED, S.EXPIRED}),
    S.STOLEN: frozenset({S.RECALLED}),
    S.RECALLED: frozenset({S.DESTROYED}),
    S.EXPIRED: frozenset({S.DESTROYED, S.RECALLED}),
    S.DISPENSED: frozenset({S.RECALLED}),
    S.SAMPLED: frozenset({S.DESTROYED}),
    S.EXPORTED: frozenset(),
    S.RETURNED: frozenset(),
    S.SCRAPPED: frozenset(),
    S.DESTROYED: frozenset(),
}
FINAL = frozenset(state for state, targets in ALLOWED.items() if not targets)


def check_transition(code: str, current: CodeState, target: CodeState) -> None:
    """Raise FailedPrecondition naming the code and its state unless current → target is legal."""
    if target not in ALLOWED[current]:
        raise FailedPrecondition(f"code {code} is {current.value}: cannot become {target.value}")
