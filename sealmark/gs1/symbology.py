"""What a scanner or phone hands us: classify a payload by its symbology identifier
(ISO/IEC 15424) or its shape."""

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
    "]Q1": "QR",
    "]d1": "DataMatrix",
}
_GS1_ELEMENT = ("]d2", "]Q3", "]C1", "]e0")


@dataclass(frozen=True)
class Scan:
    kind: ScanKind
    symbology: str | None
    body: str


def classify_scan(payload: str) -> Scan:
    """Strip a symbology identifier and tell what the rest is."""
    prefix = payload[:3] if payload[:3] in SYMBOLOGIES else None
    body = payload[3:] if prefix else payload
    stripped = body.strip()
    if prefix in _GS1_ELEMENT:
        return Scan(ScanKind.ELEMENT_STRING, SYMBOLOGIES[prefix], body)
    if stripped.lower().startswith(("http://", "https://")):
        return Scan(ScanKind.DIGITAL_LINK, SYMBOLOGIES.get(prefix or ""), stripped)
    if stripped.startswith("("):
        return Scan(ScanKind.HRI, SYMBOLOGIES.get(prefix or ""), stripped)
    if stripped[:2].isdigit() or stripped.startswith("^"):
        return Scan(ScanKind.ELEMENT_STRING, SYMBOLOGIES.get(prefix or ""), body)
    return Scan(ScanKind.UNKNOWN, SYMBOLOGIES.get(prefix or ""), body)
