"""GS1 AI encodable character set 82 (GS1 General Specifications figure 7.11-1)."""

from __future__ import annotations

import string

from sealmark.errors import InvalidArgument

CSET82 = frozenset("!\"%&'()*+,-./:;<=>?_" + string.digits + string.ascii_letters)


def validate_cset82(value: str, field: str, max_length: int = 20, min_length: int = 1) -> str:
    """Return ``value`` if it is ``min_length..max_length`` characters of CSET 82.

    Raises InvalidArgument naming the first bad character and its position.
    """
    if not min_length <= len(value) <= max_length:
        raise InvalidArgument(field, f"{len(value)} characters, want {min_length}..{max_length}")
    for position, char in enumerate(value):
        if char not in CSET82:
            raise InvalidArgument(
                field, f"character {char!r} at position {position} is not in GS1 CSET 82"
            )
    return value
