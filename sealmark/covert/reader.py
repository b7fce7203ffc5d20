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
_CENTRE = slice(2, 5)


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
    """A QR symbol found in an image: what it says, its parameters, its modules' centres
    (0 = black .. 255 = white, ``size`` square)."""

    text: str
    data: bytes  # as encoded in the symbol
    version: int
    ec_level: str
    mask: int
    samples: NDArray[np.float64]


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
        samples = _sample(image, corners, size_of(version))
        return Reading(found.text, bytes(found.bytes), version, level, mask, samples)
    return None


def _sample(image: Image.Image, corners: list[tuple[int, int]], size: int) -> NDArray[np.float64]:
    """Mean grey level of the centre of each module, through the perspective transform that
    maps the symbol's outer corners (as zxing-cpp reports them) onto a square grid."""
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
    pixels = np.asarray(warped, dtype=np.float64).reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE)
    centres: NDArray[np.float64] = pixels[:, _CENTRE, :, _CENTRE].mean(axis=(1, 3))
    return centres


def binarise(samples: NDArray[np.float64], clean: tuple[tuple[bool, ...], ...]) -> list[list[bool]]:
    """Dark or light per module, at the grey level halfway between the medians of the modules
    the clean matrix has dark and light (the few marked ones barely move a median)."""
    expected = np.array(clean, dtype=bool)
    if samples.shape != expected.shape or expected.all() or not expected.any():
        raise ValueError("samples and clean matrix differ in shape, or the matrix is one colour")
    threshold = (np.median(samples[expected]) + np.median(samples[~expected])) / 2
    dark: list[list[bool]] = (samples < threshold).tolist()
    return dark


def check(reading: Reading, covert_key: bytes, code_key: str) -> Judgement:
    """Judge ``reading`` for the mark of ``code_key`` under the brand's ``covert_key``. Raises
    :class:`~sealmark.covert.mark.MarkTooSmall` when such a symbol cannot carry a mark, and
    :class:`~sealmark.covert.qr.DoesNotFit` when the text does not fit the symbol's version."""
    clean = qr.encode(reading.data, reading.ec_level, version=reading.version, mask=reading.mask)
    flips = plan(covert_key, code_key, clean.layout)
    return judge(clean.layout, clean.rows, binarise(reading.samples, clean.rows), flips)
