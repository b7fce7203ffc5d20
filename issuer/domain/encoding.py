"""Fast printing of one issuance's codes.

Every code of a request shares GTIN, lot, dates and resolver host; only serial and signature
(or, for a compact-profile product, MAC) differ. The formatter validates and encodes the shared
parts once (through the general GS1 module) and then concatenates.
``tests/unit/test_issuer_encoding.py`` proves it prints exactly what :class:`sealmark.gs1.GS1Code`
prints.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple
from urllib.parse import quote

from sealmark.crypto.mac import MAC_AI, MAC_DIGITS
from sealmark.gs1 import GS, GS1Code, format_yymmdd

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class Printed(NamedTuple):
    element_string: str
    digital_link: str
    hri: str


class CodeFormatter:
    def __init__(
        self,
        gtin: str,
        lot: str,
        expiry: date,
        production_date: date | None,
        resolver_host: str,
    ) -> None:
        # Validate the shared parts once, with a representative serial.
        GS1Code(gtin, "0", lot, expiry, production_date).to_digital_link(resolver_host)
        exp = format_yymmdd(expiry)
        prod = f"11{format_yymmdd(production_date)}" if production_date else ""
        self._es_head = f"01{gtin}17{exp}{prod}10{lot}{GS}21"
        self._hri_head = (
            f"(01){gtin}(17){exp}" + (f"(11){prod[2:]}" if prod else "") + f"(10){lot}(21)"
        )
        self._dl_head = f"https://{resolver_host}/01/{gtin}/10/{quote(lot, safe='')}/21/"
        self._dl_query = f"?17={exp}" + (f"&11={prod[2:]}" if prod else "") + "&8030="

    def print(self, serial: str, signature: str) -> Printed:
        """The three printed forms; ``serial`` must be CSET 82, ``signature`` base64url."""
        encoded = serial if _UNRESERVED.issuperset(serial) else quote(serial, safe="")
        return Printed(
            element_string=f"{self._es_head}{serial}{GS}8030{signature}",
            digital_link=f"{self._dl_head}{encoded}{self._dl_query}{signature}",
            hri=f"{self._hri_head}{serial}",
        )


class CompactFormatter:
    """The printed forms of a compact-profile product's codes: GTIN, serial and the AI (92)
    MAC only. Lot and dates stay in the code's stored row (the Verifier reports them from
    there): carrying them would cost the small symbol the profile exists for."""

    def __init__(self, gtin: str, resolver_host: str) -> None:
        # Validate the shared parts once, with a representative serial and MAC.
        GS1Code(gtin, "0", mac="00" + "0" * MAC_DIGITS).to_digital_link(resolver_host)
        self._es_head = f"01{gtin}21"
        self._hri_head = f"(01){gtin}(21)"
        self._dl_head = f"https://{resolver_host}/01/{gtin}/21/"

    def print(self, serial: str, mac: str) -> Printed:
        """The three printed forms; ``serial`` must be CSET 82, ``mac`` an AI (92) value."""
        encoded = serial if _UNRESERVED.issuperset(serial) else quote(serial, safe="")
        return Printed(
            element_string=f"{self._es_head}{serial}{GS}{MAC_AI}{mac}",
            digital_link=f"{self._dl_head}{encoded}?{MAC_AI}={mac}",
            hri=f"{self._hri_head}{serial}",
        )
