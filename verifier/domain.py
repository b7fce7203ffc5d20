"""Verification: what a scan is, the rules that judge it, and the verdict they reach.

Pure: no I/O. The use case (verifier.usecases) gathers the facts (signature, the stored code,
the serial's scan history) and :func:`decide` turns them into one verdict with its reasons and
a risk score. Rules and thresholds follow PRODUCT.md §4 and are configurable per tenant.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from sealmark.errors import InvalidArgument
from sealmark.lifecycle import CodeState

MAX_PAYLOAD_BYTES = 4096
MAX_PIN_CHARS = 32
MAX_CONTEXT_CHARS = 128
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # C0 controls and DEL


class Verdict(StrEnum):
    AUTHENTIC = "authentic"
    AUTHENTIC_SEEN_BEFORE = "authentic_seen_before"
    SUSPECT_CLONE = "suspect_clone"
    COUNTERFEIT = "counterfeit"
    RECALLED = "recalled"
    EXPIRED = "expired"
    INACTIVE = "inactive"
    DIVERTED = "diverted"
    INVALID = "invalid"


# Most decisive first: a recalled clone is reported as a clone would mislead nobody, but a
# counterfeit must never be reported as anything milder.
PRECEDENCE = [
    Verdict.INVALID,
    Verdict.COUNTERFEIT,
    Verdict.RECALLED,
    Verdict.INACTIVE,
    Verdict.SUSPECT_CLONE,
    Verdict.EXPIRED,
    Verdict.DIVERTED,
    Verdict.AUTHENTIC_SEEN_BEFORE,
    Verdict.AUTHENTIC,
]


@dataclass(frozen=True)
class Rules:
    """A tenant's verification rules (table verify_rules; defaults from PRODUCT.md §4)."""

    max_sessions: int = 3  # more distinct sessions than this on one serial: suspect clone
    travel_kmh: float = 1000.0  # faster than this between two scans: impossible travel ...
    travel_min_km: float = 50.0  # ... unless they are closer than this (coarse locations)
    guess_limit: int = 20  # not-found serials / bad signatures / wrong PINs per client ...
    guess_window_s: int = 600  # ... in this window: serial guessing, alert and rate limit
    rate_per_minute: int = 120  # verifications per client per minute


