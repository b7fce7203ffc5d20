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
            Reason(
                "too_many_sessions",
                f"sessions > {rules.max_sessions}",
                Verdict.SUSPECT_CLONE,
                0.6,
                {"sessions": str(history.sessions), "limit": str(rules.max_sessions)},
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
                Reason(
                    "impossible_travel",
                    f"speed > {rules.travel_kmh:g} km/h beyond {rules.travel_min_km:g} km",
                    Verdict.SUSPECT_CLONE,
                    0.8,
                    {"km": f"{km:.0f}", "minutes": f"{hours * 60:.0f}"},
                )
            )
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
