"""Printable labels: one symbol with its human-readable interpretation (HRI) underneath.

Three symbologies, each carrying exactly one kind of data:

* ``QR``: a GS1 Digital Link URI in a plain QR Code (no FNC1, so scanners report ``]Q1``),
  error correction level M. Encoded by ``qrcode`` (through :mod:`sealmark.covert.qr`, which
  can also hide the brand's covert mark in it: ``covert_key=``).
* ``DATAMATRIX``: a GS1 element string in a GS1 DataMatrix (FNC1 in first position, ``]d2``);
  the input is the element string as :func:`sealmark.gs1.build_element_string` makes it, with
  GS (ASCII 29) after each variable-length value except the last. Encoded by zint.
* ``GS1_128``: an SSCC with its AI, ``"00"`` + 18 digits, for case and pallet labels (``]C1``).
  Encoded by zint.

The encoders only give us a module matrix; drawing is ours, so PNG and SVG share one layout
(symbol, quiet zone, HRI lines wrapped at AI boundaries) and the HRI is real text in both.
A label is validated when it is built, so an invalid :class:`Label` cannot exist; the encoders'
own errors are translated to :class:`~sealmark.errors.InvalidArgument` in :func:`_encode`.
"""

from __future__ import annotations

import io
import itertools
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import zint
from PIL import Image, ImageDraw, ImageFont

from sealmark.covert import qr as covert_qr
from sealmark.covert.mark import MarkTooSmall
from sealmark.errors import InvalidArgument
from sealmark.gs1 import (
    CSET82,
    GS,
    build_element_string,
    parse_digital_link,
    parse_element_string,
    validate_sscc,
)

__all__ = ["Label", "Symbology", "render_png", "render_svg"]


class Symbology(StrEnum):
    QR = "qr"
    DATAMATRIX = "datamatrix"
    GS1_128 = "gs1-128"


_MAX_HRI = 512
_SSCC_DATA = re.compile(r"00[0-9]{18}")


@dataclass(frozen=True)
class Label:
    """What to print: ``data`` goes into the symbol, ``hri`` is printed under it as given.

    ``data`` must suit ``symbology`` (see the module docstring); ``hri`` is one line of
    printable ASCII, at most 512 characters, and is not checked against ``data``.

    Raises InvalidArgument naming ``Label.symbology``, ``Label.data`` or ``Label.hri``.
    """

    symbology: Symbology
    data: str
    hri: str

    def __post_init__(self) -> None:
        try:
            symbology = Symbology(self.symbology)
        except ValueError:
            want = ", ".join(s.value for s in Symbology)
            raise InvalidArgument(
                "Label.symbology", f"{self.symbology!r}, want one of {want}"
            ) from None
        object.__setattr__(self, "symbology", symbology)
        _validate_data(symbology, self.data, "Label.data")
        if not self.hri or len(self.hri) > _MAX_HRI:
            raise InvalidArgument("Label.hri", f"{len(self.hri)} characters, want 1..{_MAX_HRI}")
        if not all(" " <= char <= "~" for char in self.hri):
            raise InvalidArgument("Label.hri", "want printable ASCII on one line")


def _validate_data(symbology: Symbology, data: str, field: str) -> None:
    if symbology is Symbology.QR:
        parse_digital_link(data, field)
    elif symbology is Symbology.DATAMATRIX:
        for position, char in enumerate(data):
            if char not in CSET82 and char != GS:
                raise InvalidArgument(
                    field,
                    f"character {char!r} at position {position} is neither GS1 CSET 82 nor GS",
                )
        canonical = build_element_string(parse_element_string(data, field))
        if data != canonical:
            raise InvalidArgument(
                field,
                "GS must follow each variable-length value except the last, and nothing else",
            )
    elif not _SSCC_DATA.fullmatch(data):
        raise InvalidArgument(field, f"{data[:40]!r}: want '00' followed by an 18-digit SSCC")
    else:
        validate_sscc(data[2:], field)


# --- encoding: label -> module matrix -------------------------------------------------------

# Quiet zones in modules: QR needs 4 (ISO/IEC 18004), GS1-128 10; DataMatrix needs 1, we
# leave 2 because thermal printers bleed into it.
_QUIET = {Symbology.QR: 4, Symbology.DATAMATRIX: 2, Symbology.GS1_128: 10}
# A logistic label's GS1-128 is at least 31.75 mm high at X = 0.495 mm: 64 modules.
_BAR_HEIGHT = 64
_LINEAR_QUIET_Y = 2


@dataclass(frozen=True)
class _Matrix:
    """Dark modules, row by row, without quiet zone."""

    rows: tuple[tuple[bool, ...], ...]

    @property
    def width(self) -> int:
        return len(self.rows[0])

    @property
    def height(self) -> int:
        return len(self.rows)


