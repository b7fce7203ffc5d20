"""The benchmark registry and runner.

A benchmark is a function returning a :class:`Measurement`. It may name a ``baseline``
benchmark; the runner measures the baseline first in the same run (once, however many
benchmarks share it) and reports ``ratio = value / baseline`` (or ``baseline / value`` for
lower-is-better units declared with ``higher_is_better=False``, so a ratio ≥ the bar always
means "good").
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, ClassVar

from sealmark.errors import InvalidArgument


@dataclass(frozen=True)
class Measurement:
    value: float
    unit: str
    peak_rss_mb: float | None = None
    detail: dict[str, float | int | str] | None = None
    # Latencies as (upper bound in ms, calls) buckets, for the report's histograms.
    histogram_ms: list[tuple[float, int]] | None = None


@dataclass(frozen=True)
class Bar:
    """The goal a benchmark is held to (PRODUCT.md, section 5): its ``value``, its ``ratio``
    to the baseline or the server's ``peak_rss_mb``, at least or at most ``limit``."""

    limit: float
    of: str = "value"  # one of OF
    at_least: bool = True

    OF: ClassVar[tuple[str, ...]] = ("value", "ratio", "peak_rss_mb")

    def __post_init__(self) -> None:
        if self.of not in self.OF:
            raise ValueError(f"Bar.of: {self.of!r}, want one of {self.OF}")

    def met(self, value: float, ratio: float | None, peak_rss_mb: float | None) -> bool | None:
        """Whether the measured figure meets the bar; None when there is nothing to judge."""
        measured = {"value": value, "ratio": ratio, "peak_rss_mb": peak_rss_mb}[self.of]
        if measured is None or measured != measured:  # not measured, or NaN
            return None
        return measured >= self.limit if self.at_least else measured <= self.limit

    def text(self) -> str:
        return f"{self.of} {'>=' if self.at_least else '<='} {self.limit:g}"


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[], Measurement]
    baseline: str | None = None
    description: str = ""
    bar: Bar | None = None


_REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str, *, baseline: str | None = None, description: str = "", bar: Bar | None = None
) -> Callable[[Callable[[], Measurement]], Callable[[], Measurement]]:
    """Register ``fn`` as benchmark ``name``; ``bar`` is the goal it is held to."""

    def register(fn: Callable[[], Measurement]) -> Callable[[], Measurement]:
        if name in _REGISTRY:
            raise ValueError(f"benchmark {name} registered twice")
        if bar is not None and bar.of == "ratio" and baseline is None:
            raise ValueError(f"benchmark {name}: a bar on the ratio needs a baseline")
        text = description or (fn.__doc__ or "")
        _REGISTRY[name] = Benchmark(name, fn, baseline, text, bar)
        return fn

    return register


def registered() -> dict[str, Benchmark]:
    _load_all()
    return dict(_REGISTRY)


def _load_all() -> None:
    # Importing the modules registers their benchmarks; kept lazy so `import sealmark` is cheap.
    from sealmark_app.bench import (  # noqa: F401
        aggregation,
        audit,
        baselines,
        compact,
        covert,
        issuance,
        mixed,
        page,
        verification,
        webhooks,
    )


def run(names: Iterable[str], out: IO[str] = sys.stdout) -> list[dict[str, object]]:
    """Run the named benchmarks (all when empty), printing one JSON object per line."""
    available = registered()
    wanted = list(names) or list(available)
    for name in wanted:
        if name not in available:
            raise InvalidArgument("name", f"unknown benchmark {name!r}; have {sorted(available)}")
    results: dict[str, Measurement] = {}
    lines: list[dict[str, object]] = []
    for name in wanted:
        bench = available[name]
        base_value: float | None = None
        if bench.baseline is not None:
            if bench.baseline not in results:
                results[bench.baseline] = available[bench.baseline].run()
            base_value = results[bench.baseline].value
        if name not in results:
            results[name] = bench.run()
        m = results[name]
        ratio = round(m.value / base_value, 4) if base_value else None
        line: dict[str, object] = {
            "name": name,
            "value": round(m.value, 4),
            "unit": m.unit,
            "baseline": round(base_value, 4) if base_value is not None else None,
            "ratio": ratio,
            "peak_rss_mb": m.peak_rss_mb,
        }
        if bench.bar is not None:
            line["bar"] = bench.bar.text()
            line["met"] = bench.bar.met(m.value, ratio, m.peak_rss_mb)
        if m.detail:
            line["detail"] = m.detail
        if m.histogram_ms:
            line["histogram_ms"] = [[bound, count] for bound, count in m.histogram_ms]
        print(json.dumps(line), file=out, flush=True)
        lines.append(line)
    return lines


def self_peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
