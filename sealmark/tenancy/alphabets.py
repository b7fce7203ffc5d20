"""Serial alphabets: a product's serial format, resolved once from its name to its symbols.

A product stores the *name* of its alphabet (``numeric``, ``alnum-safe``, ``upper-alnum``);
serials are drawn from its *symbols*. Both travel together in :class:`SerialAlphabet`, so no
caller can hand a name where symbols belong. That mistake was made once (issue 25): minting
was given the name, and serials were drawn from the letters of the word (``numeric`` gave
serials of ``ceimnru``). :func:`legacy_exposure` states what that did to the guess
probability of the serials drawn that way. Pure: standard library only.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from sealmark.errors import InvalidArgument

# GS1 AI encodable character set 82, which AI (21) allows; every alphabet must lie inside it.
_CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)


@dataclass(frozen=True, slots=True)
class SerialAlphabet:
    """A named set of distinct symbols serials are drawn from, uniformly and independently."""

    name: str
    symbols: str

    def __post_init__(self) -> None:
        if len(self.symbols) < 2:
            raise ValueError(f"alphabet {self.name!r}: want at least 2 symbols")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"alphabet {self.name!r}: symbols repeat")
        outside = set(self.symbols) - _CSET82
        if outside:
            raise ValueError(f"alphabet {self.name!r}: {sorted(outside)} are not in CSET 82")

    @property
    def radix(self) -> int:
        return len(self.symbols)

    def space(self, length: int) -> int:
        """How many distinct serials of ``length`` symbols the alphabet allows."""
        return int(self.radix**length)

    def admits(self, serial: str) -> bool:
        """True when every symbol of ``serial`` is one of the alphabet's."""
        return set(serial) <= set(self.symbols)


SERIAL_ALPHABETS: dict[str, SerialAlphabet] = {
    alphabet.name: alphabet
    for alphabet in (
        # Digits only: easy to key in, 10 symbols per character.
        SerialAlphabet("numeric", "0123456789"),
        # URL-safe subset of GS1 CSET 82 without look-alikes (0/O, 1/I/l): 56 symbols.
        SerialAlphabet("alnum-safe", "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"),
        # Digits and upper-case letters: 36 symbols.
        SerialAlphabet("upper-alnum", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    )
}


def alphabet_named(name: str, field_name: str = "serial_alphabet") -> SerialAlphabet:
    """The alphabet called ``name``; InvalidArgument naming ``field_name`` otherwise."""
    try:
        return SERIAL_ALPHABETS[name]
    except KeyError:
        raise InvalidArgument(
            field_name, f"{name!r}, want one of {', '.join(SERIAL_ALPHABETS)}"
        ) from None


@dataclass(frozen=True, slots=True)
class LegacyExposure:
    """The guess risk of serials drawn from the letters of the alphabet's name (issue 25).

    The defective draw mapped each random byte to ``name[b % len(name)]``: each position is
    independent, a letter appearing twice in the name (``alnum-safe`` has two ``a``) is twice
    as likely, and only ``len(set(name)) ** length`` serials can occur.
    """

    symbols: str  # the distinct letters such serials are made of, sorted
    reachable_space: int  # len(symbols) ** length
    uniform_guess_probability: float  # issued / reachable_space
    best_guess_probability: float  # chance that the single most likely serial was issued


def legacy_exposure(name: str, length: int, issued: int) -> LegacyExposure:
    """What ``issued`` serials of ``length`` drawn from the letters of ``name`` expose."""
    if issued < 0 or length < 1:
        raise ValueError("issued must be >= 0 and length >= 1")
    counts = Counter(name)
    reachable = len(counts) ** length
    # The most likely serial repeats the most frequent letter; each issued serial is it with
    # probability p, so the chance that it is among the issued ones is 1 - (1 - p) ** issued.
    p_top = (max(counts.values()) / len(name)) ** length
    best = -math.expm1(issued * math.log1p(-p_top)) if p_top < 1 else float(issued > 0)
    return LegacyExposure(
        symbols="".join(sorted(counts)),
        reachable_space=reachable,
        uniform_guess_probability=issued / reachable,
        best_guess_probability=best,
    )
