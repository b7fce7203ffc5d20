"""A unit of the packing hierarchy as every service names it: a code (GTIN + serial) or an
SSCC, from its parts or from a scanned payload. Pure: standard library and the GS1 core."""

from __future__ import annotations

from dataclasses import dataclass, field

from sealmark.errors import InvalidArgument
from sealmark.gs1 import (
    ScanKind,
    classify_scan,
    normalize_gtin,
    parse_digital_link,
    parse_element_string,
    parse_hri,
    validate_cset82,
    validate_sscc,
)

SSCC_PREFIX = "sscc:"
MAX_SCAN = 4096


@dataclass(frozen=True)
class UnitRef:
    """A code (GTIN + serial) or an SSCC, as the caller named it."""

    gtin: str = ""
    serial: str = ""
    sscc: str = ""
    # The unit's storage key ("sscc:" + SSCC, or GTIN + serial), made once: it is read many
    # times per unit on the packing path.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = SSCC_PREFIX + self.sscc if self.sscc else self.gtin + self.serial
        object.__setattr__(self, "key", key)

    @property
    def is_sscc(self) -> bool:
        return bool(self.sscc)

    def __str__(self) -> str:
        return f"SSCC {self.sscc}" if self.sscc else f"code {self.gtin} / {self.serial}"

    @classmethod
    def of_key(cls, key: str) -> UnitRef:
        if key.startswith(SSCC_PREFIX):
            return cls(sscc=key[len(SSCC_PREFIX) :])
        return cls(gtin=key[:14], serial=key[14:])


def sgtin(gtin: str, serial: str, field: str) -> UnitRef:
    return UnitRef(
        gtin=normalize_gtin(gtin, f"{field}.sgtin.gtin"),
        serial=validate_cset82(serial, f"{field}.sgtin.serial"),
    )


def sscc(value: str, field: str) -> UnitRef:
    return UnitRef(sscc=validate_sscc(value, f"{field}.sscc"))


def scanned(payload: str, field: str) -> UnitRef:
    """A unit from a scanned payload: a Digital Link URI, an element string (with or without
    symbology identifier) or HRI carrying (00) SSCC or (01) GTIN + (21) serial."""
    name = f"{field}.scanned"
    if len(payload) > MAX_SCAN:
        raise InvalidArgument(name, f"{len(payload)} bytes, at most {MAX_SCAN}")
    scan = classify_scan(payload)
    if scan.kind is ScanKind.DIGITAL_LINK:
        pairs = dict(parse_digital_link(scan.body, name))
    elif scan.kind is ScanKind.ELEMENT_STRING:
        pairs = dict(parse_element_string(payload, name))
    elif scan.kind is ScanKind.HRI:
        pairs = dict(parse_hri(scan.body, name))
    else:
        raise InvalidArgument(name, "not a GS1 Digital Link, element string or HRI")
    if "00" in pairs:
        return sscc(pairs["00"], field)
    if "01" in pairs and "21" in pairs:
        return sgtin(pairs["01"], pairs["21"], field)
    raise InvalidArgument(name, "carries neither (00) SSCC nor (01) GTIN with (21) serial")
