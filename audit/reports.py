"""Audit reports: reconciliation per work order and lot, scans per region and day, hotspots,
lots nearing expiry still in the market, and a recall's report. Each is a table (columns and
rows) rendered as JSON, CSV or a chart (SVG or PNG, drawn with matplotlib)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from audit.domain import check_range
from audit.ports import AuditStorage, ReportStore
from audit.usecases import Auditor
from sealmark.clock import Clock
from sealmark.errors import InvalidArgument
from sealmark.gs1.checkdigit import normalize_gtin
from sealmark.tenancy.alphabets import SERIAL_ALPHABETS, legacy_exposure
from sealmark.tenancy.model import Principal, Role

KINDS = (
    "reconciliation",
    "scans_by_region_day",
    "hotspots",
    "nearing_expiry",
    "recall",
    "serial_exposure",
)
TABULAR = ("recall", "serial_exposure")
FORMATS = {
    "json": "application/json",
    "csv": "text/csv",
    "svg": "image/svg+xml",
    "png": "image/png",
}
DAYS_DEFAULT = 90
DAYS_MAX = 3650


@dataclass(frozen=True)
class ReportQuery:
    kind: str
    format: str = "json"
    since: datetime | None = None
    until: datetime | None = None
    gtin: str = ""
    lot: str = ""
    work_order: str = ""
    recall_id: str = ""
    region: str = ""
    days_ahead: int = DAYS_DEFAULT

    @classmethod
    def of(cls, request: Any, since: datetime | None, until: datetime | None) -> ReportQuery:
        """From a ``ReportRequest`` (enum numbers as in audit.proto), validated."""
        name = "ReportRequest"
        if not 1 <= request.kind <= len(KINDS):
            raise InvalidArgument(f"{name}.kind", f"required: one of {', '.join(KINDS)}")
        formats = ["json", "csv", "json", "svg", "png"]  # 0 (unspecified) = JSON
        if not 0 <= request.format < len(formats):
            raise InvalidArgument(f"{name}.format", "one of CSV, JSON, SVG, PNG")
        return cls(
            kind=KINDS[request.kind - 1],
            format=formats[request.format],
            since=since,
            until=until,
            gtin=normalize_gtin(request.gtin, f"{name}.gtin") if request.gtin else "",
            lot=request.lot,
            work_order=request.work_order,
            recall_id=request.recall_id,
            region=request.region,
            days_ahead=request.days_ahead,
        ).checked()

    def checked(self) -> ReportQuery:
        name = "ReportRequest"
        if self.kind not in KINDS:
            raise InvalidArgument(f"{name}.kind", f"one of {', '.join(KINDS)}")
        if self.format not in FORMATS:
            raise InvalidArgument(f"{name}.format", f"one of {', '.join(FORMATS)}")
        check_range(self.since, self.until, name)
        if self.kind == "reconciliation" and not self.work_order:
            raise InvalidArgument(f"{name}.work_order", "required for a reconciliation report")
        if self.kind == "recall" and not self.recall_id:
            raise InvalidArgument(f"{name}.recall_id", "required for a recall report")
        if not 0 <= self.days_ahead <= DAYS_MAX:
            raise InvalidArgument(f"{name}.days_ahead", f"{self.days_ahead}, want 0..{DAYS_MAX}")
        if self.region and not (len(self.region) == 2 and self.region.isalpha()):
            raise InvalidArgument(f"{name}.region", "an ISO 3166 alpha-2 code such as DE")
        for field, value in (("lot", self.lot), ("work_order", self.work_order)):
            if len(value) > 64:
                raise InvalidArgument(f"{name}.{field}", "at most 64 characters")
        if self.format in ("svg", "png") and self.kind in TABULAR:
            raise InvalidArgument(
                f"{name}.format", f"the {self.kind} report is tabular: CSV or JSON"
            )
        return self


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    label: int = 0  # the column naming a bar of the chart
    values: tuple[int, ...] = ()  # the columns stacked in it


class Reporter:
    def __init__(self, storage: AuditStorage, clock: Clock, auditor: Auditor) -> None:
        self._storage = storage
        self._clock = clock
        self._auditor = auditor

    def render(self, principal: Principal, query: ReportQuery) -> tuple[str, Iterator[bytes]]:
        """(content type, bytes) of the report."""
        principal.require(Role.AUDITOR)
        table = self.table(principal, query)
        return FORMATS[query.format], iter([render(table, query.format)])

    def table(self, principal: Principal, query: ReportQuery) -> Table:
        tenant = principal.tenant_id
        if query.kind == "recall":
            report = self._auditor.recall_report(principal, query.recall_id)
            rows: list[list[Any]] = [
                ["units_affected", "", report.units_affected],
                ["units_not_shipped", "", report.units_not_shipped],
                ["units_dispensed", "", report.units_dispensed],
                ["scans_since_recall", "", report.scans_since_recall],
                *(["shipment_market", m, n] for m, n in report.by_shipment_market),
                *(["last_scan_region", r, n] for r, n in report.by_last_scan_region),
            ]
            return Table(f"Recall {report.recall_id}", ["measure", "group", "units"], rows)
        with self._storage.reads() as store:
            if query.kind == "serial_exposure":
                # Per product, the serials minted from the letters of the alphabet's name and
                # what they expose; see alphabets.py.
                rows = [exposure_row(*p) for p in store.serial_products(tenant, query.gtin or None)]
                return Table(
                    "Serials drawn from the letters of the alphabet's name", EXPOSURE, rows
                )
            return self._table(store, tenant, query)

    def _table(self, store: ReportStore, tenant: str, q: ReportQuery) -> Table:
        gtin, lot, region = q.gtin or None, q.lot or None, q.region.upper() or None
        if q.kind == "reconciliation":
            return Table(
                f"Reconciliation of work order {q.work_order}",
                [
                    "lot",
                    "allocated",
                    "commissioned",
                    "scrapped",
                    "returned",
                    "shipped",
                    "outstanding",
                ],
                store.reconciliation(tenant, q.work_order, gtin, lot),
                0,
                (2, 3, 4, 6),
            )
        if q.kind == "scans_by_region_day":
            return Table(
                "Verifications per region and day",
                ["day", "region", "genuine", "suspect", "other", "total"],
                store.scans_by_region_day(tenant, q.since, q.until, region),
                1,
                (2, 3, 4),
            )
        if q.kind == "hotspots":
            return Table(
                "Clone, counterfeit and diversion hotspots",
                ["region", "suspect_clone", "counterfeit", "diverted", "alerts"],
                store.hotspots(tenant, q.since, q.until, region),
                0,
                (1, 2, 3),
            )
        days = q.days_ahead or DAYS_DEFAULT
        today = self._clock.now().date()
        return Table(
            f"Active units expiring within {days} days, by market",
            ["gtin", "lot", "expiry", "market", "units"],
            store.nearing_expiry(tenant, gtin, lot, today, today + timedelta(days=days)),
            1,
            (4,),
        )


EXPOSURE = [
    "gtin",
    "serial_alphabet",
    "serial_length",
    "serials_issued",
    "serial_space",
    "guess_probability_declared",
    "legacy_serials",
    "legacy_symbols",
    "legacy_reachable_space",
    "legacy_uniform_guess_probability",
    "legacy_best_guess_probability",
    "guess_probability_real",
]


def exposure_row(gtin: str, name: str, length: int, issued: int, legacy: int) -> list[Any]:
    """One row of the serial-exposure report. ``guess_probability_real`` is the worst of the
    three ways to guess: a serial of the declared format, a serial of the legacy letters
    (uniformly), and the single most likely legacy serial."""
    space = SERIAL_ALPHABETS[name].space(length)
    declared = issued / space  # as GetSerialReport states it: every serial counts
    exposure = legacy_exposure(name, length, legacy)
    real = max(declared, exposure.uniform_guess_probability, exposure.best_guess_probability)
    return [
        gtin,
        name,
        length,
        issued,
        space,
        declared,
        legacy,
        exposure.symbols if legacy else "",
        exposure.reachable_space if legacy else 0,
        exposure.uniform_guess_probability,
        exposure.best_guess_probability,
        real,
    ]


def render(table: Table, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(
            {
                "title": table.title,
                "columns": table.columns,
                "rows": [dict(zip(table.columns, map(_plain, r), strict=True)) for r in table.rows],
            },
            ensure_ascii=False,
        ).encode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(table.columns)
        writer.writerows([_cell(v) for v in r] for r in table.rows)
        return out.getvalue().encode()
    return chart(table, fmt)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _cell(value: Any) -> str:
    """CSV cells that a spreadsheet will not run as formulas (OWASP CSV injection)."""
    text = str(_plain(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def chart(table: Table, fmt: str) -> bytes:
    """A stacked bar chart: one bar per row (labelled by ``table.label``), a segment per
    value column. Deterministic output: no timestamps or random ids in the file."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    labels = [
        " ".join(str(_plain(r[i])) for i in sorted({0, table.label}) if str(r[i]))
        for r in table.rows
    ]
    figure = Figure(figsize=(max(6.0, 0.5 * len(labels) + 2), 4.5), dpi=100)
    axes = figure.subplots()
    bottoms = [0.0] * len(table.rows)
    for column in table.values:
        heights = [float(r[column] or 0) for r in table.rows]
        axes.bar(range(len(labels)), heights, bottom=bottoms, label=table.columns[column])
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axes.set_title(table.title)
    axes.set_ylabel("count")
    if table.values:
        axes.legend(fontsize=8)
    if not table.rows:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    out = io.BytesIO()
    metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": None}
    # Text stays text in SVG (searchable, screen readers); a fixed salt keeps ids stable.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sealmark"}):
        figure.savefig(out, format=fmt, metadata=metadata)
    return out.getvalue()
