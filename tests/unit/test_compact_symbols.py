"""Symbol sizes of the signed and compact code profiles, as the project's renderer draws them.

Each label is rendered by issuer.labels (zint for GS1 DataMatrix, qrcode for QR), read back
with zxing-cpp, and its size taken from the result twice: the symbol version zxing-cpp reports,
and the decoded symbol's extent in pixels divided by the module size. docs/issuer.md ("Compact
MAC profile") states these numbers; a change of encoder, MAC length or layout that moves them
fails here first.
"""

from __future__ import annotations

import io
from datetime import date

import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from issuer.domain.encoding import CodeFormatter, CompactFormatter, Printed
from issuer.labels import Label, Symbology, render_png
from sealmark.crypto.mac import MacScheme
from sealmark.crypto.signature import canonical_bytes, encode_ai8030

GTIN = "09520123456788"
LOT = "L2401A"
EXPIRY = date(2027, 12, 31)
HOST = "id.example.com"
NUMERIC = "482910375562"  # the default product: 12 digits (serial_alphabet "numeric")
ALNUM = "K7QX2M9PL4RT"  # 12 characters of "alnum-safe"
LONGEST = "K7QX2M9PL4RTAB3CD5EF"  # 20 characters, the most AI (21) allows
MODULE_MM = 0.25
MODULE_PX = 4
_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
_MACS = MacScheme(b"sealmark-test-mac-secret-0123456789")


def signed(serial: str) -> Printed:
    message = canonical_bytes(GTIN, serial, LOT, EXPIRY.strftime("%y%m%d"), "01")
    signature = encode_ai8030("01", _KEY.sign(message))
    return CodeFormatter(GTIN, LOT, EXPIRY, None, HOST).print(serial, signature)


def compact(serial: str, key_id: str = "01") -> Printed:
    mac = _MACS.encoder("acme", key_id, GTIN)(serial)
    return CompactFormatter(GTIN, HOST).print(serial, mac)


def read(label: Label) -> tuple[str, str, int]:
    """(content, symbol version as zxing-cpp reports it, modules across as drawn)."""
    image = Image.open(io.BytesIO(render_png(label, module_px=MODULE_PX)))
    (found,) = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    assert found.symbology_identifier == (
        "]d2" if label.symbology is Symbology.DATAMATRIX else "]Q1"
    )
    position = found.position
    pixels = position.top_right.x - position.top_left.x
    assert pixels % MODULE_PX == 0 and pixels == position.bottom_left.y - position.top_left.y
    extra = found.extra  # zxing-cpp's symbol details: {"Version": "22x22", ...}
    assert isinstance(extra, dict)
    return found.text, str(extra["Version"]), pixels // MODULE_PX


# (profile, serial, expected DataMatrix size in modules). The signed form carries
# (01)(17)(10)(21)(8030), the compact form (01)(21)(92). A signed symbol's size depends on its
# signature's characters too (digit pairs pack into one codeword): 40x40 or 44x44 for these
# serials (docs/issuer.md gives the spread over random keys); the key here is fixed. A compact
# symbol's size depends on the serial alone: its MAC is always 20 digits.
DATAMATRIX = [
    pytest.param(signed, NUMERIC, 40, id="signed-numeric"),
    pytest.param(compact, NUMERIC, 22, id="compact-numeric"),
    pytest.param(signed, ALNUM, 44, id="signed-alnum"),
    pytest.param(compact, ALNUM, 24, id="compact-alnum"),
    pytest.param(signed, LONGEST, 44, id="signed-20"),
    pytest.param(compact, LONGEST, 26, id="compact-20"),
]


@pytest.mark.parametrize(("form", "serial", "size"), DATAMATRIX)
def test_datamatrix_sizes(form, serial: str, size: int) -> None:  # type: ignore[no-untyped-def]
    printed = form(serial)
    label = Label(Symbology.DATAMATRIX, printed.element_string, printed.hri)
    content, version, modules = read(label)
    assert content == printed.element_string  # decodes to exactly what was minted
    assert version == f"{size}x{size}"
    assert modules == size


def test_compact_is_several_sizes_smaller_and_prints_in_half_the_width() -> None:
    sizes = {}
    for name, form in (("signed", signed), ("compact", compact)):
        printed = form(NUMERIC)
        sizes[name] = read(Label(Symbology.DATAMATRIX, printed.element_string, printed.hri))[2]
    # ECC 200 square sizes between: 24, 26, 32, 36 - five sizes smaller.
    assert (sizes["signed"], sizes["compact"]) == (40, 22)
    # Smallest print at 0.25 mm modules, with the 1-module quiet zone ISO/IEC 16022 asks for.
    assert (sizes["compact"] + 2) * MODULE_MM == 6.0
    assert (sizes["signed"] + 2) * MODULE_MM == 10.5
    # The area (what a small pack has to spare) shrinks to about a third.
    assert ((sizes["compact"] + 2) / (sizes["signed"] + 2)) ** 2 < 0.33


def test_a_letter_in_the_key_id_still_fits_the_small_symbol() -> None:
    # Key ids run 01..09 and then 0A..: a letter costs a DataMatrix codeword of its own.
    printed = compact(NUMERIC, key_id="0A")
    label = Label(Symbology.DATAMATRIX, printed.element_string, printed.hri)
    assert read(label)[1:] == ("22x22", 22)


@pytest.mark.parametrize(
    ("form", "version"),
    [pytest.param(signed, "9", id="signed"), pytest.param(compact, "5", id="compact")],
)
def test_digital_link_qr_versions(form, version: str) -> None:  # type: ignore[no-untyped-def]
    printed = form(NUMERIC)
    content, found, modules = read(Label(Symbology.QR, printed.digital_link, printed.hri))
    assert content == printed.digital_link
    assert found == version
    assert modules == 17 + 4 * int(version)
