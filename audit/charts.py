"""Bar charts as SVG text, for the dashboard's pages. Pure: standard library only.

Why not matplotlib (which draws the report charts of :mod:`audit.reports`): its SVG colours
every bar with ``style`` attributes and a ``<style>`` element, and the dashboard's
Content-Security-Policy (``style-src 'nonce-…'``) rightly refuses both when the SVG is inline
in the page, so its bars would render black. These charts use presentation attributes only
(``fill``, ``font-size``), which no CSP touches, and are built for reading:

- the ``<svg>`` is ``role="img"`` labelled by its own ``<title>`` and described by a
  ``<desc>`` (a sentence with the totals, the text alternative), each bar has a ``<title>``
  (its label, series and value: a tooltip, and what a screen reader reads);
- colours are the Okabe–Ito palette (distinguishable with the common colour-vision
  deficiencies), and a legend names every series in text;
- the output is deterministic (no random ids, no timestamps): the same data, the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
INK = "#222222"
GRID = "#DDDDDD"
WIDTH = 720.0  # every chart is this wide (a viewBox unit), so text has one size in them all
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans CJK SC', sans-serif"


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class BarChart:
    """Bars per label, one segment (``stacked``) or one bar side by side per series.
    ``horizontal`` draws categories top to bottom (long labels such as regions and lots);
    otherwise left to right (days)."""

    chart_id: str  # unique in the page: the ids of the title and the description
    title: str
    description: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    stacked: bool = True
    horizontal: bool = False
    unit: str = ""


def axis(value: float) -> tuple[float, float]:
    """(end, step) of a count axis: a whole step of 1, 2 or 5 × 10ⁿ, at most four steps to
    the end, the end at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0, 1.0
    step = 1.0
    while step * 4 < value:
        for factor in (2, 2.5, 2):  # 1 → 2 → 5 → 10 → 20 …
            step *= factor
            if step * 4 >= value:
                break
    end = step * -(-value // step)
    return end, step


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _text(x: float, y: float, content: str, *, anchor: str = "start", size: int = 12) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{INK}"'
        f' text-anchor="{anchor}">{escape(content)}</text>'
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}"'
        f' fill="{fill}"><title>{escape(tip)}</title></rect>'
    )


def render_svg(chart: BarChart) -> str:
    """The chart as an ``<svg>`` element (no XML prolog: it goes inline into HTML)."""
    for s in chart.series:
        if len(s.values) != len(chart.labels):
            raise ValueError(
                f"series {s.name!r}: {len(s.values)} values, {len(chart.labels)} labels"
            )
    title_id, desc_id = f"{chart.chart_id}-title", f"{chart.chart_id}-desc"
    body = _horizontal(chart) if chart.horizontal else _vertical(chart)
    width, height, parts = body
    legend_y = 18.0
    legend = []
    x = 8.0
    for n, s in enumerate(chart.series):
        colour = PALETTE[n % len(PALETTE)]
        legend.append(
            f'<rect x="{x:.1f}" y="{legend_y - 10:.1f}" width="12" height="12" fill="{colour}"/>'
        )
        legend.append(_text(x + 16, legend_y, s.name))
        x += 28 + 7.5 * len(s.name)
    if not chart.labels or not any(v for s in chart.series for v in s.values):
        parts.append(_text(width / 2, height / 2, "No data in this period", anchor="middle"))
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width:.0f} {height:.0f}"'
        f' width="100%" preserveAspectRatio="xMinYMin meet" aria-labelledby="{title_id}"'
        f' aria-describedby="{desc_id}" font-family={quoteattr(_FONT)}'
        f" id={quoteattr(chart.chart_id)}>"
        f'<title id="{title_id}">{escape(chart.title)}</title>'
        f'<desc id="{desc_id}">{escape(chart.description)}</desc>'
    )
    return head + "".join(legend) + "".join(parts) + "</svg>"


def _totals(chart: BarChart) -> list[float]:
    if chart.stacked:
        return [sum(s.values[i] for s in chart.series) for i in range(len(chart.labels))]
    return [max((s.values[i] for s in chart.series), default=0) for i in range(len(chart.labels))]


def _tip(chart: BarChart, label: str, series: Series, value: float) -> str:
    unit = f" {chart.unit}" if chart.unit else ""
    return f"{label}: {series.name} {_number(value)}{unit}"


