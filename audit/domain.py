"""Audit's domain: alert kinds and their workflow, recall scopes, trace entries and what the
transparency log commits to. Pure: standard library and sealmark's pure modules only."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from sealmark.errors import FailedPrecondition, InvalidArgument
from sealmark.lifecycle import ALLOWED, CodeState


class AlertKind(StrEnum):
    CLONE = "clone"
    COUNTERFEIT = "counterfeit"
    DIVERSION = "diversion"
    PIN_REUSE = "pin_reuse"
    SERIAL_GUESSING = "serial_guessing"
    BAD_SIGNATURE = "bad_signature"
    PIN_GUESSING = "pin_guessing"
    RECALLED_SCAN = "recalled_scan"


class Severity(Enum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    CONFIRMED = "confirmed"
    FALSE_POSITIVE = "false_positive"
    DUPLICATE = "duplicate"


SEVERITY = {
    AlertKind.PIN_REUSE: Severity.CRITICAL,
    AlertKind.BAD_SIGNATURE: Severity.HIGH,
    AlertKind.COUNTERFEIT: Severity.HIGH,
    AlertKind.CLONE: Severity.HIGH,
    AlertKind.DIVERSION: Severity.MEDIUM,
    AlertKind.RECALLED_SCAN: Severity.MEDIUM,
    AlertKind.SERIAL_GUESSING: Severity.MEDIUM,
    AlertKind.PIN_GUESSING: Severity.MEDIUM,
}
# The rule behind each stored verifier alert kind, as the verifier writes it (verifier.usecases).
_STORED = {
    "suspect_clone": AlertKind.CLONE,
    "counterfeit": AlertKind.COUNTERFEIT,
    "diversion": AlertKind.DIVERSION,
    "pin_reused": AlertKind.PIN_REUSE,
    "serial_guessing": AlertKind.SERIAL_GUESSING,
    "recalled_scan": AlertKind.RECALLED_SCAN,
}
SIGNATURE_REASONS = ("bad_signature", "unknown_key", "bad_mac")
_SUMMARY = {
    AlertKind.CLONE: "copies of one code scanned in too many sessions or places",
    AlertKind.COUNTERFEIT: "a code that was never issued or never put on the market was scanned",
    AlertKind.DIVERSION: "scanned outside the market it was shipped to",
    AlertKind.PIN_REUSE: "the hidden PIN of an already opened pack was entered again",
    AlertKind.SERIAL_GUESSING: "one client scanned many unknown serials or wrong PINs",
    AlertKind.BAD_SIGNATURE: "a code with a forged or unknown signature was scanned",
    AlertKind.PIN_GUESSING: "one client entered many wrong PINs",
    AlertKind.RECALLED_SCAN: "a recalled unit was scanned",
}
NOTE_MAX = 2000


def alert_kind(stored_kind: str, details: Mapping[str, Any]) -> AlertKind:
    """What an alert stored by the verifier is, for auditors. Forged signatures are told apart
    from unknown serials (both are stored as ``counterfeit``)."""
    kind = _STORED.get(stored_kind)
    if kind is None:
        return AlertKind(stored_kind)  # raises ValueError for a kind nobody writes
    if kind is AlertKind.COUNTERFEIT and details.get("reason") in SIGNATURE_REASONS:
        return AlertKind.BAD_SIGNATURE
    return kind


def signature_alerts(kind: AlertKind | None) -> bool | None:
    """For the two kinds stored as ``counterfeit``: whether the stored reason must be a
    signature one (bad_signature) or must not be (counterfeit); None for any other kind."""
    if kind is AlertKind.BAD_SIGNATURE:
        return True
    if kind is AlertKind.COUNTERFEIT:
        return False
    return None


def stored_kinds(kind: AlertKind) -> list[str]:
    """The stored kinds an alert kind comes from (for filtering in SQL)."""
    if kind is AlertKind.BAD_SIGNATURE:
        return ["counterfeit"]
    return [stored for stored, k in _STORED.items() if k is kind] or [kind.value]


@dataclass(frozen=True)
class Alert:
    id: int
    kind: AlertKind
    status: AlertStatus
    code_key: str | None
    region: str
    raised_at: datetime
    details: dict[str, str]
    note: str = ""
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: Resolution | None = None
    actor: str = ""

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]

    @property
    def summary(self) -> str:
        return _SUMMARY[self.kind]

    @property
    def rule(self) -> str:
        return self.details.get("reason", self.kind.value)


def check_note(note: str, field_name: str, required: bool) -> str:
    note = note.strip()
    if required and not note:
        raise InvalidArgument(field_name, "required")
    if len(note) > NOTE_MAX:
        raise InvalidArgument(field_name, f"{len(note)} characters, at most {NOTE_MAX}")
    if any(ord(c) < 32 and c not in "\n\t" for c in note):
        raise InvalidArgument(field_name, "control characters are not allowed")
    return note


def check_range(since: datetime | None, until: datetime | None, name: str) -> None:
    """Time ranges are half-open [from_time, to_time); from_time after to_time is invalid."""
    if since is not None and until is not None and since > until:
        raise InvalidArgument(f"{name}.from_time", "after to_time")


def acknowledge(alert: Alert) -> bool:
    """Whether acknowledging changes ``alert`` (False: already acknowledged, a no-op).
    Raises FailedPrecondition when it is resolved."""
    if alert.status is AlertStatus.RESOLVED:
        raise FailedPrecondition(f"alert {alert.id} is resolved: it cannot be acknowledged")
    return alert.status is AlertStatus.OPEN


def check_resolvable(alert: Alert) -> None:
    if alert.status is AlertStatus.RESOLVED:
        raise FailedPrecondition(f"alert {alert.id} is already resolved")


# -- recalls ------------------------------------------------------------------------------
# States a unit can be recalled from (the lifecycle's rule). Allocated codes were never on the
# market; scrapped, returned, destroyed, sampled and exported ones are out of it.
RECALLABLE = sorted(s.value for s, targets in ALLOWED.items() if CodeState.RECALLED in targets)
REASON_MAX = 500
# What the reports count as a unit still on the market, and as a suspect verdict.
ACTIVE_STATES = ("commissioned", "in_transit", "received")
SUSPECT_VERDICTS = ("suspect_clone", "counterfeit", "diverted")
GENUINE_VERDICTS = ("authentic", "authentic_seen_before")
RECALL_CODES_MAX = 10_000


@dataclass(frozen=True)
class RecallScope:
    """Exactly one of: a lot of a GTIN, every code of a GTIN, listed codes, or a parent with
    everything it contains (unit keys as the Aggregator writes them)."""

    kind: str  # "lot" | "gtin" | "codes" | "parent"
    gtin: str = ""
    lot: str = ""
    keys: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "gtin": self.gtin, "lot": self.lot, "keys": list(self.keys)}


@dataclass(frozen=True)
class RecallReport:
    recall_id: str
    effective_at: datetime
    units_affected: int
    by_shipment_market: list[tuple[str, int]]
    by_last_scan_region: list[tuple[str, int]]
    scans_since_recall: int
    units_not_shipped: int
    units_dispensed: int
    duplicate: bool = False
    reason: str = ""


# -- trace --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceEvent:
    """A recorded event in a code's life (issued, commissioned, packed, shipped, …)."""

    type: str  # the CodeEvent EventType name without prefix: ISSUED, PACKED, SHIPPED, …
    event_id: str
    time: datetime
    state: str = ""
    parent: str | None = None
    inherited_from: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    key_id: str = ""
    work_order: str = ""
    line_id: str = ""
    recorded_at: datetime | None = None
    epcis_event_id: str = ""  # the eventID of its EPCIS export, when recorded with one


