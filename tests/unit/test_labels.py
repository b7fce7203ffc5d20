"""Labels decode to exactly the data they were given: every PNG is read back with zxing-cpp."""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET

import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, ImageDraw

from issuer.labels import Label, Symbology, render_png, render_svg
from sealmark.errors import InvalidArgument
from sealmark.gs1 import GS, build_digital_link, build_element_string, build_hri, make_sscc

# A real AI (8030) value: an Ed25519 signature (deterministic) as unpadded base64url.
_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SIGNATURE = base64.urlsafe_b64encode(_KEY.sign(b"sealmark label test")).rstrip(b"=").decode()
PAIRS = [
    ("01", "09520123456788"),
    ("17", "261130"),
    ("10", "LOT-1"),
    ("21", "AbC123xyz"),
    ("8030", SIGNATURE),
]
ELEMENT_STRING = build_element_string(PAIRS)
DIGITAL_LINK = build_digital_link(PAIRS, "https://id.sealmark.example")
HRI = build_hri(PAIRS)
SSCC = make_sscc(0, "9520123", 1)
SSCC_HRI = f"(00){SSCC}"

QR = Label(Symbology.QR, DIGITAL_LINK, HRI)
DATAMATRIX = Label(Symbology.DATAMATRIX, ELEMENT_STRING, HRI)
GS1_128 = Label(Symbology.GS1_128, "00" + SSCC, SSCC_HRI)

EXPECTED = [
    pytest.param(QR, "]Q1", DIGITAL_LINK, id="qr"),
    pytest.param(DATAMATRIX, "]d2", ELEMENT_STRING, id="datamatrix"),
    pytest.param(GS1_128, "]C1", "00" + SSCC, id="gs1-128"),
]


def decode(png: bytes) -> list[tuple[str, str]]:
    """(symbology identifier, content with GS separators) of every symbol in the image."""
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    found = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    return [(barcode.symbology_identifier, barcode.text) for barcode in found]


def parse_svg(svg: str) -> ET.Element:
    """Parse our own output; raises ParseError when it is not well-formed XML."""
    return ET.fromstring(svg)  # noqa: S314 - trusted: rendered by the code under test


def test_vectors_are_what_the_tests_claim() -> None:
    assert len(SIGNATURE) == 86
    assert ELEMENT_STRING.count(GS) == 2  # after (10) and (21); (8030) is last
    assert SSCC == "095201230000000011"


@pytest.mark.parametrize(("label", "identifier", "content"), EXPECTED)
def test_png_decodes_to_exactly_the_data(label: Label, identifier: str, content: str) -> None:
    assert decode(render_png(label)) == [(identifier, content)]


@pytest.mark.parametrize(("label", "identifier", "content"), EXPECTED)
@pytest.mark.parametrize("module_px", [2, 8])
def test_png_decodes_at_other_module_sizes(
    label: Label, identifier: str, content: str, module_px: int
) -> None:
    assert decode(render_png(label, module_px=module_px)) == [(identifier, content)]


def test_png_scales_with_module_px() -> None:
    small = Image.open(io.BytesIO(render_png(QR, module_px=2)))
    large = Image.open(io.BytesIO(render_png(QR, module_px=6)))
    assert large.size == (small.size[0] * 3, small.size[1] * 3)


def test_qr_uses_error_correction_level_m() -> None:
    image = Image.open(io.BytesIO(render_png(QR)))
    (barcode,) = zxingcpp.read_barcodes(image)
    assert barcode.ec_level == "M"


def test_datamatrix_with_fixed_length_ais_only_has_no_separator() -> None:
    pairs = [("01", "09520123456788"), ("17", "261130")]
    label = Label(Symbology.DATAMATRIX, build_element_string(pairs), build_hri(pairs))
    assert decode(render_png(label)) == [("]d2", "0109520123456788" + "17261130")]


@pytest.mark.parametrize("label", [QR, DATAMATRIX, GS1_128], ids=str)
def test_svg_is_well_formed_and_carries_the_hri(label: Label) -> None:
    root = parse_svg(render_svg(label))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    lines = [text.text or "" for text in root.iterfind("svg:text", ns)]
    assert "".join(lines) == label.hri
    assert root.findtext("svg:title", namespaces=ns) == label.hri
    path = root.find("svg:path", ns)
    assert path is not None
    assert path.get("d", "").startswith("M")


_RECT = re.compile(r"M([\d.]+) ([\d.]+)h(\d+)v(\d+)h-\d+z")