def _encode(label: Label, covert_key: bytes | None = None) -> _Matrix:
    if label.symbology is Symbology.QR:
        try:
            encoded = covert_qr.encode(label.data, "M")
        except covert_qr.DoesNotFit as exc:
            raise InvalidArgument("Label.data", f"cannot be encoded: {exc}") from exc
        if covert_key is not None:
            encoded = _covertly_marked(label, encoded, covert_key)
        return _Matrix(encoded.rows)
    if covert_key is not None:
        raise InvalidArgument(
            "covert_key", f"a covert mark needs a QR label, not {label.symbology}"
        )
    symbol = zint.Symbol()
    symbol.input_mode = zint.InputMode.GS1
    symbol.warn_level = zint.WarningLevel.FAIL_ALL
    if label.symbology is Symbology.DATAMATRIX:
        symbol.symbology = zint.Symbology.DATAMATRIX
        symbol.option_3 = zint.DataMatrixOptions.SQUARE
    else:
        symbol.symbology = zint.Symbology.GS1_128
    pairs = parse_element_string(label.data, "Label.data")
    try:
        symbol.encode("".join(f"[{ai}]{value}" for ai, value in pairs))
    except RuntimeError as exc:
        raise InvalidArgument("Label.data", f"cannot be encoded: {exc}") from exc
    # zint packs each row's modules into bytes, least significant bit first.
    packed = symbol.encoded_data
    rows = tuple(
        tuple(bool(packed[y, x >> 3] >> (x & 7) & 1) for x in range(symbol.width))
        for y in range(symbol.rows)
    )
    if label.symbology is Symbology.GS1_128:
        rows = rows[:1] * _BAR_HEIGHT
    return _Matrix(rows)


def _covertly_marked(
    label: Label, encoded: covert_qr.Encoded, covert_key: bytes
) -> covert_qr.Encoded:
    code = {ai: value for ai, value in parse_digital_link(label.data, "Label.data")}
    if "21" not in code:
        raise InvalidArgument("Label.data", "a covert mark needs a serialised code (AI 21)")
    try:
        return covert_qr.marked(encoded, covert_key, code["01"] + code["21"])
    except MarkTooSmall as exc:
        raise InvalidArgument("Label.data", str(exc)) from exc


# --- layout, in modules ---------------------------------------------------------------------

# HRI font size. On a logistic label X is about 0.5 mm and GS1 asks for HRI at least 3 mm
# high; under a 2D symbol (X about 0.3-0.5 mm) the text matters less than its length.
_FONT = {Symbology.QR: 3.0, Symbology.DATAMATRIX: 3.0, Symbology.GS1_128: 6.0}
_CHAR = 0.6  # advance of a monospace character, in font sizes
_LINE = 1.25  # line height, in font sizes
_MIN_COLUMNS = 24  # narrow symbols get a wider label rather than a tower of short lines
_AI_START = re.compile(r"(?=\(\d{2,4}\))")


@dataclass(frozen=True)
class _Layout:
    matrix: _Matrix
    quiet_x: int
    quiet_y: int
    lines: tuple[str, ...]
    font: float
    width: float
    height: float

    @property
    def line(self) -> float:
        return _LINE * self.font

    @property
    def symbol_x(self) -> float:
        return (self.width - self.matrix.width) / 2

    @property
    def symbol_y(self) -> int:
        return self.quiet_y

    @property
    def text_top(self) -> float:
        return self.quiet_y * 2 + self.matrix.height


def _layout(label: Label, covert_key: bytes | None = None) -> _Layout:
    matrix = _encode(label, covert_key)
    quiet_x = _QUIET[label.symbology]
    quiet_y = _LINEAR_QUIET_Y if label.symbology is Symbology.GS1_128 else quiet_x
    font = _FONT[label.symbology]
    symbol_width = matrix.width + 2 * quiet_x
    columns = max(_MIN_COLUMNS, math.floor((symbol_width - font) / (_CHAR * font)))
    lines = _wrap(label.hri, columns)
    width = max(symbol_width, (max(map(len, lines)) * _CHAR + 2) * font)
    height = matrix.height + 2 * quiet_y + (len(lines) * _LINE + 0.5) * font
    return _Layout(matrix, quiet_x, quiet_y, lines, font, math.ceil(width), math.ceil(height))


def _wrap(text: str, columns: int) -> tuple[str, ...]:
    """Greedy wrap at AI boundaries ``(nn)``; a part longer than a line is cut."""
    lines: list[str] = []
    current = ""
    for part in (p for p in _AI_START.split(text) if p):
        if current and len(current) + len(part) > columns:
            lines.append(current)
            current = ""
        current += part
        while len(current) > columns:
            lines.append(current[:columns])
            current = current[columns:]
    if current:
        lines.append(current)
    return tuple(lines)


