"""GS1 application identifiers: the ones Sealmark writes, the FNC1 rule, and value checks.

Only AIs whose first two digits are 00–04, 11–20, 31–36 or 41 have a predefined length
(GS1 General Specifications figure 7.8.5-2); every other AI needs a separator (FNC1 / GS)
after its value unless it is the last element.

The AIs we write have their own specs here so that errors say exactly what is wrong. Any
other AI a scan may carry (``(99)``, ``(98)``, ``(3103)`` …) is checked against biip's bundled
copy of the GS1 Barcode Syntax Dictionary: it must exist and its value must match the AI's
format. Everything is also held to CSET 82, whatever the table says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from biip import ParseError
from biip.gs1_application_identifiers import GS1ApplicationIdentifier

from sealmark.errors import InvalidArgument
from sealmark.gs1.checkdigit import check_digit
from sealmark.gs1.cset import CSET82, first_outside
from sealmark.gs1.dates import yymmdd_problem

_PREDEFINED = (
    {f"{n:02d}" for n in range(0, 5)}
    | {f"{n:02d}" for n in range(11, 21)}
    | {f"{n:02d}" for n in range(31, 37)}
    | {"41"}
)
_AI_SHAPE = re.compile(r"\d{2,4}")
BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
# GS1 values never exceed 90 characters (the longest AI format is X..90 / Z..90).
MAX_VALUE_LENGTH = 90


def has_predefined_length(ai: str) -> bool:
    """True when no FNC1 is needed after this AI's value (figure 7.8.5-2)."""
    return ai[:2] in _PREDEFINED


@dataclass(frozen=True)
class AiSpec:
    """What we check for an AI we write: ``kind`` is ``N`` (digits), ``X`` (CSET 82), ``Z``
    (base64url, CSET 64 without padding) or ``D`` (a YYMMDD date, day 00 allowed)."""

    ai: str
    title: str
    min_length: int
    max_length: int
    kind: str


SPECS: dict[str, AiSpec] = {
    spec.ai: spec
    for spec in (
        AiSpec("00", "SSCC", 18, 18, "N"),
        AiSpec("01", "GTIN", 14, 14, "N"),
        AiSpec("10", "BATCH/LOT", 1, 20, "X"),
        AiSpec("11", "PROD DATE", 6, 6, "D"),
        AiSpec("15", "BEST BEFORE", 6, 6, "D"),
        AiSpec("17", "USE BY OR EXPIRY", 6, 6, "D"),
        AiSpec("21", "SERIAL", 1, 20, "X"),
        AiSpec("22", "CPV", 1, 20, "X"),
        AiSpec("8030", "DIGSIG", 1, 90, "Z"),
        AiSpec("92", "INTERNAL", 1, 90, "X"),
    )
}


def is_known_ai(ai: str) -> bool:
    """True when ``ai`` is an application identifier of the GS1 General Specifications."""
    if ai in SPECS:
        return True
    if not _AI_SHAPE.fullmatch(ai):
        return False
    try:
        return GS1ApplicationIdentifier.extract(ai).ai == ai
    except ParseError:
        return False


def validate_ai(ai: str, field: str) -> str:
    """Return ``ai`` if it is a known AI; raise InvalidArgument naming ``field`` if not."""
    if not is_known_ai(ai):
        raise InvalidArgument(field, f"({ai[:10]}) is not a GS1 application identifier")
    return ai


def validate_value(ai: str, value: str, field: str | None = None) -> str:
    """Return ``value`` if it is a valid value for ``ai``.

    Checks length, character set (digits, CSET 82 or base64url), the check digit of (00) and
    (01), and that dates have a real month and day (day 00 allowed). Raises InvalidArgument
    naming ``field`` (default ``(ai)``) with a message that starts with the AI.
    """
    name = field or f"({ai})"
    validate_ai(ai, name)
    spec = SPECS.get(ai)
    reason = _spec_problem(spec, value) if spec else _table_problem(ai, value)
    if reason:
        raise InvalidArgument(name, f"({ai}) {reason}")
    return value


def validate_pairs(pairs: Sequence[tuple[str, str]], field: str) -> None:
    """Check a whole message: at least one pair, known AIs, no AI twice, valid values.

    Raises InvalidArgument naming ``field``.
    """
    if not pairs:
        raise InvalidArgument(field, "at least one AI is required")
    seen: set[str] = set()
    for ai, value in pairs:
        validate_ai(ai, field)
        if ai in seen:
            # GS1 forbids an AI twice with different values; the same value twice is noise
            # that would change what we sign, so it is refused too.
            raise InvalidArgument(field, f"({ai}) appears more than once")
        seen.add(ai)
        validate_value(ai, value, field)


def unpad_digsig(value: str, field: str) -> str:
    """A (8030) value as read from a scan, without base64url ``=`` padding.

    The signature is base64url without padding (CSET 64); some encoders pad it all the same.
    ``abc=`` and ``abc`` are the same signature, so the padding is dropped when it is well
    formed: one or two ``=`` that bring the length to a multiple of 4. Anything else is left
    for :func:`validate_value` to refuse. Raises InvalidArgument naming ``field`` for
    malformed padding."""
    unpadded = value.rstrip("=")
    if unpadded == value:
        return value
    if not unpadded or len(value) - len(unpadded) > 2 or len(value) % 4:
        raise InvalidArgument(
            field,
            f"(8030) malformed base64url padding: {len(value) - len(unpadded)} '='"
            f" after {len(unpadded)} characters",
        )
    return unpadded


def _spec_problem(spec: AiSpec, value: str) -> str | None:
    if not spec.min_length <= len(value) <= spec.max_length:
        want = (
            str(spec.max_length)
            if spec.min_length == spec.max_length
            else f"{spec.min_length}..{spec.max_length}"
        )
        return f"{spec.title} is {len(value)} characters, want {want}"
    if spec.kind in ("N", "D") and not (value.isascii() and value.isdigit()):
        return f"{spec.title} {value!r}: want digits only"
    if spec.kind == "N":
        expected = check_digit(value[:-1])
        if int(value[-1]) != expected:
            return f"{spec.title} {value!r} has a wrong check digit: should be {expected}"
    if spec.kind == "D":
        return yymmdd_problem(value)
    if spec.kind == "Z":
        bad = first_outside(value, BASE64URL)
        if bad is not None:
            return f"{spec.title}: character {value[bad]!r} at position {bad} is not base64url"
    if spec.kind == "X":
        bad = first_outside(value, CSET82)
        if bad is not None:
            return f"{spec.title}: character {value[bad]!r} at position {bad} is not in GS1 CSET 82"
    return None


def _table_problem(ai: str, value: str) -> str | None:
    # AIs we never write but may meet in a scan: biip's AI table knows their formats.
    if not 1 <= len(value) <= MAX_VALUE_LENGTH:
        return f"value is {len(value)} characters, want 1..{MAX_VALUE_LENGTH}"
    bad = first_outside(value, CSET82)
    if bad is not None:
        return f"character {value[bad]!r} at position {bad} is not in GS1 CSET 82"
    pattern = GS1ApplicationIdentifier.extract(ai).pattern
    if re.fullmatch(pattern, ai + value) is None:
        return f"{value[:30]!r} does not match the AI's format"
    return None
