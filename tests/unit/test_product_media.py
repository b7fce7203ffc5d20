"""The consumer page's pictures as the Issuer takes them: only real PNG, JPEG and WebP
stills within bounds, re-encoded without metadata; and the use case on the fakes (ownership,
replace, remove)."""

from __future__ import annotations

import io
import zlib
from datetime import UTC, datetime

import pytest
from PIL import Image, PngImagePlugin

from issuer.domain.media import (
    MAX_MEDIA_BYTES,
    MAX_SIDE,
    MediaKind,
    checked_alt,
    checked_kind,
    checked_media,
    digest,
    sniff,
)
from issuer.media import ProductMediaRegistry
from issuer.memory_media import MemoryProductMedia
from sealmark.clock import FixedClock
from sealmark.errors import InvalidArgument, NotFound, PermissionDenied
from sealmark.storage.memory import MemoryStore
from sealmark.tenancy.model import Principal, Product, Role
from tests.storage_contract import gtin_under, tenant

FIELD = "SetProductMediaRequest.content"
NOW = datetime(2026, 5, 3, 9, 0, tzinfo=UTC)


def picture(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB", **save: object) -> bytes:
    image = Image.new(mode, size, (200, 30, 30) if mode == "RGB" else 128)
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def _exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x9003] = "2026:05:03 08:12:00"  # DateTimeOriginal
    return picture("JPEG", exif=exif.tobytes())


