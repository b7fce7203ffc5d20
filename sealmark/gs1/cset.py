"""GS1 AI encodable character set 82 (GS1 General Specifications figure 7.11-1):
``!"%&'()*+,-./0-9:;<=>?A-Z_a-z``; no space, ``#``, ``$``, ``@``, ``[``, ``\\`` … ."""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Set

from sealmark.errors import InvalidArgument

CSET82 = frozenset("!\"%&'()*+,-./:;<=>?_" + string.digits + string.ascii_letters)


def first_outside(value: str, allowed: Set[str]) -> int | None:
    """The position of the first character of ``value`` not in ``allowed``, or None."""
    found = _outside(frozenset(allowed)).search(value)
    return found.start() if found is not None else None


@functools.cache
def _outside(allowed: frozenset[str]) -> re.Pattern[str]:
    """A pattern matching one character not in ``allowed`` (one scan in C, not a loop of
    Python steps per character: this runs on every scanned code)."""
    return re.compile("[^" + "".join(re.escape(char) for char in sorted(allowed)) + "]")


def validate_cset82(value: str, field: str, max_length: int = 20, min_length: int = 1) -> str:
    """Return ``value`` if it is ``min_length..max_length`` characters of CSET 82.

    Raises InvalidArgument naming ``field``, the first bad character and its position.
    """
    if not min_length <= len(value) <= max_length:
        raise InvalidArgument(field, f"{len(value)} characters, want {min_length}..{max_length}")
    bad = first_outside(value, CSET82)
    if bad is not None:
        raise InvalidArgument(
            field, f"character {value[bad]!r} at position {bad} is not in GS1 CSET 82"
        )
    return value