@dataclass(frozen=True)
class ClientContext:
    session_id: str = ""
    device_id: str = ""
    latitude: float | None = None
    longitude: float | None = None
    region: str = ""  # ISO 3166-1/-2, upper case
    locale: str = "en"
    client: str = ""  # who to rate-limit: the client address as the server saw it

    @property
    def country(self) -> str:
        return self.region.split("-", 1)[0]

    @property
    def located(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    @property
    def session_key(self) -> str:
        """What counts as one session: the session id, else the device, else the client."""
        return self.session_id or self.device_id or self.client


def checked_context(context: ClientContext, name: str) -> ClientContext:
    """The context with its fields validated (InvalidArgument naming the field)."""
    for attr in ("session_id", "device_id", "region", "locale"):
        value = getattr(context, attr)
        if len(value) > MAX_CONTEXT_CHARS:
            raise InvalidArgument(f"{name}.{attr}", f"over {MAX_CONTEXT_CHARS} characters")
        if _CONTROL.search(value):
            raise InvalidArgument(f"{name}.{attr}", "control characters are not allowed")
    if (context.latitude is None) != (context.longitude is None):
        raise InvalidArgument(f"{name}.latitude", "give latitude and longitude together")
    if context.latitude is not None and not -90.0 <= context.latitude <= 90.0:
        raise InvalidArgument(f"{name}.latitude", f"{context.latitude} is outside -90..90")
    if context.longitude is not None and not -180.0 <= context.longitude <= 180.0:
        raise InvalidArgument(f"{name}.longitude", f"{context.longitude} is outside -180..180")
    for value, attr in ((context.latitude, "latitude"), (context.longitude, "longitude")):
        if value is not None and not math.isfinite(value):
            raise InvalidArgument(f"{name}.{attr}", "not a number")
    region = context.region.strip().upper()
    if region and not _is_region(region):
        raise InvalidArgument(f"{name}.region", f"{context.region!r} is not an ISO 3166 code")
    return ClientContext(
        session_id=context.session_id,
        device_id=context.device_id,
        # Coarse on purpose: about 1 km is all the travel rule needs, and all we keep.
        latitude=None if context.latitude is None else round(context.latitude, 2),
        longitude=None if context.longitude is None else round(context.longitude, 2),
        region=region,
        locale=context.locale or "en",
        client=context.client,
    )


def _is_region(value: str) -> bool:
    country, _, sub = value.partition("-")
    return (
        len(country) == 2
        and country.isascii()
        and country.isalpha()
        and (not sub or (1 <= len(sub) <= 3 and sub.isascii() and sub.isalnum()))
    )


@dataclass(frozen=True)
class Reason:
    code: str  # machine-readable: "pin_reused", "impossible_travel", ...
    rule: str  # the rule and its threshold: "sessions > 3"
    verdict: Verdict  # what this reason alone would make of the scan
    weight: float  # its share of the risk score, 0..1
    params: dict[str, str] = field(default_factory=dict)  # for the message templates


@dataclass(frozen=True)
class ReasonSpec:
    """A reason code's rule (a template when it names a threshold), the verdict it alone
    would reach and its weight in the risk score."""

    rule: str
    verdict: Verdict
    weight: float


# The reason catalogue: every code a verification can give. The one place for rules, verdicts
# and weights; the consumer's texts are in verifier.messages, keyed by the same codes.
REASONS: dict[str, ReasonSpec] = {
    "unparseable": ReasonSpec(
        "payload is a GS1 Digital Link, element string or HRI", Verdict.INVALID, 0.0
    ),
    "not_our_code": ReasonSpec(
        "GTIN under a company prefix of a Sealmark brand", Verdict.INVALID, 0.0
    ),
    # HRI text as printed under the symbol leaves the signature out: the serial is still
    # checked against those issued (a guessed one is never_issued), the signature is not.
    "no_signature": ReasonSpec(
        "signature checked when the scan carries it", Verdict.AUTHENTIC, 0.1
    ),
    "bad_signature": ReasonSpec("Ed25519 signature over the code", Verdict.COUNTERFEIT, 1.0),
    "unknown_key": ReasonSpec("signed by one of the brand's keys", Verdict.COUNTERFEIT, 1.0),
    # Compact-profile codes: a 64-bit MAC in AI (92), checked online only (sealmark.crypto.mac).
    "no_mac": ReasonSpec("MAC checked when the scan carries it", Verdict.AUTHENTIC, 0.1),
    "bad_mac": ReasonSpec(
        "MAC over GTIN, serial and key id (compact code)", Verdict.COUNTERFEIT, 1.0
    ),
    "never_issued": ReasonSpec("serial issued by the brand", Verdict.COUNTERFEIT, 1.0),
    "never_commissioned": ReasonSpec("code printed and commissioned", Verdict.COUNTERFEIT, 1.0),
    "returned": ReasonSpec("code printed and commissioned", Verdict.COUNTERFEIT, 1.0),
    "scrapped": ReasonSpec("label not scrapped", Verdict.COUNTERFEIT, 1.0),
    "recalled": ReasonSpec("product not recalled", Verdict.RECALLED, 0.3),
    "inactive": ReasonSpec("code still active", Verdict.INACTIVE, 0.5),
    "expired": ReasonSpec("expiry date not passed", Verdict.EXPIRED, 0.2),
    "pin_reused": ReasonSpec("hidden PIN used once", Verdict.SUSPECT_CLONE, 0.95),
    "pin_wrong": ReasonSpec("hidden PIN as printed", Verdict.AUTHENTIC, 0.2),
    "pin_confirmed": ReasonSpec("hidden PIN used once", Verdict.AUTHENTIC, 0.0),
    "too_many_sessions": ReasonSpec("sessions > {max_sessions}", Verdict.SUSPECT_CLONE, 0.6),
    "impossible_travel": ReasonSpec(
        "speed > {travel_kmh:g} km/h beyond {travel_min_km:g} km", Verdict.SUSPECT_CLONE, 0.8
    ),
    "diverted": ReasonSpec("scanned in the market it was shipped to", Verdict.DIVERTED, 0.5),
    "seen_before": ReasonSpec("first verification", Verdict.AUTHENTIC_SEEN_BEFORE, 0.05),
}


def reason(code: str, params: dict[str, str] | None = None, **thresholds: float) -> Reason:
    """The catalogue's reason ``code`` with its message ``params``; ``thresholds`` fill in
    a rule that names them (``max_sessions``, ``travel_kmh``...). KeyError for a code not
    in the catalogue (a bug: every code must have a rule and a text)."""
    spec = REASONS[code]
    rule = spec.rule.format(**thresholds) if thresholds else spec.rule
    return Reason(code, rule, spec.verdict, spec.weight, params or {})


@dataclass(frozen=True)
class Product:
    gtin: str
    name: str
    lot: str
    expiry: date | None
    production_date: date | None
    brand: str


@dataclass(frozen=True)
class History:
    """What was known of a serial before this scan (from Redis, or rebuilt from PostgreSQL)."""

    first_at: datetime | None = None
    first_region: str = ""
    last_at: datetime | None = None
    last_latitude: float | None = None
    last_longitude: float | None = None
    sessions: int = 0  # distinct sessions, this scan's included


@dataclass(frozen=True)
class Verification:
    """The answer to one scan."""

    verification_id: str
    verdict: Verdict
    reasons: list[Reason]
    risk_score: float
    verified_at: datetime
    serial: str = ""
    product: Product | None = None
    first_verified_at: datetime | None = None
    first_verified_region: str = ""
    session_count: int = 0
    pin_available: bool = False
    pin_confirmed: bool = False
    degraded: bool = False
    tenant_id: str = ""  # empty for INVALID and for codes of no tenant
    alerts: list[str] = field(default_factory=list)  # kinds of the alerts this scan raised


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius 6,371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


def clone_reasons(
    rules: Rules, history: History, context: ClientContext, now: datetime
) -> list[Reason]:
    """The per-serial rules: too many sessions, impossible travel."""
    out = []
    if history.sessions > rules.max_sessions:
        out.append(
            reason(
                "too_many_sessions",
                {"sessions": str(history.sessions), "limit": str(rules.max_sessions)},
                max_sessions=rules.max_sessions,
            )
        )
    if (
        context.latitude is not None
        and context.longitude is not None
        and history.last_at is not None
        and history.last_latitude is not None
        and history.last_longitude is not None
    ):
        km = distance_km(
            history.last_latitude, history.last_longitude, context.latitude, context.longitude
        )
        hours = max((now - history.last_at).total_seconds(), 1.0) / 3600
        if km > rules.travel_min_km and km / hours > rules.travel_kmh:
            out.append(
                reason(
                    "impossible_travel",
                    {"km": f"{km:.0f}", "minutes": f"{hours * 60:.0f}"},
                    travel_kmh=rules.travel_kmh,
                    travel_min_km=rules.travel_min_km,
                )
            )
    return out


# States in which a scan is a consumer meeting a pack in the market (its first verification).
ACTIVE_STATES = {CodeState.COMMISSIONED, CodeState.IN_TRANSIT, CodeState.RECEIVED}
# States in which a scan is of a code out of circulation (reason "inactive").
INACTIVE_STATES = {
    CodeState.DISPENSED,
    CodeState.DESTROYED,
    CodeState.SAMPLED,
    CodeState.STOLEN,
    CodeState.LOCKED,
    CodeState.EXPORTED,
}


def state_reasons(state: CodeState, expiry: date | None, today: date) -> list[Reason]:
    """What the stored code's lifecycle state and expiry say, before any scan history."""
    out = []
    if state is CodeState.ALLOCATED:
        out.append(reason("never_commissioned", {}))
    elif state is CodeState.RETURNED:
        out.append(reason("returned", {}))
    elif state is CodeState.SCRAPPED:
        out.append(reason("scrapped", {}))
    elif state is CodeState.RECALLED:
        out.append(reason("recalled", {}))
    elif state in INACTIVE_STATES:
        out.append(reason("inactive", {"state": state.value}))
    if state is CodeState.EXPIRED or (expiry is not None and expiry < today):
        shown = expiry.isoformat() if expiry else ""
        out.append(reason("expired", {"expiry": shown}))
    return out


def decide(reasons: list[Reason]) -> tuple[Verdict, float]:
    """The most decisive verdict among the reasons (AUTHENTIC when none), and the risk score:
    1 - Π(1 - weight), so independent signals add up without passing 1."""
    if not reasons:
        return Verdict.AUTHENTIC, 0.0
    verdict = min((r.verdict for r in reasons), key=PRECEDENCE.index)
    keep = 1.0
    for reason in reasons:
        keep *= 1.0 - reason.weight
    return verdict, round(1.0 - keep, 4)
