"""EPC URNs (TDS escaping, malformed URNs) and scan classification by symbology identifier."""

from __future__ import annotations

import pytest

from sealmark.errors import InvalidArgument
from sealmark.gs1 import classify_scan, epc_urn_to_pairs, sgtin_urn
from sealmark.gs1.symbology import ScanKind

GTIN = "09520123456788"


@pytest.mark.parametrize(
    ("urn", "reason"),
    [
        ("urn:epc:id:sgtin:0614141.107346.a/b", "'/' must be escaped as %2F"),
        ("urn:epc:id:sgtin:0614141.107346.%41", "%41 is not an EPC URN escape"),
        ("urn:epc:id:sgtin:0614141.107346.a%", "'%' must be escaped"),
        ("urn:epc:id:sgtin:0614141.107346.", "want 1..20"),
        ("urn:epc:id:sgtin:0614141.10734.1", "13 digits"),
        ("urn:epc:id:sgtin:06141.1073464.1", "6..12 digits"),
        ("urn:epc:class:sgtin:0614141.107346.1", "urn:epc:id scheme"),
        ("urn:epc:id:sscc:0614141.1234567890.1", "17 digits"),
        ("urn:epc:id:sgln:0614141.12345.0", "not an sgtin, sscc or lgtin"),
    ],
)
def test_bad_epc_urns(urn: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        epc_urn_to_pairs(urn, "Event.epc")
    assert caught.value.field == "Event.epc"
    assert reason in caught.value.reason


def test_epc_serial_escaping_follows_tds() -> None:
    urn = sgtin_urn(GTIN, "\"%&/<>?!'()*+,-.:;=_", 7)
    assert urn.endswith(".%22%25%26%2F%3C%3E%3F!'()*+,-.:;=_")
    assert epc_urn_to_pairs(urn)[1] == ("21", "\"%&/<>?!'()*+,-.:;=_")
    with pytest.raises(InvalidArgument, match="company_prefix_length"):
        sgtin_urn(GTIN, "1", 13)


@pytest.mark.parametrize(
    ("payload", "kind", "symbology"),
    [
        (f"]Q1https://x/01/{GTIN}", ScanKind.DIGITAL_LINK, "QR"),
        (f"]d1https://x/01/{GTIN}", ScanKind.DIGITAL_LINK, "DataMatrix"),
        (f"https://x/01/{GTIN}\r\n", ScanKind.DIGITAL_LINK, None),
        (f"]d201{GTIN}", ScanKind.ELEMENT_STRING, "GS1 DataMatrix"),
        (f"]e001{GTIN}", ScanKind.ELEMENT_STRING, "GS1 DataBar"),
        (f"\x1d01{GTIN}", ScanKind.ELEMENT_STRING, None),
        (f"^01{GTIN}", ScanKind.ELEMENT_STRING, None),
        (f"(01){GTIN}", ScanKind.HRI, None),
        (f"]Q101{GTIN}", ScanKind.UNKNOWN, "QR"),
        ("hello", ScanKind.UNKNOWN, None),
        ("", ScanKind.UNKNOWN, None),
    ],
)
def test_classify_scan(payload: str, kind: ScanKind, symbology: str | None) -> None:
    scan = classify_scan(payload)
    assert (scan.kind, scan.symbology) == (kind, symbology)