@dataclass(frozen=True)
class TraceScan:
    verification_id: str
    time: datetime
    verdict: str
    region: str
    reasons: list[str]
    risk_score: float


TraceItem = TraceEvent | TraceScan | Alert


def trace_time(item: TraceItem) -> datetime:
    if isinstance(item, Alert):
        return item.raised_at
    return item.time


def in_order(items: Sequence[TraceItem]) -> list[TraceItem]:
    """Oldest first; at equal times events before scans before alerts (an alert follows the
    scan that raised it)."""
    rank = {TraceEvent: 0, TraceScan: 1, Alert: 2}
    return sorted(items, key=lambda i: (trace_time(i), rank[type(i)]))


# -- transparency log ---------------------------------------------------------------------
COMMITMENT_DOMAIN = b"sealmark/unit/v1\n"


def unit_commitment(unit_key: str, signature: str = "") -> bytes:
    """What the log holds for a unit instead of its serial: SHA-256 over a domain tag, the unit
    key and, for a signed code, its signature (the AI 8030 text). The EU FMD bound leaves
    serial spaces small enough to enumerate; the signature is printed only on the pack, so
    whoever holds the pack can recompute the commitment and nobody else can reverse it. SSCCs
    (logistic units, not secrets) carry no signature."""
    material = COMMITMENT_DOMAIN + unit_key.encode() + b"\n" + signature.encode()
    return hashlib.sha256(material).digest()


def entry_bytes(fields: Mapping[str, Any]) -> bytes:
    """A log entry as stored and hashed: canonical JSON (sorted keys, no spaces, UTF-8)."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
