"""The brand dashboard's use case: the panels an auditor sees (scans per day and per region,
the verdict mix, unresolved alerts, clone hotspots, lots nearing expiry in the market, recalls
and their reach), each a table, a chart of it and its CSV, read through the report ports
(:class:`audit.ports.ReportStore`) for the principal's tenant only.

:class:`DashboardQuery` is the page's query string, validated: every refusal is an
InvalidArgument naming the parameter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from audit.charts import BarChart, Series, describe, render_svg
from audit.domain import GENUINE_VERDICTS, SEVERITY, SUSPECT_VERDICTS, AlertKind, alert_kind
from audit.ports import AuditStorage, ReportStore
from audit.reports import Table, render
from sealmark.clock import Clock
from sealmark.errors import InvalidArgument
from sealmark.tenancy.model import Principal, Role

PANELS = (
    "scans_per_day",
    "scans_per_region",
    "verdict_mix",
    "open_alerts",
    "clones",
    "nearing_expiry",
    "recalls",
)
RANGE_DAYS_DEFAULT = 30
RANGE_DAYS_MAX = 366  # a year of days is still a readable chart
DAYS_AHEAD_DEFAULT = 90
DAYS_AHEAD_MAX = 3650
LIMIT_DEFAULT = 20
LIMIT_MAX = 500
PARAMETERS = ("from", "to", "days_ahead", "limit")


@dataclass(frozen=True)
class DashboardQuery:
    """What the page shows: scans and alerts raised from ``first`` to ``last`` (UTC days, both
    included), lots expiring within ``days_ahead`` days, at most ``limit`` rows per table."""

    first: date
    last: date
    days_ahead: int = DAYS_AHEAD_DEFAULT
    limit: int = LIMIT_DEFAULT

    @classmethod
    def parse(cls, params: Mapping[str, Sequence[str]], today: date) -> DashboardQuery:
        """From a parsed query string (name → values). Raises InvalidArgument naming the
        parameter: unknown, repeated, malformed or out of bounds."""
        for name, values in params.items():
            if name not in PARAMETERS:
                shown = name[:32].encode("ascii", "replace").decode()
                raise InvalidArgument(
                    shown, f"unknown parameter, want one of {', '.join(PARAMETERS)}"
                )
            if len(values) > 1:
                raise InvalidArgument(name, "given more than once")

        def one(name: str) -> str:
            values = params.get(name) or [""]
            return values[0].strip()

        last = _date(one("to"), "to") if one("to") else today
        first = (
            _date(one("from"), "from")
            if one("from")
            else last - timedelta(days=RANGE_DAYS_DEFAULT - 1)
        )
        query = cls(
            first=first,
            last=last,
            days_ahead=_int(one("days_ahead"), "days_ahead", DAYS_AHEAD_DEFAULT, 1, DAYS_AHEAD_MAX),
            limit=_int(one("limit"), "limit", LIMIT_DEFAULT, 1, LIMIT_MAX),
        )
        return query.checked()

    def checked(self) -> DashboardQuery:
        if self.first > self.last:
            raise InvalidArgument("from", f"{self.first} is after to ({self.last})")
        days = (self.last - self.first).days + 1
        if days > RANGE_DAYS_MAX:
            raise InvalidArgument("to", f"a range of {days} days, at most {RANGE_DAYS_MAX}")
        if not 1 <= self.days_ahead <= DAYS_AHEAD_MAX:
            raise InvalidArgument("days_ahead", f"{self.days_ahead}, want 1..{DAYS_AHEAD_MAX}")
        if not 1 <= self.limit <= LIMIT_MAX:
            raise InvalidArgument("limit", f"{self.limit}, want 1..{LIMIT_MAX}")
        return self

    @property
    def since(self) -> datetime:
        return datetime.combine(self.first, time(), UTC)

    @property
    def until(self) -> datetime:
        """The end of the range, excluded: midnight after ``last``."""
        return datetime.combine(self.last + timedelta(days=1), time(), UTC)

    def as_params(self) -> dict[str, str]:
        """The query string that names this query (for the CSV links)."""
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "days_ahead": str(self.days_ahead),
            "limit": str(self.limit),
        }


def _date(text: str, name: str) -> date:
    if len(text) != 10:
        raise InvalidArgument(name, "want a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(name, "want a date as YYYY-MM-DD") from None


def _int(text: str, name: str, default: int, low: int, high: int) -> int:
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise InvalidArgument(name, f"want a whole number {low}..{high}")
    value = int(text)
    if not low <= value <= high:
        raise InvalidArgument(name, f"{value}, want {low}..{high}")
    return value


@dataclass(frozen=True)
class Panel:
    """One panel: its table (what the CSV holds, and the data table beside the chart) and
    the chart drawn from it."""

    name: str
    table: Table
    chart: BarChart
    note: str = ""

    @property
    def svg(self) -> str:
        return render_svg(self.chart)

    def csv(self) -> bytes:
        return render(self.table, "csv")


class Dashboard:
    """Builds the panels of one tenant for one query. Every read is scoped by the principal's
    tenant; the principal needs the auditor role (admin may too)."""

    def __init__(self, storage: AuditStorage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    def today(self) -> date:
        return self._clock.now().astimezone(UTC).date()

    def panels(self, principal: Principal, query: DashboardQuery) -> list[Panel]:
        principal.require(Role.AUDITOR)
        with self._storage.reads() as store:
            reads = _Reads(store, principal.tenant_id, query)
            return [self._panel(reads, name) for name in PANELS]

    def panel(self, principal: Principal, query: DashboardQuery, name: str) -> Panel:
        """One panel by name (InvalidArgument ``panel`` for a name not in :data:`PANELS`)."""
        principal.require(Role.AUDITOR)
        if name not in PANELS:
            raise InvalidArgument("panel", f"want one of {', '.join(PANELS)}")
        with self._storage.reads() as store:
            return self._panel(_Reads(store, principal.tenant_id, query), name)

    def _panel(self, reads: _Reads, name: str) -> Panel:
        builder = {
            "scans_per_day": _scans_per_day,
            "scans_per_region": _scans_per_region,
            "verdict_mix": _verdict_mix,
            "open_alerts": _open_alerts,
            "clones": _clones,
            "nearing_expiry": self._nearing_expiry,
            "recalls": _recalls,
        }[name]
        return builder(reads)

    def _nearing_expiry(self, reads: _Reads) -> Panel:
        store, tenant, q = reads.store, reads.tenant, reads.query
        today = self.today()
        rows = store.nearing_expiry(tenant, None, None, today, today + timedelta(days=q.days_ahead))
        rows = rows[: q.limit]
        return _panel(
            "nearing_expiry",
            f"Units in the market expiring within {q.days_ahead} days, by lot and market",
            ["gtin", "lot", "expiry", "market", "units"],
            rows,
            [f"{r[1] or '(no lot)'} · {r[2].isoformat()} · {r[3] or '(no market)'}" for r in rows],
            {"units": 4},
            over="lots and markets",
            unit="units",
            note="Active units (commissioned, shipped or received), soonest expiry first.",
        )


def _panel(
    name: str,
    title: str,
    columns: list[str],
    rows: list[list[Any]],
    labels: list[str],
    series: Mapping[str, int],
    *,
    over: str,
    unit: str,
    note: str = "",
    horizontal: bool = True,
    stacked: bool = True,
) -> Panel:
    """A panel of ``rows`` charted as bars per label, one series per entry of ``series``
    (its name → the column it is read from). The text alternative counts ``unit``: the
    stacked series together, or the first of side-by-side ones (which need not add up)."""
    drawn = tuple(
        Series(label, tuple(float(r[column]) for r in rows)) for label, column in series.items()
    )
    totals = [sum(s.values[i] for s in (drawn if stacked else drawn[:1])) for i in range(len(rows))]
    chart = BarChart(
        f"chart-{name}",
        title,
        describe(over, labels, totals, unit),
        tuple(labels),
        drawn,
        stacked=stacked,
        horizontal=horizontal,
        unit=unit if stacked else "",
    )
    return Panel(name, Table(title, columns, rows), chart, note)


_SCANS = ["genuine", "suspect", "other", "total"]
_SCAN_SERIES = {"genuine": 1, "suspect": 2, "other": 3}


class _Reads:
    """One tenant's reads for one query: the per-day-and-region counts, which two panels
    draw, are read once."""

    def __init__(self, store: ReportStore, tenant: str, query: DashboardQuery) -> None:
        self.store, self.tenant, self.query = store, tenant, query
        self._days: list[list[Any]] | None = None

    def day_counts(self) -> list[list[Any]]:
        if self._days is None:
            q = self.query
            self._days = self.store.scans_by_region_day(self.tenant, q.since, q.until, None)
        return self._days


def _scans_per_day(reads: _Reads) -> Panel:
    q = reads.query
    days: dict[date, list[int]] = {}
    day = q.first
    while day <= q.last:  # every day of the range, zero when nothing was scanned
        days[day] = [0, 0, 0, 0]
        day += timedelta(days=1)
    for row in reads.day_counts():
        counts = days.setdefault(row[0], [0, 0, 0, 0])
        for n in range(4):
            counts[n] += int(row[2 + n])
    rows: list[list[Any]] = [[d, *c] for d, c in sorted(days.items())]
    return _panel(
        "scans_per_day",
        f"Verifications per day, {q.first} to {q.last} (UTC)",
        ["day", *_SCANS],
        rows,
        [d.isoformat() for d in days],
        _SCAN_SERIES,
        over="days",
        unit="verifications",
        horizontal=False,
        note="Genuine: authentic or seen before; suspect: clone, counterfeit or diverted.",
    )


def _region(value: str) -> str:
    return value or "(unknown)"


def _scans_per_region(reads: _Reads) -> Panel:
    regions: dict[str, list[int]] = {}
    for row in reads.day_counts():
        counts = regions.setdefault(_region(row[1]), [0, 0, 0, 0])
        for n in range(4):
            counts[n] += int(row[2 + n])
    ordered = sorted(regions.items(), key=lambda x: (-x[1][3], x[0]))[: reads.query.limit]
    rows: list[list[Any]] = [[region, *counts] for region, counts in ordered]
    return _panel(
        "scans_per_region",
        "Verifications per region",
        ["region", *_SCANS],
        rows,
        [r[0] for r in rows],
        _SCAN_SERIES,
        over="regions",
        unit="verifications",
        note="Region: where the scanning phone was, as the edge geolocated it.",
    )


def _verdict_mix(reads: _Reads) -> Panel:
    q = reads.query
    counts = reads.store.verdict_mix(reads.tenant, q.since, q.until)
    total = sum(int(n) for _, n in counts)
    rows = [[v, int(n), round(100 * int(n) / total, 1) if total else 0.0] for v, n in counts]
    genuine = sum(r[1] for r in rows if r[0] in GENUINE_VERDICTS)
    suspect = sum(r[1] for r in rows if r[0] in SUSPECT_VERDICTS)
    return _panel(
        "verdict_mix",
        "Verdict mix",
        ["verdict", "verifications", "percent"],
        rows,
        [str(r[0]) for r in rows],
        {"verifications": 1},
        over="verdicts",
        unit="verifications",
        note=f"Genuine {genuine} ({100 * genuine / total:.1f} %), suspect {suspect}."
        if total
        else "",
    )


def _open_alerts(reads: _Reads) -> Panel:
    groups: dict[str, list[int]] = {}
    for kind, signature, status, n in reads.store.unresolved_alerts(reads.tenant):
        shown = alert_kind(kind, {"reason": "bad_signature"} if signature else {})
        counts = groups.setdefault(shown.value, [0, 0])
        counts[0 if status == "open" else 1] += int(n)
    ordered = sorted(
        groups.items(), key=lambda x: (-SEVERITY[AlertKind(x[0])].value, -sum(x[1]), x[0])
    )
    rows: list[list[Any]] = [[k, SEVERITY[AlertKind(k)].name.lower(), *c] for k, c in ordered]
    return _panel(
        "open_alerts",
        "Alerts not resolved, by kind (most severe first)",
        ["kind", "severity", "open", "acknowledged"],
        rows,
        [r[0] for r in rows],
        {"open": 2, "acknowledged": 3},
        over="kinds",
        unit="alerts",
        note="Every unresolved alert, whenever it was raised (not only in the date range).",
    )


def _clones(reads: _Reads) -> Panel:
    q = reads.query
    found = reads.store.hotspots(reads.tenant, q.since, q.until, None)
    rows = [[_region(r[0]), *r[1:]] for r in found]
    rows = rows[: q.limit]
    return _panel(
        "clones",
        "Clone, counterfeit and diversion hotspots, by region",
        ["region", "suspect_clone", "counterfeit", "diverted", "alerts"],
        rows,
        [r[0] for r in rows],
        {"suspect clone": 1, "counterfeit": 2, "diverted": 3},
        over="regions",
        unit="suspect scans",
        note="Scans with a suspect verdict per region; alerts: those raised there.",
    )


def _recalls(reads: _Reads) -> Panel:
    rows = reads.store.recall_reach(reads.tenant, reads.query.limit)
    return _panel(
        "recalls",
        "Recalls and their reach (latest first)",
        ["recall_id", "effective_at", "reason", "units", "markets", "scans_since"],
        rows,
        [f"{r[0]} ({r[1].astimezone(UTC):%Y-%m-%d})" for r in rows],
        {"units recalled": 3, "scans since the recall": 5},
        over="recalls",
        unit="units recalled",
        stacked=False,
        note="Units: codes the recall took; markets: where they had been shipped.",
    )
