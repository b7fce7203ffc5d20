"""The bench report: bars judged, latencies bucketed, a saved run read back, and the page
with its table and charts (issue 22, item 5)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealmark.errors import InvalidArgument
from sealmark_app.bench import registry
from sealmark_app.bench.load import BOUNDS_MS, LoadResult, histogram_ms
from sealmark_app.bench.registry import Bar, Measurement
from sealmark_app.bench.report import read_lines, render_html, standing, write_report
from sealmark_app.cli.main import main

MADE = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LINES = [
    {
        "name": "verify_rps",
        "value": 2900.0,
        "unit": "rps",
        "baseline": 3500.0,
        "ratio": 0.8286,
        "peak_rss_mb": 140.2,
        "bar": "ratio >= 0.8",
        "met": True,
        "detail": {"p50_ms": 2.1, "p99_ms": 6.4},
        "histogram_ms": [[1.0, 10], [1.4142, 0], [2.0, 700], [8.0, 20]],
    },
    {
        "name": "top_parent_p99_ms",
        "value": 2.5,
        "unit": "ms",
        "baseline": None,
        "ratio": None,
        "peak_rss_mb": 90.0,
        "bar": "value <= 2",
        "met": False,
        "histogram_ms": [[1.0, 4000], [2.0, 900], [2.8284, 100]],
    },
    {"name": "ed25519_sign_per_s", "value": 40000.0, "unit": "signs/s", "baseline": None},
]


def test_bars_judge_value_ratio_and_memory() -> None:
    assert Bar(10_000).met(10_000, None, None) is True
    assert Bar(10_000).met(9_999, None, None) is False
    assert Bar(2, at_least=False).met(2.01, None, None) is False
    assert Bar(0.8, of="ratio").met(1.0, 0.79, None) is False
    assert Bar(0.8, of="ratio").met(1.0, None, None) is None  # no baseline: nothing to judge
    assert Bar(512, of="peak_rss_mb", at_least=False).met(1.0, None, 511.0) is True
    assert Bar(1.5, at_least=False).met(float("nan"), None, None) is None
    assert Bar(0.8, of="ratio").text() == "ratio >= 0.8"
    with pytest.raises(ValueError, match=r"Bar\.of"):
        Bar(1, of="median")


def test_a_ratio_bar_needs_a_baseline() -> None:
    with pytest.raises(ValueError, match="needs a baseline"):
        registry.benchmark("x_rps_unit_test", bar=Bar(1, of="ratio"))(lambda: Measurement(1, "x"))


def test_run_prints_the_bar_its_verdict_and_the_histogram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    benches = {
        "base_unit_test": registry.Benchmark("base_unit_test", lambda: Measurement(100, "rps")),
        "fast_unit_test": registry.Benchmark(
            "fast_unit_test",
            lambda: Measurement(90, "rps", 50.0, {"p50_ms": 1.0}, [(1.0, 3), (2.0, 1)]),
            baseline="base_unit_test",
            bar=Bar(0.8, of="ratio"),
        ),
    }
    monkeypatch.setattr(registry, "registered", lambda: benches)
    out: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

        def flush(self) -> None:
            pass

    (line,) = registry.run(["fast_unit_test"], out=Sink())  # type: ignore[arg-type]
    assert line["ratio"] == 0.9 and line["bar"] == "ratio >= 0.8" and line["met"] is True
    assert line["histogram_ms"] == [[1.0, 3], [2.0, 1]]
    assert json.loads("".join(out)) == line


def test_histogram_buckets_every_latency_once() -> None:
    latencies = [0.01, 0.125, 0.13, 1.0, 1.01, 5.0, 10**9]
    buckets = histogram_ms(latencies)
    assert sum(count for _, count in buckets) == len(latencies)
    assert buckets[0] == (BOUNDS_MS[0], 2)  # 0.01 and 0.125 are at most the first bound
    assert buckets[-1] == (BOUNDS_MS[-1], 1)  # beyond the last bound: the last bucket
    bounds = [bound for bound, _ in buckets]
    assert bounds == sorted(bounds) and len(bounds) == len(set(bounds))
    assert (1.0, 1) in buckets and (1.4142, 1) in buckets  # 1.0 ≤ 1.0 < 1.01 ≤ √2
    assert histogram_ms([]) == []
    assert LoadResult(3, 0, 1.0, [1.0, 1.0, 2.0]).histogram() == [(1.0, 2), (1.4142, 0), (2.0, 1)]


def test_standing_is_measured_over_the_bar() -> None:
    assert standing(LINES[0]) == pytest.approx(0.8286 / 0.8)
    assert standing(LINES[1]) == pytest.approx(2 / 2.5)
    assert standing(LINES[2]) is None


def test_the_page_has_every_line_a_verdict_and_the_charts() -> None:
    page = render_html(LINES, title="Bench <run>", made_at=MADE)
    assert "<title>Bench &lt;run&gt;</title>" in page
    assert "bars met:\n1 of 2" in page
    for line in LINES:
        assert f"<td>{line['name']}</td>" in page
    assert '<td class="met">yes</td>' in page and '<td class="missed">no</td>' in page
    # One chart of standings and one histogram per line that has one: three inline SVGs.
    assert len(re.findall(r"<svg[ >]", page)) == 3
    assert "verify_rps: latency of 730 calls" in page
    assert "p99 6.4 ms" in page and "p99 2.5 ms" in page  # a latency bench's value is its p99
    assert page.count("<figure") == 3


def test_a_saved_run_is_read_back_past_log_lines(tmp_path: Path) -> None:
    saved = tmp_path / "run.jsonl"
    text = "bench: starting\n" + "\n".join(json.dumps(line) for line in LINES) + "\n"
    saved.write_text(text, encoding="utf-8")
    assert read_lines(saved) == LINES
    saved.write_text('{"name": "x", "value": 1}\n{"name": \n', encoding="utf-8")
    with pytest.raises(InvalidArgument, match=r"run.jsonl:2: not JSON"):
        read_lines(saved)
    saved.write_text('{"value": 1}\n', encoding="utf-8")
    with pytest.raises(InvalidArgument, match=r"run.jsonl:1: want an object with name, value"):
        read_lines(saved)
    saved.write_text("nothing here\n", encoding="utf-8")
    with pytest.raises(InvalidArgument, match="no benchmark lines"):
        read_lines(saved)
    with pytest.raises(InvalidArgument, match="--from"):
        read_lines(tmp_path / "missing.jsonl")


def test_the_cli_renders_a_saved_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "run.jsonl"
    saved.write_text("\n".join(json.dumps(line) for line in LINES), encoding="utf-8")
    page = tmp_path / "bench.html"
    assert main(["bench", "--report", str(page), "--from", str(saved)]) == 0
    assert "<svg" in page.read_text(encoding="utf-8")
    assert main(["bench", "--from", str(saved)]) == 2
    assert "--from: goes with --report" in capsys.readouterr().err
    with pytest.raises(InvalidArgument, match=r"\*\.html"):
        write_report(tmp_path / "bench.pdf", LINES, MADE)


def test_the_page_is_self_contained() -> None:
    page = render_html(LINES, title="Bench", made_at=MADE)
    # Nothing to fetch: no scripts, style sheets, frames or images, and every reference
    # (href, src, url()) points inside the page; the http names left are XML namespaces and
    # metadata, which are never fetched.
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page)
    references = re.findall(r"\b(?:src|href)=\"([^\"]*)\"", page)
    references += re.findall(r"url\(([^)]*)\)", page)
    assert references and all(ref.startswith("#") for ref in references)
    assert "@import" not in page
