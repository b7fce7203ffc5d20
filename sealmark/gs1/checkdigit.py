"""GS1 mod-10 check digits for GTIN-8/12/13/14 and SSCC-18 (GS1 General Specifications 7.9).

From the rightmost data digit, weights 3, 1, 3, 1 …; check = (10 − sum mod 10) mod 10.
GTINs are stored as 14 digits (left-padded with zeros), SSCCs as 18.
"""

from __future__ import annotations

from sealmark.errors import InvalidArgument

_GTIN_LENGTHS = (8, 12, 13, 14)


def check_digit(data: str, field: str = "data") -> int:
    """The check digit for ``data`` (the digits before the check digit).

    Raises InvalidArgument naming ``field`` unless ``data`` is one or more ASCII digits.
    """
    if not data.isascii() or not data.isdigit():
        raise InvalidArgument(field, f"{data[:40]!r}: want digits only")
    # Weights 3, 1, 3, … from the right.
    total = 3 * sum(map(int, data[-1::-2])) + sum(map(int, data[-2::-2]))
    return (10 - total % 10) % 10


def is_valid_key(value: str) -> bool:
    """True when ``value`` is all digits and its last digit is the right check digit."""
    return (
        len(value) >= 2
        and value.isascii()
        and value.isdigit()
        and check_digit(value[:-1]) == int(value[-1])
    )


def _validate(value: str, field: str, lengths: tuple[int, ...], what: str) -> None:
    if not value.isascii() or not value.isdigit():
        raise InvalidArgument(field, f"{value[:40]!r} is not a {what}: want digits only")
    if len(value) not in lengths:
        want = "/".join(map(str, lengths))
        raise InvalidArgument(
            field, f"{value!r} is not a {what}: want {want} digits, got {len(value)}"
        )
    expected = check_digit(value[:-1])
    if int(value[-1]) != expected:
        raise InvalidArgument(
            field, f"{value!r} has a wrong check digit: should be {expected}, not {value[-1]}"
        )


def normalize_gtin(value: str, field: str = "gtin") -> str:
    """Validate a GTIN-8/12/13/14 and return it as 14 digits. Raises InvalidArgument."""
    if value in _VALID_GTINS:  # a line sends one GTIN thousands of times
        return _VALID_GTINS[value]
    _validate(value, field, _GTIN_LENGTHS, "GTIN")
    if len(_VALID_GTINS) < 4096:
        _VALID_GTINS[value] = value.zfill(14)
    return value.zfill(14)


_VALID_GTINS: dict[str, str] = {}


def validate_sscc(value: str, field: str = "sscc") -> str:
    """Validate an SSCC-18 and return it. Raises InvalidArgument."""
    _validate(value, field, (18,), "SSCC")
    return value


def make_sscc(extension_digit: int, company_prefix: str, serial_reference: int) -> str:
    """SSCC = extension digit + company prefix + serial reference (zero-padded) + check digit.

    Raises InvalidArgument naming ``extension_digit`` (0..9), ``company_prefix`` (4..12
    digits) or ``serial_reference`` (too wide for the digits the prefix leaves).
    """
    if not 0 <= extension_digit <= 9:
        raise InvalidArgument("extension_digit", f"{extension_digit}, want 0..9")
    digits = company_prefix.isascii() and company_prefix.isdigit()
    if not (digits and 4 <= len(company_prefix) <= 12):
        raise InvalidArgument("company_prefix", f"{company_prefix!r}: want 4..12 digits")
    width = 16 - len(company_prefix)
    if not 0 <= serial_reference < 10**width:
        raise InvalidArgument("serial_reference", f"{serial_reference}: want 0..{10**width - 1}")
    data = f"{extension_digit}{company_prefix}{serial_reference:0{width}d}"
    return data + str(check_digit(data))