def _vertical(chart: BarChart) -> tuple[float, float, list[str]]:
    """Categories left to right (days); every n-th label shown so that they never overlap."""
    count = max(len(chart.labels), 1)
    left, top, plot_h, bottom = 56.0, 32.0, 200.0, 64.0
    width = WIDTH
    slot = (width - left - 16) / count
    height = top + plot_h + bottom
    top_value, step = axis(max(_totals(chart), default=0))
    parts = _y_grid(left, top, plot_h, width - 16, top_value, step)
    groups = 1 if chart.stacked else max(len(chart.series), 1)
    bar_w = slot * 0.8 / groups
    every = max(1, -(-count // 16))
    for i, label in enumerate(chart.labels):
        x0 = left + slot * i + slot * 0.1
        base = top + plot_h
        for n, s in enumerate(chart.series):
            value = s.values[i]
            h = plot_h * value / top_value
            x = x0 if chart.stacked else x0 + bar_w * n
            y = base - h if chart.stacked else top + plot_h - h
            parts.append(
                _rect(x, y, bar_w, h, PALETTE[n % len(PALETTE)], _tip(chart, label, s, value))
            )
            if chart.stacked:
                base -= h
        if i % every == 0:
            lx, ly = left + slot * i + slot / 2, top + plot_h + 14
            parts.append(
                f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="11" fill="{INK}" text-anchor="end"'
                f' transform="rotate(-40 {lx:.1f} {ly:.1f})">{escape(label)}</text>'
            )
    return width, height, parts


def _y_grid(
    left: float, top: float, plot_h: float, right: float, top_value: float, step: float
) -> list[str]:
    parts = []
    for k in range(int(top_value // step) + 1):
        value = step * k
        y = top + plot_h - plot_h * value / top_value
        parts.append(
            f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        parts.append(_text(left - 6, y + 4, _number(value), anchor="end", size=11))
    return parts


def _horizontal(chart: BarChart) -> tuple[float, float, list[str]]:
    """Categories top to bottom, the label left of its bar and the total right of it."""
    count = max(len(chart.labels), 1)
    longest = max((len(label) for label in chart.labels), default=4)
    left = min(300.0, 16 + 7.0 * longest)
    top = 32.0
    width = WIDTH
    plot_w = width - left - 56
    groups = 1 if chart.stacked else max(len(chart.series), 1)
    slot = 14.0 * groups + 10
    height = top + slot * count + 24
    totals = _totals(chart)
    top_value, step = axis(max(totals, default=0))
    parts: list[str] = []
    for k in range(int(top_value // step) + 1):
        x = left + plot_w * step * k / top_value
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4:.1f}" x2="{x:.1f}" y2="{height - 20:.1f}"'
            f' stroke="{GRID}"/>'
        )
        parts.append(_text(x, height - 6, _number(step * k), anchor="middle", size=11))
    for i, label in enumerate(chart.labels):
        y0 = top + slot * i + 4
        fits = int((left - 16) / 7.0)  # the whole label is in each bar's title and the table
        shown = label if len(label) <= fits else label[: fits - 1] + "…"
        parts.append(_text(left - 8, y0 + 7 * groups + 4, shown, anchor="end"))
        start = left
        for n, s in enumerate(chart.series):
            value = s.values[i]
            w = plot_w * value / top_value
            y = y0 if chart.stacked else y0 + 14.0 * n
            x = start if chart.stacked else left
            parts.append(
                _rect(x, y, w, 12.0, PALETTE[n % len(PALETTE)], _tip(chart, label, s, value))
            )
            if chart.stacked:
                start += w
            else:
                parts.append(_text(left + w + 4, y + 10, _number(value), size=11))
        if chart.stacked:
            parts.append(_text(start + 4, y0 + 10, _number(totals[i]), size=11))
    return width, height, parts


def describe(total_label: str, labels: Sequence[str], totals: Sequence[float], unit: str) -> str:
    """The text alternative of a chart: how much in all and where the most is."""
    if not labels or not any(totals):
        return f"No {unit} in this period."
    best = max(range(len(labels)), key=lambda i: totals[i])
    return (
        f"{_number(sum(totals))} {unit} in all over {len(labels)} {total_label}; the most,"
        f" {_number(totals[best])}, in {labels[best]}."
    )
