"""Where things are in a QR Code symbol (ISO/IEC 18004:2015): function patterns, format and
version information, and the module of every bit of every codeword.

Pure: standard library only. The error-correction block structure (how many blocks, how many
data codewords each) is an input, taken from the encoder, so that this module holds no copy of
the block table; :func:`layout` checks that it fits the version's data area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

Module = tuple[int, int]  # (row, column), 0-based, without quiet zone

EC_LEVELS = ("L", "M", "Q", "H")


def size_of(version: int) -> int:
    """Modules per side: 21 for version 1, 4 more per version, 177 for version 40."""
    if not 1 <= version <= 40:
        raise ValueError(f"QR version {version}, want 1..40")
    return 17 + 4 * version


def alignment_centres(version: int) -> tuple[int, ...]:
    """Row (and column) coordinates of the alignment pattern centres (Annex E)."""
    if version == 1:
        return ()
    count = version // 7 + 2
    last = size_of(version) - 7
    step = 26 if version == 32 else (version * 4 + count * 2 + 1) // (count * 2 - 2) * 2
    return (6, *(last - i * step for i in range(count - 2, -1, -1)))


@cache
def function_modules(version: int) -> frozenset[Module]:
    """Finder patterns with separators, timing patterns, alignment patterns, the dark module,
    and the areas reserved for format and version information: every module whose colour is
    not a codeword bit."""
    n = size_of(version)
    taken: set[Module] = set()
    # Finder + separator + format area: 9x9 top left, 9x8 top right, 8x9 bottom left.
    taken |= {(r, c) for r in range(9) for c in range(9)}
    taken |= {(r, c) for r in range(9) for c in range(n - 8, n)}
    taken |= {(r, c) for r in range(n - 8, n) for c in range(9)}
    taken |= {(6, i) for i in range(n)} | {(i, 6) for i in range(n)}
    centres = alignment_centres(version)
    for row in centres:
        for col in centres:
            if (row, col) in {(6, 6), (6, n - 7), (n - 7, 6)}:
                continue  # under a finder pattern
            taken |= {(row + dr, col + dc) for dr in range(-2, 3) for dc in range(-2, 3)}
    if version >= 7:
        taken |= {(r, c) for r in range(6) for c in range(n - 11, n - 8)}
        taken |= {(r, c) for r in range(n - 11, n - 8) for c in range(6)}
    return frozenset(taken)


def format_modules(version: int) -> frozenset[Module]:
    """The two copies of the 15 format bits (EC level and mask) and the dark module: they
    change with the mask, so a check of the sampling grid leaves them out."""
    n = size_of(version)
    near = {(8, c) for c in (*range(6), 7, 8)} | {(r, 8) for r in (*range(6), 7)}
    far = {(8, c) for c in range(n - 8, n)} | {(r, 8) for r in range(n - 8, n)}
    return frozenset(near | far)


@cache
def data_modules(version: int) -> tuple[Module, ...]:
    """Every non-function module in placement order: upward and downward two-module columns
    from the bottom right, skipping the vertical timing pattern."""
    n = size_of(version)
    function = function_modules(version)
    order: list[Module] = []
    right = n - 1
    while right >= 1:
        if right == 6:
            right = 5
        upward = (right + 1) & 2 == 0
        for vert in range(n):
            row = n - 1 - vert if upward else vert
            for col in (right, right - 1):
                if (row, col) not in function:
                    order.append((row, col))
        right -= 2
    return tuple(order)


@dataclass(frozen=True)
class Block:
    """One Reed-Solomon block: ``total`` codewords of which ``data`` are data."""

    total: int
    data: int

    @property
    def correctable(self) -> int:
        """Codeword errors the block corrects (no erasures): half its EC codewords."""
        return (self.total - self.data) // 2


@dataclass(frozen=True)
class Layout:
    """A symbol's geometry: version, EC level, blocks, and for each codeword (in block order,
    data then EC codewords) the eight modules of its bits, most significant first."""

    version: int
    ec_level: str
    blocks: tuple[Block, ...]
    codewords: tuple[tuple[tuple[Module, ...], ...], ...]  # [block][index] -> 8 modules

    @property
    def size(self) -> int:
        return size_of(self.version)


def layout(version: int, ec_level: str, blocks: Sequence[Block]) -> Layout:
    """The :class:`Layout` of a symbol. Raises ValueError when ``blocks`` (as the encoder gives
    them) do not fill the version's data area with fewer than 8 remainder bits."""
    if ec_level not in EC_LEVELS:
        raise ValueError(f"EC level {ec_level!r}, want one of {', '.join(EC_LEVELS)}")
    blocks = tuple(blocks)
    if not blocks or len({b.total - b.data for b in blocks}) != 1:
        raise ValueError("want one or more blocks with the same number of EC codewords")
    modules = data_modules(version)
    total = sum(b.total for b in blocks)
    if not 0 <= len(modules) - 8 * total < 8:
        raise ValueError(
            f"{total} codewords do not fill version {version}'s {len(modules)} data modules"
        )
    # Interleaving: the i-th data codeword of every block in turn, then the EC codewords.
    order: list[tuple[int, int]] = []
    for i in range(max(b.data for b in blocks)):
        order += [(k, i) for k, b in enumerate(blocks) if i < b.data]
    for i in range(blocks[0].total - blocks[0].data):
        order += [(k, b.data + i) for k, b in enumerate(blocks)]
    placed: list[list[tuple[Module, ...]]] = [[()] * b.total for b in blocks]
    for position, (k, i) in enumerate(order):
        placed[k][i] = modules[8 * position : 8 * position + 8]
    return Layout(version, ec_level, blocks, tuple(tuple(cw) for cw in placed))
