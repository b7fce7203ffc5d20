"""The application identifiers Sealmark writes, and the FNC1 rule for all of them.

Only AIs whose first two digits are 00–04, 11–20, 31–36 or 41 have a predefined length
(GS1 General Specifications figure 7.8.5-2); every other AI needs a separator (FNC1 / GS)
after its value unless it is the last element.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealmark.errors import InvalidArgument
from sealmark.gs1.checkdigit import is_valid_key
from sealmark.gs1.cset import validate_cset82

_PREDEFINED = (
    {f"{n:02d}" for n in range(0, 5)}
    | {f"{n:02d}" for n in range(11, 21)}
    | {f"{n:02d}" for n in range(31, 37)}
    | {"41"}
)


def has_predefined_length(ai: str) -> bool:
    return ai[:2] in _PREDEFINED


@dataclass(frozen=True)
class AiSpec:
    ai: str
    title: str
    fixed: int | None  # length when fixed
    max_length: int
    kind: str  # "N" digits, "X" CSET 82, "Z" base64url (CSET 64)


SPECS: dict[str, AiSpec] = {
    spec.ai: spec
    for spec in (
        AiSpec("00", "SSCC", 18, 18, "N"),
        AiSpec("01", "GTIN", 14, 14, "N"),
        AiSpec("10", "BATCH/LOT", None, 20, "X"),
        AiSpec("11", "PROD DATE", 6, 6, "N"),
        AiSpec("15", "BEST BEFORE", 6, 6, "N"),
        AiSpec("17", "USE BY OR EXPIRY", 6, 6, "N"),
        AiSpec("21", "SERIAL", None, 20, "X"),
        AiSpec("22", "CPV", None, 20, "X"),
        AiSpec("8030", "DIGSIG", None, 90, "Z"),
    )
}

_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def validate_value(ai: str, value: str, field: str | None = None) -> str:
    """Check ``value`` against the AI's format when we know the AI; others must be CSET 82."""
    name = field or f"({ai})"
    spec = SPECS.get(ai)
    if spec is None:
        return validate_cset82(value, name, max_length=90)
    if spec.kind == "N":
        if not value.isascii() or not value.isdigit() or len(value) != spec.fixed:
            raise InvalidArgument(name, f"{value[:30]!r}: want {spec.fixed} digits")
        if ai in ("00", "01") and not is_valid_key(value):
            raise InvalidArgument(name, f"{value!r} has a wrong check digit")
        return value
    if spec.kind == "Z":
        if not 1 <= len(value) <= spec.max_length or not set(value) <= _BASE64URL:
            raise InvalidArgument(name, f"want 1..{spec.max_length} base64url characters")
        return value
    return validate_cset82(value, name, max_length=spec.max_length)
