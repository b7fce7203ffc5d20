"""The dashboard's use case on the in-memory fakes: each panel's rows from seeded scans,
alerts, codes and recalls, the tenant's own data only, the auditor role, the query's
validation naming the parameter, and the charts as accessible SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from audit.charts import BarChart, Series, axis, describe, render_svg
from audit.dashboard import PANELS, Dashboard, DashboardQuery
from audit.domain import RecallScope
from audit.memory import MemoryAudit
from audit.usecases import Auditor
from sealmark.clock import FixedClock
from sealmark.errors import InvalidArgument, PermissionDenied
from sealmark.tenancy.model import Principal, Role
from tests.storage_contract import gtin_under, tenant

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
TODAY = NOW.date()
SVG = "{http://www.w3.org/2000/svg}"


class World:
    """Two brands; the first has scans on three days in two regions, alerts, codes nearing
    expiry and a recall."""

    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.world = MemoryAudit(self.clock.now)
        self.tenants = []
        for _ in range(2):
            brand = tenant()
            self.world.add_tenant(brand)
            gtin = gtin_under(brand.company_prefixes[0])
            self.world.add_product(brand.id, gtin)
            self.tenants.append((brand.id, gtin))
        (t, gtin), (other, other_gtin) = self.tenants
        self.auditor = Principal(t, frozenset({Role.AUDITOR}), token_id="tok-a")
        self.other = Principal(other, frozenset({Role.AUDITOR}), token_id="tok-b")
        w = self.world
        keys = [
            w.add_code(t, gtin, f"S{n}", lot="L1", expiry=TODAY + timedelta(days=20), market="DE")
            for n in range(4)
        ]
        w.add_code(t, gtin, "FAR", lot="L9", expiry=TODAY + timedelta(days=400), market="DE")
        day = datetime(2026, 11, 18, 10, tzinfo=UTC)
        w.add_scan(t, "v1", keys[0], "authentic", day, region="DE")
        w.add_scan(t, "v2", keys[0], "authentic_seen_before", day, region="DE")
        w.add_scan(t, "v3", keys[1], "suspect_clone", day + timedelta(days=1), region="FR")
        w.add_scan(t, "v4", keys[1], "suspect_clone", day + timedelta(days=1), region="FR")
        w.add_scan(t, "v5", keys[2], "diverted", day + timedelta(days=2), region="PL")
        w.add_scan(t, "old", keys[2], "authentic", day - timedelta(days=60), region="DE")
        w.add_alert(t, "suspect_clone", day, code_key=keys[1], details={"region": "FR"})
        w.add_alert(t, "counterfeit", day, details={"reason": "bad_signature", "region": "FR"})
        w.add_alert(t, "diversion", day, code_key=keys[2], details={"region": "PL"})
        foreign = w.add_code(other, other_gtin, "X1", lot="L1", expiry=TODAY, market="US")
        w.add_scan(other, "vx", foreign, "counterfeit", day, region="US")
        w.add_alert(other, "suspect_clone", day, details={"region": "US"})
        admin = Principal(t, frozenset({Role.ADMIN}), token_id="tok-admin")
        Auditor(w.storage, w.wake, self.clock).recall(
            admin, "rq-1", RecallScope("codes", keys=(keys[3],)), "broken seal"
        )
        self.dashboard = Dashboard(w.storage, self.clock)


@pytest.fixture
def w() -> World:
    return World()


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 (our own output, never a third party's)


def _query(**params: str) -> DashboardQuery:
    return DashboardQuery.parse({k: [v] for k, v in params.items()}, TODAY)


def _panels(w: World, principal: Principal, **params: str) -> dict[str, list[list[object]]]:
    return {p.name: p.table.rows for p in w.dashboard.panels(principal, _query(**params))}


def test_every_panel_has_the_seeded_rows(w: World) -> None:
    rows = _panels(w, w.auditor, **{"from": "2026-11-17", "to": "2026-11-20"})
    assert list(rows) == list(PANELS)
    assert rows["scans_per_day"] == [
        [date(2026, 11, 17), 0, 0, 0, 0],
        [date(2026, 11, 18), 2, 0, 0, 2],
        [date(2026, 11, 19), 0, 2, 0, 2],
        [date(2026, 11, 20), 0, 1, 0, 1],
    ]
    assert rows["scans_per_region"] == [
        ["DE", 2, 0, 0, 2],
        ["FR", 0, 2, 0, 2],
        ["PL", 0, 1, 0, 1],
    ]
    assert rows["verdict_mix"] == [
        ["suspect_clone", 2, 40.0],
        ["authentic", 1, 20.0],
        ["authentic_seen_before", 1, 20.0],
        ["diverted", 1, 20.0],
    ]
    assert rows["open_alerts"] == [
        ["bad_signature", "high", 1, 0],
        ["clone", "high", 1, 0],
        ["diversion", "medium", 1, 0],
    ]
    assert rows["clones"][0] == ["FR", 2, 0, 0, 2]
    assert ["PL", 0, 0, 1, 1] in rows["clones"]
    expiry = TODAY + timedelta(days=20)
    # Three of the four L1 codes are active (one was recalled); L9 expires past the horizon.
    assert rows["nearing_expiry"] == [[w.tenants[0][1], "L1", expiry, "DE", 3]]
    assert len(rows["recalls"]) == 1
    recall = rows["recalls"][0]
    assert recall[2:] == ["broken seal", 1, 1, 0]


def test_another_tenants_auditor_sees_only_their_own(w: World) -> None:
    rows = _panels(w, w.other, **{"from": "2026-11-17", "to": "2026-11-20"})
    assert rows["scans_per_region"] == [["US", 0, 1, 0, 1]]
    assert rows["verdict_mix"] == [["counterfeit", 1, 100.0]]
    assert rows["open_alerts"] == [["clone", "high", 1, 0]]
    assert rows["recalls"] == []
    assert [r[1] for r in rows["nearing_expiry"]] == ["L1"]
    assert rows["nearing_expiry"][0][3] == "US"


def test_the_dashboard_needs_the_auditor_role(w: World) -> None:
    line = Principal(w.auditor.tenant_id, frozenset({Role.LINE}), token_id="tok-l")
    with pytest.raises(PermissionDenied):
        w.dashboard.panels(line, _query())
    with pytest.raises(PermissionDenied):
        w.dashboard.panel(line, _query(), "verdict_mix")
    admin = Principal(w.auditor.tenant_id, frozenset({Role.ADMIN}), token_id="tok-x")
    assert w.dashboard.panel(admin, _query(), "verdict_mix").table.rows


def test_the_range_and_the_limit_narrow_the_panels(w: World) -> None:
    rows = _panels(w, w.auditor, **{"from": "2026-11-19", "to": "2026-11-19", "limit": "1"})
    assert rows["scans_per_day"] == [[date(2026, 11, 19), 0, 2, 0, 2]]
    assert rows["scans_per_region"] == [["FR", 0, 2, 0, 2]]
    assert rows["verdict_mix"] == [["suspect_clone", 2, 100.0]]
    short = _panels(w, w.auditor, days_ahead="10")
    assert short["nearing_expiry"] == []


def test_a_panels_csv_is_its_table() -> None:
    w = World()
    panel = w.dashboard.panel(w.auditor, _query(**{"from": "2026-11-18"}), "scans_per_region")
    lines = panel.csv().decode().splitlines()
    assert lines[0] == "region,genuine,suspect,other,total"
    assert lines[1:] == ["DE,2,0,0,2", "FR,0,2,0,2", "PL,0,1,0,1"]


def test_an_unknown_panel_is_refused_by_name(w: World) -> None:
    with pytest.raises(InvalidArgument) as caught:
        w.dashboard.panel(w.auditor, _query(), "everything")
    assert caught.value.field == "panel"


def test_the_default_query_is_the_last_thirty_days() -> None:
    query = DashboardQuery.parse({}, TODAY)
    assert (query.first, query.last) == (TODAY - timedelta(days=29), TODAY)
    assert query.since == datetime(2026, 10, 22, tzinfo=UTC)
    assert query.until == datetime(2026, 11, 21, tzinfo=UTC)
    assert (query.days_ahead, query.limit) == (90, 20)
    assert DashboardQuery.parse({k: [v] for k, v in query.as_params().items()}, TODAY) == query


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": ["2026-11-32"]}, "from"),
        ({"from": ["20261101"]}, "from"),
        ({"to": ["yesterday"]}, "to"),
        ({"from": ["2026-11-20"], "to": ["2026-11-01"]}, "from"),
        ({"from": ["2024-01-01"], "to": ["2026-01-01"]}, "to"),
        ({"days_ahead": ["0"]}, "days_ahead"),
        ({"days_ahead": ["-5"]}, "days_ahead"),
        ({"days_ahead": ["9999999999"]}, "days_ahead"),
        ({"limit": ["501"]}, "limit"),
        ({"limit": ["ten"]}, "limit"),
        ({"limit": ["1", "2"]}, "limit"),
        ({"tenant": ["someone-else"]}, "tenant"),
    ],
)
def test_a_bad_parameter_is_refused_by_name(params: dict[str, list[str]], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        DashboardQuery.parse(params, TODAY)
    assert caught.value.field == field


# -- the charts ---------------------------------------------------------------------------


def _chart(**overrides: object) -> BarChart:
    fields: dict[str, object] = {
        "chart_id": "c1",
        "title": "Scans <per> day",
        "description": "6 scans & more",
        "labels": ("DE", "FR"),
        "series": (Series("genuine", (3.0, 1.0)), Series("suspect", (0.0, 2.0))),
    }
    fields.update(overrides)
    return BarChart(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("horizontal", "stacked"), [(False, True), (True, True), (True, False)])
def test_a_chart_is_accessible_svg(horizontal: bool, stacked: bool) -> None:
    svg = _parse(render_svg(_chart(horizontal=horizontal, stacked=stacked)))
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "c1-title"
    assert svg.get("aria-describedby") == "c1-desc"
    assert svg.findtext(f"{SVG}title") == "Scans <per> day"  # escaped in the text, not markup
    assert svg.findtext(f"{SVG}desc") == "6 scans & more"
    bars = [r for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    tips = sorted(r.findtext(f"{SVG}title") or "" for r in bars)
    assert tips == ["DE: genuine 3", "DE: suspect 0", "FR: genuine 1", "FR: suspect 2"]
    assert all(r.get("fill", "").startswith("#") for r in bars)
    assert not any(e.get("style") for e in svg.iter()), "styles would be refused by the CSP"
    legend = [t.text for t in svg.iter(f"{SVG}text")]
    assert "genuine" in legend and "suspect" in legend


def test_bars_scale_with_their_values() -> None:
    svg = _parse(render_svg(_chart(horizontal=True, stacked=False)))
    widths = {
        r.findtext(f"{SVG}title"): float(r.get("width", "0"))
        for r in svg.iter(f"{SVG}rect")
        if r.find(f"{SVG}title") is not None
    }
    assert widths["DE: genuine 3"] == pytest.approx(3 * widths["FR: genuine 1"], abs=0.3)
    assert widths["DE: suspect 0"] == 0


def test_a_chart_without_data_says_so() -> None:
    svg = render_svg(_chart(labels=(), series=(Series("genuine", ()),)))
    assert "No data in this period" in svg
    _parse(svg)


def test_a_series_must_match_the_labels() -> None:
    with pytest.raises(ValueError, match="genuine"):
        render_svg(_chart(series=(Series("genuine", (1.0,)),)))


def test_charts_are_deterministic(w: World) -> None:
    first = [p.svg for p in w.dashboard.panels(w.auditor, _query())]
    second = [p.svg for p in w.dashboard.panels(w.auditor, _query())]
    assert first == second
    ids = [_parse(svg).get("id") for svg in first]
    assert len(set(ids)) == len(PANELS)


def test_axis_ends_and_descriptions() -> None:
    ends = [axis(v) for v in (0, 1, 3, 7, 9, 12, 180, 2400)]
    assert ends == [(1, 1), (1, 1), (3, 1), (8, 2), (10, 5), (15, 5), (200, 50), (3000, 1000)]
    assert describe("days", ["a", "b"], [1, 4], "scans") == (
        "5 scans in all over 2 days; the most, 4, in b."
    )
    assert describe("days", [], [], "scans") == "No scans in this period."
