"""A chi-square test of uniform symbol frequencies with a fixed false-alarm rate.

The critical value is exact: the chi-square survival function at integer degrees of freedom
has a closed form (a finite sum, with erfc for odd degrees), inverted by bisection; no SciPy
needed. ``ALPHA`` = 1e-6 per call: a run of the whole suite (a few dozen calls) raises a false
alarm about once in 20,000 runs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

ALPHA = 1e-6


def chi_square_survival(x: float, df: int) -> float:
    """P(X > x) for X chi-square distributed with ``df`` (a positive integer) degrees."""
    t = x / 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, df // 2):
            term *= t / i
            total += term
        return math.exp(-t) * total
    total, term = 0.0, math.sqrt(t) / math.gamma(1.5)
    for i in range(1, (df - 1) // 2 + 1):
        total += term
        term *= t / (i + 0.5)
    return math.erfc(math.sqrt(t)) + math.exp(-t) * total


def chi_square_critical(df: int, alpha: float = ALPHA) -> float:
    """The chi-square value exceeded with probability ``alpha`` at ``df`` degrees."""
    low, high = 0.0, float(df)
    while chi_square_survival(high, df) > alpha:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if chi_square_survival(middle, df) > alpha else (low, middle)
    return high


def chi_square(serials: Iterable[str], symbols: str) -> tuple[float, float]:
    """(statistic, critical value) of the symbol counts of ``serials`` against ``symbols``
    drawn uniformly. A symbol outside ``symbols`` is an AssertionError, not a statistic."""
    counts = Counter("".join(serials))
    outside = set(counts) - set(symbols)
    assert not outside, f"symbols outside the alphabet: {sorted(outside)}"
    total = sum(counts.values())
    expected = total / len(symbols)
    assert expected >= 20, f"too few symbols for the test: {expected:.1f} expected per bin"
    statistic = sum((counts[s] - expected) ** 2 / expected for s in symbols)
    return statistic, chi_square_critical(len(symbols) - 1)


def assert_uniform(serials: list[str], symbols: str) -> None:
    statistic, critical = chi_square(serials, symbols)
    assert statistic < critical, (
        f"symbol frequencies are not uniform: chi-square {statistic:.1f} >= {critical:.1f}"
        f" (df {len(symbols) - 1}, false-alarm rate {ALPHA})"
    )
