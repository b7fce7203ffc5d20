"""The covert mark's reading cost: photos of marked labels read per second, against zxing-cpp
alone decoding the same photos (the ratio is the share of a read left after sampling the
modules and judging the mark)."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from functools import cache

import zxingcpp
from PIL import Image

from sealmark.covert.reader import check, find_symbol, load_image
from sealmark_app.bench.registry import Measurement, benchmark, self_peak_rss_mb

_KEY = hashlib.sha256(b"bench covert key").digest()
_GTIN = "09520123456788"


@cache
def _photos(count: int = 12) -> tuple[tuple[bytes, str], ...]:
    """Marked labels at 8 px per module, tilted and saved as JPEG quality 80, with code keys."""
    from issuer.labels import Label, Symbology, render_png

    photos = []
    for i in range(count):
        serial = hashlib.sha256(b"%d" % i).hexdigest()[:12].upper()
        link = (
            f"https://id.sealmark.example/01/{_GTIN}/10/L1/21/{serial}?17=271130&8030="
            + (hashlib.sha512(serial.encode()).hexdigest()[:86])
        )
        png = render_png(Label(Symbology.QR, link, f"(21){serial}"), module_px=8, covert_key=_KEY)
        image = (
            Image.open(io.BytesIO(png)).convert("L").rotate(7 + 29 * i, expand=True, fillcolor=255)
        )
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=80)
        photos.append((out.getvalue(), _GTIN + serial))
    return tuple(photos)


def _rate(read: Callable[[bytes, str], object], seconds: float = 3.0) -> float:
    photos = _photos()
    for data, key in photos:  # warm up
        read(data, key)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for data, key in photos:
            read(data, key)
        count += len(photos)
    return count / (time.perf_counter() - started)


def _zxing_only(data: bytes, key: str) -> object:
    qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # as find_symbol looks
    return zxingcpp.read_barcodes(load_image(data, "image"), formats=qr_only)


def _covert(data: bytes, key: str) -> object:
    reading = find_symbol(load_image(data, "image"))
    assert reading is not None
    judgement = check(reading, _KEY, key)
    assert judgement.status.value == "present", judgement
    return judgement


@benchmark("zxing_image_reads_per_s", description="JPEG label photos decoded by zxing-cpp alone")
def zxing_image_reads_per_s() -> Measurement:
    return Measurement(_rate(_zxing_only), "images/s", self_peak_rss_mb())


@benchmark(
    "covert_image_reads_per_s",
    baseline="zxing_image_reads_per_s",
    description="the same photos read for the covert mark (find, sample, re-encode, judge);"
    " no bar, the ratio is what the mark costs on top of decoding",
)
def covert_image_reads_per_s() -> Measurement:
    return Measurement(_rate(_covert), "images/s", self_peak_rss_mb())
