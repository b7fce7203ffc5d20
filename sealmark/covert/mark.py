"""Which modules a brand's covert key marks in one code's symbol, and how a sampled symbol is
judged. Pure: standard library only.

**The plan.** ``seed = HMAC-SHA-256(brand covert key, "sealmark-covert-v1" ‖ code key ‖ version ‖
EC level)`` feeds an HMAC counter stream. In every Reed-Solomon block it picks
``max(1, ⌊BUDGET × correctable⌋)`` codewords and in each of them ``MODULES_PER_CODEWORD`` of
its 8 modules, whose colours are flipped. Flips inside one codeword cost one codeword error, so
the mark spends at most a quarter of each block's correction capacity and an ordinary decoder
reads the same data; the rest stays for real damage. Function patterns, format and version
information are never touched (they hold no codeword bits). Without the key the positions of
another serial cannot be predicted, even from a genuine label of the same brand.

**The rule** (:func:`judge`), on a symbol sampled from an image and the clean matrix of the
decoded text (re-encoded with the symbol's version, EC level and mask):

1. Function patterns (finders, timing, alignment, version information) agree with the clean
   matrix on fewer than ``MIN_GRID_AGREEMENT`` of their modules: the grid was not found,
   UNREADABLE. (Any encoder draws them alike; a blur of half a module still reads 0.96, a label
   bent out of the reader's alignment range about 0.91.)
2. Data modules outside the marked positions differ from the clean matrix on more than
   ``MAX_FOREIGN_NOISE`` of them: the symbol is not our encoding of this text (a copy made by
   other software), ABSENT.
3. That noise is over ``MAX_NOISE``: too blurred or damaged to judge, UNREADABLE.
4. Otherwise the score is the share of marked codewords that *carry* the mark: at least
   ``CARRIED_MODULES`` of their 8 modules read as the mark has them (the keyed ones flipped, the
   other ones clean). PRESENT when the score is at least ``PRESENT_SCORE``, else ABSENT.

A clean re-encode scores 0 (each marked codeword is 4 modules off). Judging whole codewords
rather than modules is what stops a counterfeiter without the key who sprays flips over as many
codewords as the symbol still decodes with: the few marked codewords he touches he almost never
flips in exactly the keyed pattern (1 in 70 for a 4-of-8 guess), and the spray itself pushes the
noise over ``MAX_NOISE`` (tests/unit/test_covert_mark.py sprays the whole budget 40 times).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sealmark.covert.geometry import Layout, Module, format_modules, function_modules

BUDGET = 0.25  # share of each block's correctable codewords the mark may spend
MODULES_PER_CODEWORD = 4  # flipped modules in each marked codeword (of 8)
MIN_MODULES = 24  # fewer marked modules than this is too weak a mark: refuse to plan
MIN_GRID_AGREEMENT = 0.95
MAX_NOISE = 0.15
MAX_FOREIGN_NOISE = 0.35
PRESENT_SCORE = 0.5
CARRIED_MODULES = 7  # of a marked codeword's 8 modules, read as the mark has them

_LABEL = b"sealmark-covert-v1"


class MarkTooSmall(ValueError):
    """The symbol has too little error-correction budget for a mark of MIN_MODULES modules."""


def plan(covert_key: bytes, code_key: str, layout: Layout) -> tuple[Module, ...]:
    """The modules to flip for ``code_key`` (GTIN-14 + serial) in a symbol of ``layout``,
    sorted. Deterministic in its inputs. Raises MarkTooSmall for a symbol too small to carry
    ``MIN_MODULES`` flips, ValueError for a key under 16 bytes."""
    if len(covert_key) < 16:
        raise ValueError("a covert key has at least 16 bytes")
    seed = hmac.new(
        covert_key,
        b"\0".join(
            (_LABEL, code_key.encode(), str(layout.version).encode(), layout.ec_level.encode())
        ),
        hashlib.sha256,
    ).digest()
    draw = _Draw(seed)
    chosen: list[Module] = []
    for block, codewords in zip(layout.blocks, layout.codewords, strict=True):
        count = max(1, int(block.correctable * BUDGET)) if block.correctable else 0
        for index in draw.sample(len(codewords), count):
            modules = codewords[index]
            chosen += (modules[i] for i in draw.sample(len(modules), MODULES_PER_CODEWORD))
    if len(chosen) < MIN_MODULES:
        raise MarkTooSmall(
            f"version {layout.version}-{layout.ec_level} carries {len(chosen)} marked modules,"
            f" want at least {MIN_MODULES}: use a larger symbol or a higher EC level"
        )
    return tuple(sorted(chosen))


def apply(rows: Sequence[Sequence[bool]], flips: Sequence[Module]) -> tuple[tuple[bool, ...], ...]:
    """``rows`` (True = dark) with the modules of ``flips`` inverted."""
    out = [list(row) for row in rows]
    for row, col in flips:
        out[row][col] = not out[row][col]
    return tuple(tuple(row) for row in out)


class Status(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Judgement:
    status: Status
    score: float  # share of the marked codewords that carry the mark, 0..1
    noise: float  # share of the other data modules that read unlike the clean matrix
    grid: float  # share of the function-pattern modules that read as expected
    modules: int  # marked positions looked at
    why: str


def judge(
    layout: Layout,
    clean: Sequence[Sequence[bool]],
    read: Sequence[Sequence[bool]],
    flips: Sequence[Module],
) -> Judgement:
    """The rule of the module docstring. ``clean`` and ``read`` are ``layout.size`` square
    (True = dark); ``flips`` is :func:`plan`'s answer for the brand's key and the code."""
    n = layout.size
    if len(clean) != n or len(read) != n or any(len(r) != n for r in (*clean, *read)):
        raise ValueError(f"want {n}x{n} matrices")
    marked = set(flips)
    grid_modules = function_modules(layout.version) - format_modules(layout.version)
    grid = _share(clean, read, grid_modules)
    others = [m for block in layout.codewords for cw in block for m in cw if m not in marked]
    noise = 1.0 - _share(clean, read, others)
    score = _carried(layout, clean, read, marked)

    def verdict(status: Status, why: str) -> Judgement:
        return Judgement(status, score, noise, grid, len(marked), why)

    if grid < MIN_GRID_AGREEMENT:
        return verdict(Status.UNREADABLE, f"grid agreement {grid:.2f} < {MIN_GRID_AGREEMENT}")
    if noise > MAX_FOREIGN_NOISE:
        return verdict(
            Status.ABSENT, f"data noise {noise:.2f} > {MAX_FOREIGN_NOISE}: not our encoding"
        )
    if noise > MAX_NOISE:
        return verdict(Status.UNREADABLE, f"data noise {noise:.2f} > {MAX_NOISE}")
    if score >= PRESENT_SCORE:
        return verdict(Status.PRESENT, f"score {score:.2f} >= {PRESENT_SCORE}")
    return verdict(Status.ABSENT, f"score {score:.2f} < {PRESENT_SCORE}")


def _carried(
    layout: Layout,
    clean: Sequence[Sequence[bool]],
    read: Sequence[Sequence[bool]],
    marked: set[Module],
) -> float:
    """Share of the codewords holding marked modules whose modules read as the mark has them
    (keyed ones flipped, others clean) in at least CARRIED_MODULES of 8."""
    touched = [cw for block in layout.codewords for cw in block if marked.intersection(cw)]
    carried = 0
    for codeword in touched:
        right = sum((read[r][c] != clean[r][c]) == ((r, c) in marked) for r, c in codeword)
        carried += right >= CARRIED_MODULES
    return carried / len(touched) if touched else 0.0


def _share(
    clean: Sequence[Sequence[bool]], read: Sequence[Sequence[bool]], modules: Iterable[Module]
) -> float:
    """Share of ``modules`` where ``read`` agrees with ``clean``."""
    total = agree = 0
    for row, col in modules:
        total += 1
        agree += clean[row][col] == read[row][col]
    return agree / total if total else 1.0


class _Draw:
    """Uniform draws from an HMAC-SHA-256 counter stream (rejection sampling, no modulo bias)."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._pool = b""

    def below(self, bound: int) -> int:
        limit = (1 << 32) - (1 << 32) % bound
        while True:
            if len(self._pool) < 4:
                block = self._counter.to_bytes(8, "big")
                self._pool += hmac.new(self._seed, block, hashlib.sha256).digest()
                self._counter += 1
            value, self._pool = int.from_bytes(self._pool[:4], "big"), self._pool[4:]
            if value < limit:
                return value % bound

    def sample(self, population: int, count: int) -> list[int]:
        """``count`` distinct indices below ``population`` (a partial Fisher-Yates shuffle)."""
        count = min(count, population)
        items = list(range(population))
        for i in range(count):
            j = i + self.below(population - i)
            items[i], items[j] = items[j], items[i]
        return items[:count]
