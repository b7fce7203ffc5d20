"""What a scanner or phone hands us: strip the symbology identifier (ISO/IEC 15424) and tell
what the rest is.

``]d2`` GS1 DataMatrix, ``]Q3`` GS1 QR, ``]C1`` GS1-128, ``]e0`` GS1 DataBar and ``]J1`` GS1
DotCode carry element strings (their FNC1 in first position is what the modifier says). A
plain symbol (``]Q1`` QR, ``]d1`` DataMatrix) carries no element string, only text, which for
us means a Digital Link URI or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ScanKind(StrEnum):
    ELEMENT_STRING = "element_string"
    DIGITAL_LINK = "digital_link"
    HRI = "hri"
    UNKNOWN = "unknown"


SYMBOLOGIES = {
    "]d2": "GS1 DataMatrix",
    "]Q3": "GS1 QR",
    "]C1": "GS1-128",
    "]e0": "GS1 DataBar",
    "]J1": "GS1 DotCode",
    "]Q1": "QR",
    "]d1": "DataMatrix",
}
GS1_ELEMENT_SYMBOLOGIES = frozenset({"]d2", "]Q3", "]C1", "]e0", "]J1"})


@dataclass(frozen=True)
class Scan:
    """``symbology`` is the name of the symbology identifier the payload started with (None
    when there was none); ``body`` is the payload without it, ready for the parser of
    ``kind``."""

    kind: ScanKind
    symbology: str | None
    body: str


def strip_symbology(payload: str) -> tuple[str | None, str]:
    """Split off a known symbology identifier: ``("]d2", rest)``, or ``(None, payload)``."""
    prefix = payload[:3]
    if prefix in SYMBOLOGIES:
        return prefix, payload[3:]
    return None, payload


def classify_scan(payload: str) -> Scan:
    """Strip a symbology identifier and tell what the rest is. Never raises: whether the
    body is valid is for the parser of its kind to say."""
    prefix, body = strip_symbology(payload)
    name = SYMBOLOGIES[prefix] if prefix else None
    text = body.strip(" \r\n\t")
    if prefix in GS1_ELEMENT_SYMBOLOGIES:
        return Scan(ScanKind.ELEMENT_STRING, name, body)
    if text.startswith(("http://", "https://", "HTTP://", "HTTPS://")):
        return Scan(ScanKind.DIGITAL_LINK, name, text)
    if prefix is not None:
        # A plain symbol: whatever it holds, it is not a GS1 element string.
        return Scan(ScanKind.UNKNOWN, name, body)
    if text.startswith("(") and text[1:3].isdigit():
        return Scan(ScanKind.HRI, None, text)
    if (text[:2].isascii() and text[:2].isdigit()) or text.startswith(("^", "\x1d")):
        return Scan(ScanKind.ELEMENT_STRING, None, body)
    return Scan(ScanKind.UNKNOWN, None, body)