@pytest.mark.parametrize(
    ("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_the_three_formats_are_taken_and_re_encoded(fmt: str, media_type: str) -> None:
    data = picture(fmt)
    body, kind, width, height = checked_media(data, FIELD)
    assert (kind, width, height) == (media_type, 64, 48)
    assert sniff(body) == fmt
    with Image.open(io.BytesIO(body)) as again:
        assert again.size == (64, 48) and again.format == fmt


def test_metadata_and_trailing_bytes_are_stripped() -> None:
    jpeg = _exif_jpeg()
    assert b"SpyCam" in jpeg
    body, *_ = checked_media(jpeg, FIELD)
    assert b"SpyCam" not in body and b"Exif" not in body
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "GPS 31.2304,121.4737")
    png = picture("PNG", pnginfo=info) + b"<script>alert(1)</script>"
    body, *_ = checked_media(png, FIELD)
    assert b"GPS" not in body and b"<script>" not in body
    assert body.endswith(b"IEND\xaeB`\x82")


def test_transparency_survives() -> None:
    data = picture("PNG", mode="RGBA")
    body, *_ = checked_media(data, FIELD)
    with Image.open(io.BytesIO(body)) as again:
        assert again.mode == "RGBA"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "required"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG is not"),
        (b"  <svg onload='alert(1)'></svg>", "SVG is not"),
        (b"GIF89a" + b"\x00" * 40, "not a PNG, JPEG or WebP"),
        (b"<html><body>hi</body></html>", "not a PNG, JPEG or WebP"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "not a readable PNG"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "not a readable JPEG"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 16, "not a readable WEBP"),
    ],
)
def test_what_is_not_a_picture_is_refused_naming_the_field(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        checked_media(data, FIELD)
    assert caught.value.field == FIELD


def test_a_truncated_picture_is_refused() -> None:
    data = picture("PNG", size=(300, 300))
    with pytest.raises(InvalidArgument, match="not a readable PNG"):
        checked_media(data[: len(data) // 2], FIELD)


def test_too_many_bytes_are_refused_before_decoding() -> None:
    with pytest.raises(InvalidArgument, match=f"want at most {MAX_MEDIA_BYTES}"):
        checked_media(b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_MEDIA_BYTES, FIELD)


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` and whose data is a few bytes: a
    decompression bomb if anyone decoded it."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (MAX_SIDE + 1, 10 + 10), (8, 8)])
def test_sides_out_of_bounds_are_refused_from_the_header(width: int, height: int) -> None:
    shown = "far more pixels" if width > 50_000 else f"{width}x{height} pixels"
    with pytest.raises(InvalidArgument, match=shown):
        checked_media(_png_header(width, height), FIELD)


def test_an_animation_is_refused() -> None:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, format="WEBP", save_all=True, append_images=frames[1:])
    with pytest.raises(InvalidArgument, match="animation"):
        checked_media(out.getvalue(), FIELD)


def test_kind_and_alt_are_checked() -> None:
    assert checked_kind("logo", "", "k") is MediaKind.LOGO
    assert checked_kind("image", "09520123456788", "k") is MediaKind.IMAGE
    with pytest.raises(InvalidArgument, match="want logo or image"):
        checked_kind("banner", "09520123456788", "k")
    with pytest.raises(InvalidArgument, match="belongs to a product"):
        checked_kind("image", "", "k")
    assert checked_alt("  Demo\n Brand  ", "a") == "Demo Brand"
    with pytest.raises(InvalidArgument, match="want at most 200"):
        checked_alt("x" * 201, "a")


# ------------------------------------------------------------------------- the use case


@pytest.fixture
def brands() -> tuple[ProductMediaRegistry, MemoryProductMedia, list[Principal], list[str]]:
    store = MemoryStore()
    principals, gtins = [], []
    with store.unit_of_work() as uow:
        for _ in range(2):
            brand = tenant()
            gtin = gtin_under(brand.company_prefixes[0] + "1")
            uow.tenants.add(brand)
            uow.products.add(Product(brand.id, gtin, "Tonic"))
            principals.append(Principal(brand.id, frozenset({Role.ADMIN}), "tok"))
            gtins.append(gtin)
        uow.commit()
    storage = MemoryProductMedia(store)
    return (
        ProductMediaRegistry(storage, store.unit_of_work, FixedClock(NOW)),
        storage,
        principals,
        gtins,
    )


def test_a_brand_sets_replaces_and_removes_its_pictures(
    brands: tuple[ProductMediaRegistry, MemoryProductMedia, list[Principal], list[str]],
) -> None:
    registry, _, (owner, _), (gtin, _) = brands
    logo = registry.set_media(owner, "", "logo", picture("PNG"), "Demo Brand")
    assert (logo.gtin, logo.kind, logo.alt, logo.updated_at) == (
        "",
        MediaKind.LOGO,
        "Demo Brand",
        NOW,
    )
    assert logo.sha256 == digest(logo.body) and logo.extension == "png"
    first = registry.set_media(owner, gtin, "image", picture("JPEG"))
    second = registry.set_media(owner, gtin, "image", picture("WEBP"))
    assert first.sha256 != second.sha256
    assert [m.sha256 for m in registry.media(owner, gtin, field="g")] == [second.sha256]
    assert [m.kind for m in registry.media(owner, "", field="g")] == [MediaKind.LOGO]
    assert registry.remove_media(owner, gtin, "image") is True
    assert registry.remove_media(owner, gtin, "image") is False
    assert registry.media(owner, gtin, field="g") == []


def test_another_brands_product_is_refused_and_nothing_is_written(
    brands: tuple[ProductMediaRegistry, MemoryProductMedia, list[Principal], list[str]],
) -> None:
    registry, storage, (owner, _), (gtin, other_gtin) = brands
    with pytest.raises(PermissionDenied):
        registry.set_media(owner, other_gtin, "image", picture("PNG"))
    with pytest.raises(PermissionDenied):
        registry.media(owner, other_gtin, field="GetProductMediaRequest.gtin")
    with registry._tenancy() as uow:  # under the owner's prefix, but no product
        prefix = uow.tenants.get(owner.tenant_id).company_prefixes[0]
    unregistered = gtin_under(prefix + "9")
    with pytest.raises(NotFound):
        registry.set_media(owner, unregistered, "image", picture("PNG"))
    with pytest.raises(InvalidArgument, match="SVG"):
        registry.set_media(owner, gtin, "logo", b"<svg/>")
    assert storage.rows() == []
