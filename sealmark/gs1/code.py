"""One serialised item's GS1 data, and its three printed forms.

What this type prints is what the issuer signs and what ``issuer.domain.encoding`` reproduces
byte for byte, so the order of :meth:`GS1Code.pairs` is part of the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sealmark.errors import InvalidArgument
from sealmark.gs1.ai import validate_value
from sealmark.gs1.checkdigit import normalize_gtin
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
    """GTIN (stored as 14 digits), serial (AI 21), optional lot (10), expiry (17),
    production date (11), signature (8030, base64url) and the MAC of a compact code (92,
    company internal information; see :mod:`sealmark.crypto.mac`).

    Construction validates every field and raises InvalidArgument naming it (``gtin``,
    ``serial``, ``lot``, ``signature``). Dates are plain dates: the parsers need ``today``
    to pick the century of a YYMMDD (GS1 General Specifications §7.12).
    """

    gtin: str
    serial: str
    lot: str | None = None
    expiry: date | None = None
    production_date: date | None = None
    signature: str | None = None
    mac: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gtin", normalize_gtin(self.gtin))
        validate_value("21", self.serial, "serial")
        if self.lot is not None:
            validate_value("10", self.lot, "lot")
        if self.signature is not None:
            validate_value("8030", self.signature, "signature")
        if self.mac is not None:
            validate_value("92", self.mac, "mac")

    def pairs(self) -> list[tuple[str, str]]:
        """AI pairs in element-string order: fixed-length AIs first (no FNC1 needed after
        them), serial after lot, signature last (the longest value, and the only one a
        reader may skip when printing HRI), a compact code's MAC after it."""
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
        if self.mac is not None:
            out.append(("92", self.mac))
        return out

    def to_element_string(self) -> str:
        """The element string, GS after variable-length values, no symbology identifier."""
        return build_element_string(self.pairs())

    def to_hri(self) -> str:
        """HRI text without the signature or MAC: they help no human under a code, and GS1
        requires neither (8030) nor company internal (92) in HRI."""
        return build_hri([p for p in self.pairs() if p[0] not in ("8030", "92")])

    def to_digital_link(self, resolver_host: str) -> str:
        """``https://{resolver_host}/01/…/10/…/21/…?17=…&11=…&8030=…``. ``resolver_host``
        may carry a path prefix (``example.com/p``). Raises InvalidArgument naming ``stem``."""
        return build_digital_link(self.pairs(), f"https://{resolver_host}")

    @classmethod
    def from_pairs(
        cls, pairs: Sequence[tuple[str, str]], *, today: date, field: str = "pairs"
    ) -> GS1Code:
        """Build from parsed pairs; needs (01) and (21). AIs this type does not hold, such as
        (15) or (99), are ignored; (92) is kept as ``mac`` (only a compact product's codes
        give it that meaning). Raises InvalidArgument naming ``field``."""
        values = dict(pairs)
        if "01" not in values or "21" not in values:
            raise InvalidArgument(field, "a serialised item needs (01) GTIN and (21) serial")

        def when(ai: str) -> date | None:
            text = values.get(ai)
            return None if text is None else parse_yymmdd(text, field, today=today)

        return cls(
            gtin=values["01"],
            serial=values["21"],
            lot=values.get("10"),
            expiry=when("17"),
            production_date=when("11"),
            signature=values.get("8030"),
            mac=values.get("92"),
        )

    @classmethod
    def from_element_string(
        cls, payload: str, *, today: date, field: str = "element_string"
    ) -> GS1Code:
        """Parse an element string (see :func:`parse_element_string`)."""
        return cls.from_pairs(parse_element_string(payload, field), today=today, field=field)

    @classmethod
    def from_hri(cls, text: str, *, today: date, field: str = "hri") -> GS1Code:
        """Parse HRI text (see :func:`parse_hri`)."""
        return cls.from_pairs(parse_hri(text, field), today=today, field=field)

    @classmethod
    def from_digital_link(cls, uri: str, *, today: date, field: str = "digital_link") -> GS1Code:
        """Parse a Digital Link URI (see :func:`parse_digital_link`)."""
        return cls.from_pairs(parse_digital_link(uri, field), today=today, field=field)

    @classmethod
    def from_scan(cls, payload: str, *, today: date, field: str = "payload") -> GS1Code:
        """Parse whatever a scanner or phone gives: DL URI, element string or HRI, with or
        without a symbology identifier. Raises InvalidArgument naming ``field``."""
        scan = classify_scan(payload)
        if scan.kind is ScanKind.DIGITAL_LINK:
            return cls.from_digital_link(scan.body, today=today, field=field)
        if scan.kind is ScanKind.ELEMENT_STRING:
            return cls.from_element_string(payload, today=today, field=field)
        if scan.kind is ScanKind.HRI:
            return cls.from_hri(scan.body, today=today, field=field)
        raise InvalidArgument(field, "not a GS1 Digital Link, element string or HRI")
