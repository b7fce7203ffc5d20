"""Serial numbers: unguessable, never repeated, always strings.

Chosen scheme: CSPRNG draws (uniform over the product's alphabet, by rejection sampling) with
uniqueness enforced by the primary key on (GTIN, serial) — a collision is simply redrawn. With
the EU FMD bound (issued / space < 1e-4) a collision happens at most once per 10,000 draws, so
redraws cost nothing measurable, and nothing about the scheme needs a secret that could leak or
be rotated. See docs/issuer.md for the comparison with a keyed permutation over counters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from sealmark.errors import ResourceExhausted
from sealmark.tenancy.alphabets import SerialAlphabet

RandomBytes = Callable[[int], bytes]

# EU FMD (Reg. 2016/161 Art. 4): the probability of guessing a serial must stay below 1e-4.
DEFAULT_GUESS_BOUND = 1e-4


def draw_serials(
    alphabet: SerialAlphabet, length: int, count: int, random_bytes: RandomBytes
) -> list[str]:
    """``count`` uniformly random serials of ``length`` symbols of ``alphabet``.

    Rejection sampling on bytes: a byte b < limit (the largest multiple of the radix that fits
    in a byte) becomes ``symbols[b % radix]``, any other byte is dropped, so there is no
    modulo bias. Both steps are one ``bytes.translate`` call per draw.

    Takes the alphabet itself, never its name or a bare string: given the name ``numeric``
    as symbols, serials were once drawn from the letters ``ceimnru`` (issue 25). TypeError for
    anything else, so that a caller outside the type checker cannot repeat it.
    """
    if not isinstance(alphabet, SerialAlphabet):
        raise TypeError(f"draw_serials wants a SerialAlphabet, got {type(alphabet).__name__}")
    table, rejected = _tables(alphabet.symbols)
    need = length * count
    symbols = bytearray()
    while len(symbols) < need:
        symbols += random_bytes(max(64, (need - len(symbols)) * 2)).translate(table, rejected)
    joined = symbols[:need].decode("ascii")
    return [joined[i : i + length] for i in range(0, need, length)]


@functools.lru_cache(maxsize=32)
def _tables(symbols: str) -> tuple[bytes, bytes]:
    radix = len(symbols)
    limit = 256 - 256 % radix
    table = bytes(ord(symbols[b % radix]) if b < limit else 0 for b in range(256))
    return table, bytes(range(limit, 256))


def guess_probability(issued: int, space: int) -> float:
    """Chance that one guessed serial of the right shape is a real one."""
    return issued / space


def check_bound(issued: int, requested: int, space: int, bound: float) -> None:
    """Raise ResourceExhausted when issuing ``requested`` more would reach ``bound``."""
    after = guess_probability(issued + requested, space)
    if after >= bound:
        raise ResourceExhausted(
            f"issuing {requested} more serials would make the guess probability {after:.2e}, "
            f"at or above the bound {bound:.0e} ({issued} issued of a space of {space}); "
            "use a longer serial or a larger alphabet for this product"
        )