@pytest.mark.parametrize(("label", "identifier", "content"), EXPECTED)
def test_svg_geometry_decodes_to_exactly_the_data(
    label: Label, identifier: str, content: str
) -> None:
    # No SVG renderer here: draw the path's rectangles (the only shape render_svg emits).
    root = parse_svg(render_svg(label))
    _, _, width, height = (float(v) for v in root.get("viewBox", "").split())
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    d = path.get("d", "")
    assert _RECT.sub("", d) == ""
    scale = 4
    image = Image.new("L", (round(width * scale), round(height * scale)), 255)
    draw = ImageDraw.Draw(image)
    for x, y, w, h in _RECT.findall(d):
        x0, y0 = float(x) * scale, float(y) * scale
        draw.rectangle((x0, y0, x0 + int(w) * scale - 1, y0 + int(h) * scale - 1), fill=0)
    out = io.BytesIO()
    image.save(out, format="PNG")
    assert decode(out.getvalue()) == [(identifier, content)]


def test_svg_escapes_markup_in_the_hri() -> None:
    pairs = [("01", "09520123456788"), ("10", "A<B&C>'\"")]
    label = Label(Symbology.DATAMATRIX, build_element_string(pairs), build_hri(pairs))
    root = parse_svg(render_svg(label))
    texts = root.iterfind("{http://www.w3.org/2000/svg}text")
    assert "".join(t.text or "" for t in texts) == "(01)09520123456788(10)A<B&C>'\""
    assert decode(render_png(label)) == [("]d2", "0109520123456788" + "10A<B&C>'\"")]


@pytest.mark.parametrize(
    ("symbology", "data", "reason"),
    [
        (Symbology.GS1_128, SSCC, "want '00' followed by an 18-digit SSCC"),
        (Symbology.GS1_128, "01" + SSCC, "want '00' followed by an 18-digit SSCC"),
        (Symbology.GS1_128, "00" + SSCC[:-1] + "3", "wrong check digit"),
        (Symbology.GS1_128, "00" + SSCC + "0", "want '00' followed by an 18-digit SSCC"),
        (Symbology.DATAMATRIX, "0109520123456788" + "10LOT 1", "position 21"),
        (Symbology.DATAMATRIX, "0109520123456788" + "10LOT\u00e91", "neither GS1 CSET 82"),
        (Symbology.DATAMATRIX, "]d20109520123456788", "position 0"),
        (Symbology.DATAMATRIX, "0109520123456788" + GS + "17261130", "GS must follow"),
        (Symbology.DATAMATRIX, "10LOT1" + GS, "GS must follow"),
        (Symbology.DATAMATRIX, "0109520123456789", "check digit"),
        (Symbology.DATAMATRIX, "", "empty element string"),
        (Symbology.QR, "https://id.sealmark.example/10/LOT1", "no (01) GTIN"),
        (Symbology.QR, ELEMENT_STRING, "want an http:// or https:// URI"),
    ],
)
def test_data_that_cannot_be_encoded_is_refused(
    symbology: Symbology, data: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Label(symbology, data, "(00)0")
    assert caught.value.field.startswith("Label.data")
    assert reason in caught.value.reason


@pytest.mark.parametrize("hri", ["", "x" * 513, "line\nbreak", "tab\there"])
def test_bad_hri_is_refused(hri: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Label(Symbology.GS1_128, "00" + SSCC, hri)
    assert caught.value.field == "Label.hri"


def test_unknown_symbology_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        Label("pdf417", "00" + SSCC, SSCC_HRI)  # type: ignore[arg-type]
    assert caught.value.field == "Label.symbology"


def test_symbology_given_as_its_value_is_normalized() -> None:
    label = Label("gs1-128", "00" + SSCC, SSCC_HRI)  # type: ignore[arg-type]
    assert label.symbology is Symbology.GS1_128


@pytest.mark.parametrize("module_px", [0, -1, 65])
def test_bad_module_size_is_refused(module_px: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        render_png(GS1_128, module_px=module_px)
    assert caught.value.field == "module_px"


def test_data_the_encoder_refuses_is_reported_against_the_data() -> None:
    # (422) is a country of origin: well-formed digits, but zint knows 999 is no ISO 3166 code.
    label = Label(Symbology.DATAMATRIX, "0109520123456788" + "422999", "(422)999")
    with pytest.raises(InvalidArgument) as caught:
        render_svg(label)
    assert caught.value.field == "Label.data"
    assert "cannot be encoded" in caught.value.reason
