"""Read a covert mark from an image: find the QR symbol (zxing-cpp), sample each module's
centre through the perspective transform of its corners (Pillow), and judge the keyed
positions against the clean matrix of the decoded text (:func:`sealmark.covert.mark.judge`).

Images are untrusted: :func:`load_image` bounds the byte size, the format (PNG, JPEG, WebP by
magic bytes and by Pillow's own identification) and the pixel count before decoding a pixel,
and every Pillow error becomes :class:`~sealmark.errors.InvalidArgument` naming the field.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import zxingcpp
from numpy.typing import NDArray
from PIL import Image

from sealmark.covert import qr
from sealmark.covert.geometry import EC_LEVELS, size_of
from sealmark.covert.mark import Judgement, judge, plan
from sealmark.errors import InvalidArgument

MAX_IMAGE_BYTES = 6 * 1024 * 1024  # under the gRPC server's 8 MiB message limit
MAX_PIXELS = 40_000_000  # a 48-megapixel phone photo must be scaled down by the client first
MAX_SIDE = 10_000
FORMATS = {"PNG": b"\x89PNG\r\n\x1a\n", "JPEG": b"\xff\xd8\xff"}
_WEBP = (b"RIFF", b"WEBP")
_SUPERSAMPLE = 7  # pixels per module side in the rectified symbol; the centre 3x3 is read
_SHIFT = 3  # rectified pixels (3/7 of a module) a module's centre may move to align locally
_ALIGN_WINDOW = 9  # modules around a module whose agreement with the clean matrix picks its shift
_LIGHT_WINDOW = 15  # modules around a module whose dark and light levels set its threshold


def load_image(data: bytes, field: str) -> Image.Image:
    """``data`` decoded as a greyscale image. Raises InvalidArgument naming ``field`` for an
    empty, oversized, unsupported, truncated or overly large (pixels) image."""
    if not data:
        raise InvalidArgument(field, "required: a PNG, JPEG or WebP image")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidArgument(field, f"{len(data)} bytes, want at most {MAX_IMAGE_BYTES}")
    webp = data[:4] == _WEBP[0] and data[8:12] == _WEBP[1]
    if not webp and not any(data.startswith(magic) for magic in FORMATS.values()):
        raise InvalidArgument(field, "not a PNG, JPEG or WebP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[*FORMATS, "WEBP"])
            width, height = image.size
            if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                raise InvalidArgument(
                    field, f"{width}x{height} pixels, want at most {MAX_PIXELS} ({MAX_SIDE} a side)"
                )
            image.load()
            return image.convert("L")
    except InvalidArgument:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Warning) as exc:
        raise InvalidArgument(field, f"cannot be decoded: {type(exc).__name__}") from exc


@dataclass(frozen=True)
class Reading:
    """A QR symbol found in an image: what it says, its parameters, and the symbol rectified
    to ``_SUPERSAMPLE`` pixels per module (0 = black .. 255 = white)."""

    text: str
    data: bytes  # as encoded in the symbol
    version: int
    ec_level: str
    mask: int
    pixels: NDArray[np.float64]


def find_symbol(image: Image.Image) -> Reading | None:
    """The first QR Code zxing-cpp decodes in ``image``, sampled; None when there is none (or
    zxing gives no version, EC level or mask for it)."""
    found_all = zxingcpp.read_barcodes(
        image,
        formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
        text_mode=zxingcpp.TextMode.Plain,
    )
    for found in found_all:
        extra = found.extra
        if not isinstance(extra, dict):
            continue
        try:
            version, level, mask = (
                int(extra["Version"]),
                str(extra["ECLevel"]),
                int(extra["DataMask"]),
            )
        except (KeyError, TypeError, ValueError):
            continue
        if not found.valid or level not in EC_LEVELS or not 1 <= version <= 40 or not 0 <= mask < 8:
            continue
        p = found.position
        corners = [(c.x, c.y) for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
        pixels = _rectify(image, corners, size_of(version))
        return Reading(found.text, bytes(found.bytes), version, level, mask, pixels)
    return None


def _rectify(image: Image.Image, corners: list[tuple[int, int]], size: int) -> NDArray[np.float64]:
    """The symbol seen straight on, ``_SUPERSAMPLE`` pixels per module: the perspective
    transform that maps its outer corners (as zxing-cpp reports them) onto a square."""
    side = size * _SUPERSAMPLE
    square = [(0, 0), (side, 0), (side, side), (0, side)]
    # Pillow's PERSPECTIVE maps output (x, y) to input ((ax+by+c)/(gx+hy+1), (dx+ey+f)/(…)).
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(square, corners, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    coefficients = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    warped = image.transform(
        (side, side),
        Image.Transform.PERSPECTIVE,
        tuple(float(c) for c in coefficients),
        Image.Resampling.BILINEAR,
        fillcolor=255,
    )
    pixels: NDArray[np.float64] = np.asarray(warped, dtype=np.float64)
    return pixels


def read_modules(
    pixels: NDArray[np.float64], clean: tuple[tuple[bool, ...], ...]
) -> list[list[bool]]:
    """Dark or light per module of a rectified symbol, read against its clean matrix.

    Each module is read at its centre, moved by up to ``_SHIFT`` pixels in the direction that
    makes its neighbourhood (``_ALIGN_WINDOW`` modules square) agree best with the clean matrix:
    four corners fix the grid only where the label is flat and zxing-cpp placed them well, so a
    bent label or a corner estimated a little off is aligned piece by piece. The threshold is
    halfway between the mean levels of the modules the clean matrix has dark and light around
    it (``_LIGHT_WINDOW`` square), for light that falls off across the label. Aligning towards
    the clean matrix can only pull a marked module towards "not flipped": it costs a genuine
    mark a little, it never lends a copy one.
    """
    expected = np.array(clean, dtype=bool)
    n = expected.shape[0]
    side = n * _SUPERSAMPLE
    if pixels.shape != (side, side) or expected.all() or not expected.any():
        raise ValueError("pixels and clean matrix differ in size, or the matrix is one colour")
    padded = np.pad(pixels, _SHIFT, constant_values=255.0)
    # Mean of each 3x3 square, by its centre pixel (offset by one): a module's centre read at
    # any shift is then one strided slice.
    length = padded.shape[0] - 2
    means = np.zeros((length, length))
    for a in range(3):
        for b in range(3):
            means += padded[a : a + length, b : b + length]
    means /= 9
    centre = _SUPERSAMPLE // 2 + _SHIFT - 1
    span = range(-_SHIFT, _SHIFT + 1)
    shifts = [(0, 0), *((dy, dx) for dy in span for dx in span if (dy, dx) != (0, 0))]
    stack = np.stack(
        [
            means[centre + dy :: _SUPERSAMPLE, centre + dx :: _SUPERSAMPLE][:n, :n]
            for dy, dx in shifts
        ]
    )
    centred = stack[0]
    dark, light = expected.astype(np.float64), (~expected).astype(np.float64)
    dark_level = _box(centred * dark, _LIGHT_WINDOW) / np.maximum(_box(dark, _LIGHT_WINDOW), 1)
    light_level = _box(centred * light, _LIGHT_WINDOW) / np.maximum(_box(light, _LIGHT_WINDOW), 1)
    threshold = (dark_level + light_level) / 2
    reads = stack < threshold
    agreement = _box((reads == expected).astype(np.float64), _ALIGN_WINDOW)
    best = np.argmax(agreement, axis=0)  # the first of equals: no shift unless one is better
    chosen: list[list[bool]] = np.take_along_axis(reads, best[None], axis=0)[0].tolist()
    return chosen


def _box(values: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """Sums over the ``width`` x ``width`` window centred on each cell of the last two axes
    (clipped at the edges), by integral image."""
    r = width // 2
    pad = [(0, 0)] * (values.ndim - 2) + [(r + 1, r), (r + 1, r)]
    c = np.pad(values, pad).cumsum(axis=-1).cumsum(axis=-2)
    out: NDArray[np.float64] = (
        c[..., width:, width:]
        - c[..., :-width, width:]
        - c[..., width:, :-width]
        + c[..., :-width, :-width]
    )
    return out


def check(reading: Reading, covert_key: bytes, code_key: str) -> Judgement:
    """Judge ``reading`` for the mark of ``code_key`` under the brand's ``covert_key``. Raises
    :class:`~sealmark.covert.mark.MarkTooSmall` when such a symbol cannot carry a mark, and
    :class:`~sealmark.covert.qr.DoesNotFit` when the text does not fit the symbol's version."""
    clean = qr.encode(reading.data, reading.ec_level, version=reading.version, mask=reading.mask)
    flips = plan(covert_key, code_key, clean.layout)
    return judge(clean.layout, clean.rows, read_modules(reading.pixels, clean.rows), flips)
