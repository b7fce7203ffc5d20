"""The pictures a brand shows on the consumer page: its logo and a product's image.

What comes in is hostile until proven otherwise. :func:`checked_media` accepts PNG, JPEG and
WebP only, told by their magic bytes (never by a name or a declared type), decodes the image
with Pillow to prove it is one, bounds its bytes and its pixels before a pixel is decoded
(a decompression bomb is refused, not decoded), refuses animations, and re-encodes it, so
what is stored and served carries no metadata (EXIF with a GPS fix, XMP, comments, ICC
profiles) and no bytes after the image. SVG is refused: it is a document that can hold
script and links, and a sanitiser is one more thing to get wrong; a brand rasterises its logo.

Pure apart from Pillow, which only works on the bytes in memory.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from PIL import Image

from sealmark.errors import InvalidArgument

MAX_MEDIA_BYTES = 512 * 1024  # what a brand may send; a phone page should not load more
MAX_SIDE = 2048  # pixels a side: twice the widest a phone shows at 3x density
MIN_SIDE = 16
MAX_ALT_CHARS = 200


class MediaKind(StrEnum):
    LOGO = "logo"  # the brand's logo: per tenant (gtin ""), or per product
    IMAGE = "image"  # the product's picture: per product only


# magic bytes → (Pillow format, media type, file extension)
_FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
}
EXTENSIONS = {media_type: ext for media_type, ext in _FORMATS.values()}


@dataclass(frozen=True)
class StoredMedia:
    """One picture as stored: re-encoded ``body``, its SHA-256 (hex) that names it in the
    page's URL, and what the page needs to lay it out."""

    tenant_id: str
    gtin: str  # 14 digits, or "" for the tenant's own logo
    kind: MediaKind
    sha256: str
    media_type: str
    width: int
    height: int
    body: bytes
    alt: str  # the text a screen reader says for it; "" = the page words one
    updated_at: datetime

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.media_type]


def sniff(data: bytes) -> str | None:
    """The Pillow format the magic bytes announce: PNG, JPEG or WEBP; None for anything
    else (SVG, GIF, HTML, a script...)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _looks_like_svg(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in head


def checked_kind(kind: str, gtin: str, field: str) -> MediaKind:
    """The kind, or InvalidArgument naming ``field``: a product image needs a product."""
    try:
        media_kind = MediaKind(kind)
    except ValueError:
        raise InvalidArgument(field, f"{kind[:40]!r}, want logo or image") from None
    if media_kind is MediaKind.IMAGE and not gtin:
        raise InvalidArgument(field, "an image belongs to a product: give its gtin")
    return media_kind


def checked_alt(alt: str, field: str) -> str:
    text = " ".join(alt.split())
    if len(text) > MAX_ALT_CHARS:
        raise InvalidArgument(field, f"{len(text)} characters, want at most {MAX_ALT_CHARS}")
    return text


def checked_media(data: bytes, field: str) -> tuple[bytes, str, int, int]:
    """(re-encoded bytes, media type, width, height) of a PNG, JPEG or WebP picture.
    InvalidArgument naming ``field`` for anything else: empty, over :data:`MAX_MEDIA_BYTES`,
    SVG or another format, a file that does not decode, an animation, or a side outside
    :data:`MIN_SIDE`..:data:`MAX_SIDE` pixels."""
    if not data:
        raise InvalidArgument(field, "required: a PNG, JPEG or WebP picture")
    if len(data) > MAX_MEDIA_BYTES:
        raise InvalidArgument(field, f"{len(data)} bytes, want at most {MAX_MEDIA_BYTES}")
    kind = sniff(data)
    if kind is None:
        if _looks_like_svg(data):
            raise InvalidArgument(field, "SVG is not accepted: send the logo as PNG or WebP")
        raise InvalidArgument(field, "not a PNG, JPEG or WebP file (by its first bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind])
            width, height = image.size  # from the header: nothing decoded yet
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise InvalidArgument(
                    field,
                    f"{width}x{height} pixels, want {MIN_SIDE}..{MAX_SIDE} pixels a side",
                )
            if getattr(image, "n_frames", 1) != 1:
                raise InvalidArgument(field, "an animation: send a still picture")
            image.load()  # decodes every pixel: a truncated or corrupt file fails here
            body = _reencode(image, kind)
    except InvalidArgument:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidArgument(
            field, f"far more pixels than {MAX_SIDE}x{MAX_SIDE}, want {MIN_SIDE}..{MAX_SIDE} a side"
        ) from exc
    except (OSError, SyntaxError, ValueError, Warning) as exc:
        raise InvalidArgument(field, f"not a readable {kind} picture") from exc
    media_type = _FORMATS[kind][0]
    return body, media_type, width, height


def _reencode(image: Image.Image, kind: str) -> bytes:
    """The pixels alone, written afresh into a new image (whose ``info`` is empty): no EXIF,
    XMP, ICC profile, text chunks or trailing bytes survive."""
    if kind == "JPEG":
        pixels = image.convert("L" if image.mode in ("1", "L") else "RGB")
    elif kind == "PNG" and image.mode in _PNG_MODES and not _palette_alpha(image):
        pixels = image
    else:
        pixels = image.convert("RGBA" if _has_alpha(image) else "RGB")
    fresh = Image.frombytes(pixels.mode, pixels.size, pixels.tobytes())
    if pixels.mode == "P":
        palette = pixels.getpalette()
        if palette is not None:
            fresh.putpalette(palette)
    out = io.BytesIO()
    if kind == "JPEG":
        fresh.save(out, format="JPEG", quality=88, optimize=True, progressive=True)
    elif kind == "PNG":
        fresh.save(out, format="PNG", optimize=True)
    else:
        fresh.save(out, format="WEBP", quality=88, method=4)
    return out.getvalue()


_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})


def _palette_alpha(image: Image.Image) -> bool:
    return image.mode == "P" and "transparency" in image.info


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or "transparency" in image.info


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