def _bands(matrix: _Matrix) -> Iterator[tuple[int, int, tuple[bool, ...]]]:
    """(top, height, row) for each stack of identical rows: a linear symbol is one band."""
    top = 0
    for row, group in itertools.groupby(matrix.rows):
        height = sum(1 for _ in group)
        yield top, height, row
        top += height


def _runs(row: tuple[bool, ...]) -> list[tuple[int, int]]:
    """(start, length) of each run of dark modules."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for x, dark in enumerate((*row, False)):
        if dark and start is None:
            start = x
        elif not dark and start is not None:
            runs.append((start, x - start))
            start = None
    return runs


# --- rendering ------------------------------------------------------------------------------

_MAX_MODULE_PX = 64


def render_png(label: Label, *, module_px: int = 4, covert_key: bytes | None = None) -> bytes:
    """An 8-bit greyscale PNG of ``label``, each module ``module_px`` pixels square; with
    ``covert_key`` (the brand's, :mod:`sealmark.crypto.covert`) a QR label carries the covert
    mark of its code (:mod:`sealmark.covert.mark`).

    Raises InvalidArgument naming ``module_px`` unless it is 1..64, naming ``Label.data``
    when the encoder refuses the data (e.g. too long for the symbology) or the symbol cannot
    carry a mark, or naming ``covert_key`` for a mark on a label that is not a QR.
    """
    if not 1 <= module_px <= _MAX_MODULE_PX:
        raise InvalidArgument("module_px", f"{module_px}, want 1..{_MAX_MODULE_PX}")
    layout = _layout(label, covert_key)
    width, height = round(layout.width * module_px), round(layout.height * module_px)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    left = round(layout.symbol_x * module_px)
    for y, rows, row in _bands(layout.matrix):
        top = (layout.symbol_y + y) * module_px
        bottom = top + rows * module_px - 1
        for start, length in _runs(row):
            x0 = left + start * module_px
            draw.rectangle((x0, top, x0 + length * module_px - 1, bottom), fill=0)
    font = _png_font(layout, module_px)
    for index, line in enumerate(layout.lines):
        y_text = (layout.text_top + index * layout.line) * module_px
        draw.text((width / 2, y_text), line, fill=0, font=font, anchor="ma")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _png_font(layout: _Layout, module_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's built-in font is proportional; shrink it until the widest line fits.
    size = max(6.0, layout.font * module_px)
    limit = layout.width * module_px - 2
    while True:
        font = ImageFont.load_default(size)
        if size <= 6 or all(font.getlength(line) <= limit for line in layout.lines):
            return font
        size -= 1


_SVG_NS = "http://www.w3.org/2000/svg"
_SVG_PX = 4  # default pixels per module, as render_png's default


def render_svg(label: Label, *, covert_key: bytes | None = None) -> str:
    """An SVG document of ``label`` in module units (``viewBox``), sized 4 px per module;
    ``covert_key`` as for :func:`render_png`.

    Modules are one ``<path>``; each HRI line is a ``<text>`` element and the whole HRI is
    also the ``<title>``. Raises InvalidArgument naming ``Label.data`` when the encoder
    refuses the data, and as :func:`render_png` for a covert mark.
    """
    layout = _layout(label, covert_key)
    svg = ET.Element(
        "svg",
        {
            "xmlns": _SVG_NS,
            "version": "1.1",
            "width": str(layout.width * _SVG_PX),
            "height": str(layout.height * _SVG_PX),
            "viewBox": f"0 0 {layout.width:g} {layout.height:g}",
            "shape-rendering": "crispEdges",
        },
    )
    ET.SubElement(svg, "title").text = label.hri
    ET.SubElement(svg, "rect", {"width": "100%", "height": "100%", "fill": "#fff"})
    path: list[str] = []
    left = layout.symbol_x
    for y, rows, row in _bands(layout.matrix):
        for start, length in _runs(row):
            path.append(f"M{left + start:g} {layout.symbol_y + y}h{length}v{rows}h-{length}z")
    ET.SubElement(svg, "path", {"d": "".join(path), "fill": "#000"})
    for index, line in enumerate(layout.lines):
        text = ET.SubElement(
            svg,
            "text",
            {
                "x": f"{layout.width / 2:g}",
                "y": f"{layout.text_top + index * layout.line + layout.font * 0.8:g}",
                "font-family": "DejaVu Sans Mono, Consolas, monospace",
                "font-size": f"{layout.font:g}",
                "text-anchor": "middle",
                "fill": "#000",
            },
        )
        text.text = line
    return ET.tostring(svg, encoding="unicode", xml_declaration=True)
