"""Serial numbers: unguessable, never repeated, always strings.

Chosen scheme: CSPRNG draws (uniform over the product's alphabet, by rejection sampling) with
uniqueness enforced by the primary key on (GTIN, serial) — a collision is simply redrawn. With
the EU FMD bound (issued / space < 1e-4) a collision happens at most once per 10,000 draws, so
redraws cost nothing measurable, and nothing about the scheme needs a secret that could leak or
be rotated. See docs/issuer.md for the comparison with a keyed permutation over counters.
"""

from __future__ import annotations

from collections.abc import Callable

from sealmark.errors import ResourceExhausted

RandomBytes = Callable[[int], bytes]

# EU FMD (Reg. 2016/161 Art. 4): the probability of guessing a serial must stay below 1e-4.
DEFAULT_GUESS_BOUND = 1e-4


def draw_serials(alphabet: str, length: int, count: int, random_bytes: RandomBytes) -> list[str]:
    """``count`` uniformly random serials of ``length`` symbols from ``alphabet``."""
    radix = len(alphabet)
    # Rejection sampling on bytes: accept b < limit (a multiple of radix) to avoid modulo bias.
    limit = 256 - 256 % radix
    need = length * count
    symbols: list[str] = []
    while len(symbols) < need:
        chunk = random_bytes(max(64, (need - len(symbols)) * 2))
        symbols.extend(alphabet[b % radix] for b in chunk if b < limit)
    joined = "".join(symbols[:need])
    return [joined[i : i + length] for i in range(0, need, length)]


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
