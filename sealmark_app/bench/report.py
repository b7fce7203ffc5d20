"""A bench run as a page a person can look at: every line's figures in a table, one chart of
how far each benchmark stands from its bar, and a latency histogram for each benchmark that
timed calls. Input is the JSON lines ``sealmark bench`` prints (kept in a file, or the lines
of the run just made); output is one self-contained HTML file with the charts inline as SVG
(drawn with matplotlib, as the audit reports are).
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sealmark.errors import InvalidArgument

Line = dict[str, Any]


def read_lines(path: Path) -> list[Line]:
    """The benchmark lines of a saved run. Lines that are not JSON objects (log output that
    went to the same file) are passed over; a line that starts like one but does not parse,
    or an object without ``name`` and ``value``, is InvalidArgument naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument("--from", f"{path}: {exc.strerror or exc}") from exc
    lines: list[Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.lstrip().startswith("{"):
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidArgument("--from", f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(line, dict) or "name" not in line or "value" not in line:
            raise InvalidArgument("--from", f"{path}:{number}: want an object with name, value")
        lines.append(line)
    if not lines:
        raise InvalidArgument("--from", f"{path}: no benchmark lines in it")
    return lines


def standing(line: Line) -> float | None:
    """How far the line stands from its bar: 1 is on the bar, above 1 better, below worse
    (measured / limit for an at-least bar, limit / measured for an at-most one)."""
    bar = line.get("bar")
    if not isinstance(bar, str):
        return None
    of, sign, limit_text = bar.split()
    measured = line.get(of)
    limit = float(limit_text)
    if not isinstance(measured, int | float) or measured <= 0 or limit <= 0:
        return None
    return float(measured / limit if sign == ">=" else limit / measured)


def render_html(lines: Sequence[Line], *, title: str, made_at: datetime) -> str:
    """The whole page. Pure but for matplotlib, imported here (drawing is slow to import)."""
    rows = "\n".join(_row(line) for line in lines)
    judged = [line for line in lines if line.get("met") is not None]
    met = sum(1 for line in judged if line["met"])
    charts = [_standing_chart(lines)] if any(standing(x) is not None for x in lines) else []
    charts += [_histogram_chart(line) for line in lines if line.get("histogram_ms")]
    figures = "\n".join(f'<figure class="chart">{svg}</figure>' for svg in charts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1b1b1b; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }}
th:first-child, td:first-child, td.detail {{ text-align: left; }}
td.met {{ color: #0a6b2d; font-weight: 600; }} td.missed {{ color: #a11; font-weight: 600; }}
td.detail {{ font-size: 0.8rem; color: #444; }}
figure.chart svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Made {made_at.isoformat(timespec="seconds")}. {len(lines)} benchmarks; bars met:
{met} of {len(judged)}. Ratios are against the baseline measured in the same run.</p>
<table>
<thead><tr><th>benchmark</th><th>value</th><th>unit</th><th>baseline</th><th>ratio</th>
<th>bar</th><th>met</th><th>peak RSS MB</th><th>detail</th></tr></thead>
<tbody>
{rows}
</tbody></table>
{figures}
</body></html>
"""


def _row(line: Line) -> str:
    met = line.get("met")
    verdict, css = ("yes", "met") if met is True else ("no", "missed") if met is False else ("", "")
    detail = line.get("detail") or {}
    cells = [
        html.escape(str(line["name"])),
        _number(line.get("value")),
        html.escape(str(line.get("unit", ""))),
        _number(line.get("baseline")),
        _number(line.get("ratio")),
        html.escape(str(line.get("bar") or "")),
    ]
    tds = "".join(f"<td>{c}</td>" for c in cells)
    tds += f'<td class="{css}">{verdict}</td><td>{_number(line.get("peak_rss_mb"))}</td>'
    pairs = ", ".join(f"{html.escape(str(k))}={html.escape(str(v))}" for k, v in detail.items())
    return f'<tr>{tds}<td class="detail">{pairs}</td></tr>'


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _svg(figure: Any) -> str:
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sealmark-bench"}):
        figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]  # inline: no XML declaration or doctype


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _plain_log_ticks(axis: Any) -> None:
    """Ticks of a log axis as plain numbers (0.2, 0.5, 2, 5, 10), not powers of ten; minor
    ticks at 2 and 5 only, whose labels do not run into each other."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    axis.set_minor_formatter(FormatStrFormatter("%g"))


def _standing_chart(lines: Sequence[Line]) -> str:
    judged = [(line["name"], standing(line), line.get("met")) for line in lines]
    shown = [(name, value, met) for name, value, met in judged if value is not None]
    figure = _figure(8, 0.45 * len(shown) + 1.2)
    axes = figure.add_subplot()
    names = [name for name, _, _ in shown][::-1]
    values = [value for _, value, _ in shown][::-1]
    colours = ["#2e8b57" if met else "#c0392b" for _, _, met in shown][::-1]
    axes.barh(names, values, color=colours)
    axes.axvline(1.0, color="#1b1b1b", linewidth=1, linestyle="--")
    axes.set_xscale("log")
    _plain_log_ticks(axes.xaxis)
    axes.set_xlabel("measured against its bar (1 = on the bar, right = better)")
    axes.set_title("Each benchmark against its bar")
    return _svg(figure)


def _histogram_chart(line: Line) -> str:
    buckets = [(float(bound), int(count)) for bound, count in line["histogram_ms"]]
    figure = _figure(8, 2.6)
    axes = figure.add_subplot()
    lower = [buckets[0][0] / 2**0.5] + [bound for bound, _ in buckets[:-1]]
    widths = [upper - low for low, (upper, _) in zip(lower, buckets, strict=True)]
    axes.bar(lower, [c for _, c in buckets], width=widths, align="edge", color="#4a78b5")
    axes.set_xscale("log")
    _plain_log_ticks(axes.xaxis)
    axes.set_xlabel("latency, ms")
    axes.set_ylabel("calls")
    detail = line.get("detail") or {}
    marks = {"p50": detail.get("p50_ms"), "p99": detail.get("p99_ms")}
    if marks["p99"] is None and line.get("unit") == "ms":
        marks["p99"] = line["value"]  # a latency benchmark's value is its p99
    for (label, value), style in zip(marks.items(), (":", "--"), strict=True):
        if isinstance(value, int | float):
            axes.axvline(value, color="#1b1b1b", linestyle=style, label=f"{label} {value:g} ms")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper right")
    axes.set_title(f"{line['name']}: latency of {sum(c for _, c in buckets):,} calls")
    return _svg(figure)


def write_report(path: Path, lines: Sequence[Line], made_at: datetime) -> None:
    """Write the HTML report of ``lines`` to ``path`` (InvalidArgument if not ``.html``)."""
    if path.suffix.lower() not in (".html", ".htm"):
        raise InvalidArgument("--report", f"{path}: the report is HTML; name it *.html")
    page = render_html(lines, title="Sealmark benchmarks", made_at=made_at)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument("--report", f"{path}: {exc.strerror or exc}") from exc
