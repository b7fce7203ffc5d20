"""One serialised item's GS1 data, and its three printed forms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sealmark.errors import InvalidArgument
from sealmark.gs1.checkdigit import normalize_gtin
from sealmark.gs1.cset import validate_cset82
from sealmark.gs1.dates import format_yymmdd, parse_yymmdd
from sealmark.gs1.digital_link import build_digital_link, parse_digital_link
from sealmark.gs1.element_string import (
    build_element_string,
    build_hri,
    parse_element_string,
    parse_hri,
)
from sealmark.gs1.symbology import ScanKind, classify_scan


@dataclass(frozen=True)
class GS1Code:
    """GTIN (14 digits), serial (AI 21), optional lot (10), expiry (17), production date (11)
    and signature (8030). Construction validates every field."""

    gtin: str
    serial: str
    lot: str | None = None
    expiry: date | None = None
    production_date: date | None = None
    signature: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gtin", normalize_gtin(self.gtin))
        validate_cset82(self.serial, "serial")
        if self.lot is not None:
            validate_cset82(self.lot, "lot")

    def pairs(self) -> list[tuple[str, str]]:
        """AI pairs in element-string order: fixed-length first, signature last."""
        out = [("01", self.gtin)]
        if self.expiry is not None:
            out.append(("17", format_yymmdd(self.expiry)))
        if self.production_date is not None:
            out.append(("11", format_yymmdd(self.production_date)))
        if self.lot is not None:
            out.append(("10", self.lot))
        out.append(("21", self.serial))
        if self.signature is not None:
            out.append(("8030", self.signature))
        return out

    def to_element_string(self) -> str:
        return build_element_string(self.pairs())

    def to_hri(self) -> str:
        return build_hri([p for p in self.pairs() if p[0] != "8030"])

    def to_digital_link(self, resolver_host: str) -> str:
        return build_digital_link(self.pairs(), f"https://{resolver_host}")

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]], *, today: date, field: str) -> GS1Code:
        values = dict(pairs)
        if "01" not in values or "21" not in values:
            raise InvalidArgument(field, "a serialised item needs (01) GTIN and (21) serial")
        return cls(
            gtin=values["01"],
            serial=values["21"],
            lot=values.get("10"),
            expiry=parse_yymmdd(values["17"], f"{field} (17)", today=today)
            if "17" in values
            else None,
            production_date=(
                parse_yymmdd(values["11"], f"{field} (11)", today=today) if "11" in values else None
            ),
            signature=values.get("8030"),
        )

    @classmethod
    def from_scan(cls, payload: str, *, today: date, field: str = "payload") -> GS1Code:
        """Parse whatever a scanner or phone gives: DL URI, element string, or HRI."""
        scan = classify_scan(payload)
        if scan.kind is ScanKind.DIGITAL_LINK:
            pairs = parse_digital_link(scan.body, field)
        elif scan.kind is ScanKind.ELEMENT_STRING:
            pairs = parse_element_string(scan.body, field)
        elif scan.kind is ScanKind.HRI:
            pairs = parse_hri(scan.body, field)
        else:
            raise InvalidArgument(field, "not a GS1 Digital Link, element string or HRI")
        return cls.from_pairs(pairs, today=today, field=field)
