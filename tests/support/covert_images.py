"""A fixed, generated set of label images for the covert mark's rates: genuine labels (rendered
with the brand's key), copies made by decoding a genuine label and encoding the text again
(our own encoder, and other masks as another encoder would choose), each under the transforms
the docs claim. Deterministic: the same count gives the same images.

``python -m tests.support.covert_images [count]`` prints the rate table of docs/verifier.md.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import zxingcpp
from PIL import Image, ImageChops, ImageFilter

from issuer.labels import Label, Symbology, render_png
from sealmark.covert import qr
from sealmark.covert.mark import Status
from sealmark.covert.reader import check, find_symbol
from sealmark.gs1 import build_digital_link, build_hri

BRAND_KEY = hashlib.sha256(b"covert test brand").digest()
MODULE_PX = 8  # the labels are rendered at 8 px per module; scale 0.5 makes it 4
BLUR_PX = 2.0  # Gaussian radius: a quarter of a module


def _rotate(angle: float) -> Callable[[Image.Image], Image.Image]:
    def rotate(image: Image.Image) -> Image.Image:
        return image.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=255)

    return rotate


def _blur(radius: float) -> Callable[[Image.Image], Image.Image]:
    return lambda image: image.filter(ImageFilter.GaussianBlur(radius))


def _scale(factor: float) -> Callable[[Image.Image], Image.Image]:
    def scale(image: Image.Image) -> Image.Image:
        size = (round(image.width * factor), round(image.height * factor))
        return image.resize(size, Image.Resampling.LANCZOS)

    return scale


def _jpeg(quality: int) -> Callable[[Image.Image], Image.Image]:
    def jpeg(image: Image.Image) -> Image.Image:
        out = io.BytesIO()
        image.convert("L").save(out, format="JPEG", quality=quality)
        return Image.open(io.BytesIO(out.getvalue()))

    return jpeg


def _shade(darkest: float) -> Callable[[Image.Image], Image.Image]:
    """Light falling off from left to right, to ``darkest`` of full brightness."""

    def shade(image: Image.Image) -> Image.Image:
        ramp = Image.linear_gradient("L").rotate(90).resize(image.size)
        light = ramp.point(lambda v: round(255 - v * (1 - darkest)))
        return ImageChops.multiply(image.convert("L"), light)

    return shade


def _keystone(squeeze: float) -> Callable[[Image.Image], Image.Image]:
    """A photo taken at an angle (a true perspective): the left edge ``squeeze`` shorter than
    the right."""

    def keystone(image: Image.Image) -> Image.Image:
        w, h = image.size
        d = h * squeeze / 2
        # Output (x, y) samples input ((a x + b y + c) / (g x + h y + 1), …): solve for the
        # coefficients that send the output corners to a quad whose left side is taller.
        out = [(0, 0), (w, 0), (w, h), (0, h)]
        into = [(0, -d), (w, 0), (w, h), (0, h + d)]
        rows, rhs = [], []
        for (x, y), (u, v) in zip(out, into, strict=True):
            rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
            rhs += [u, v]
        coefficients = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
        return image.transform(
            image.size,
            Image.Transform.PERSPECTIVE,
            tuple(float(c) for c in coefficients),
            Image.Resampling.BICUBIC,
            fillcolor=255,
        )

    return keystone


def _bend(squeeze: float) -> Callable[[Image.Image], Image.Image]:
    """Not a perspective: a bilinear warp (lines curve), as a label bent over a pack."""

    def bend(image: Image.Image) -> Image.Image:
        w, h = image.size
        d = h * squeeze / 2
        quad = (0.0, -d, 0.0, h + d, float(w), float(h), float(w), 0.0)
        return image.transform(
            image.size, Image.Transform.QUAD, quad, Image.Resampling.BICUBIC, fillcolor=255
        )

    return bend


def _spread(size: int) -> Callable[[Image.Image], Image.Image]:
    """Ink spreading on the label: every dark area grows by ``size // 2`` pixels."""
    return lambda image: image.filter(ImageFilter.MinFilter(size))


def _chain(*steps: Callable[[Image.Image], Image.Image]) -> Callable[[Image.Image], Image.Image]:
    def chained(image: Image.Image) -> Image.Image:
        for step in steps:
            image = step(image)
        return image

    return chained


# name -> transform of item i. Rotation angles spread over the circle, never a multiple of 90;
# perspective: one side 25 % shorter than the other; bent: a bilinear warp (lines curve), one
# side 10 % shorter; blur: Gaussian radius 2 px (a quarter of a module).
TRANSFORMS: dict[str, Callable[[int], Callable[[Image.Image], Image.Image]]] = {
    "none": lambda i: lambda image: image,
    "rotation": lambda i: _rotate(7 + (i * 37) % 346),
    "blur": lambda i: _blur(BLUR_PX),
    "jpeg50": lambda i: _jpeg(50),
    "scale0.5": lambda i: _scale(0.5),
    "perspective": lambda i: _keystone(0.25),
    "bent label": lambda i: _bend(0.1),
    "all four": lambda i: _chain(
        _rotate(7 + (i * 37) % 346), _blur(BLUR_PX), _scale(0.5), _jpeg(50)
    ),
}
# Beyond what the docs claim: where it stops working (measured, not asserted).
STRESS: dict[str, Callable[[int], Callable[[Image.Image], Image.Image]]] = {
    "blur 3 px (0.38 module)": lambda i: _blur(3.0),
    "blur 4 px (0.5 module)": lambda i: _blur(4.0),
    "scale 0.25 (2 px/module)": lambda i: _scale(0.25),
    "scale 0.25 + jpeg50": lambda i: _chain(_scale(0.25), _jpeg(50)),
    "uneven light (100 % to 30 %)": lambda i: _shade(0.3),
    "jpeg quality 20": lambda i: _jpeg(20),
    "bent label (bilinear warp, one side 25 % shorter)": lambda i: _bend(0.25),
    "ink spread 2 px (0.25 module) each side": lambda i: _spread(5),
    "scale 0.2 (1.6 px/module)": lambda i: _scale(0.2),
}


@dataclass(frozen=True)
class Item:
    text: str
    code_key: str
    hri: str


def items(count: int) -> Iterator[Item]:
    """``count`` distinct signed-looking Digital Links of one GTIN (serials 6..20 characters)."""
    for i in range(count):
        digest = hashlib.sha256(b"covert item %d" % i).digest()
        serial = base64.b32encode(digest).decode()[: 6 + i % 15]
        signature = base64.urlsafe_b64encode(digest * 2).decode().rstrip("=")[:86]
        pairs = [
            ("01", "09520123456788"),
            ("17", "271130"),
            ("10", f"L{i % 97:03d}"),
            ("21", serial),
            ("8030", signature[:86] + f"k{i % 10}"),
        ]
        text = build_digital_link(pairs, "https://id.sealmark.example")
        yield Item(text, "09520123456788" + serial, build_hri(pairs[:4]))


def genuine(item: Item) -> Image.Image:
    label = Label(Symbology.QR, item.text, item.hri)
    png = render_png(label, module_px=MODULE_PX, covert_key=BRAND_KEY)
    return Image.open(io.BytesIO(png)).convert("L")


def decoded_text(image: Image.Image) -> str | None:
    found = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    return found[0].text if found else None


def re_encoded(image: Image.Image, hri: str, mask: int | None = None) -> Image.Image:
    """A counterfeiter's label: the genuine one decoded, its text encoded again (by our own
    labels without a key, or with another mask as other software may choose)."""
    text = decoded_text(image)
    assert text is not None
    if mask is None:
        png = render_png(Label(Symbology.QR, text, hri), module_px=MODULE_PX)
        return Image.open(io.BytesIO(png)).convert("L")
    rows = qr.encode(text, "M", mask=mask).rows
    n, px = len(rows), MODULE_PX
    out = Image.new("L", ((n + 8) * px, (n + 8) * px), 255)
    for r, row in enumerate(rows):
        for c, dark in enumerate(row):
            if dark:
                out.paste(0, ((c + 4) * px, (r + 4) * px, (c + 5) * px, (r + 5) * px))
    return out


def outcome(image: Image.Image, code_key: str) -> str:
    """``present`` / ``absent`` / ``unreadable``, or ``no symbol`` when zxing finds none."""
    reading = find_symbol(image)
    if reading is None:
        return "no symbol"
    return check(reading, BRAND_KEY, code_key).status.value


@dataclass
class Rates:
    genuine: Counter[str]
    copies: Counter[str]

    @property
    def detection(self) -> float:
        return self.genuine[Status.PRESENT.value] / sum(self.genuine.values())

    @property
    def false_accepts(self) -> int:
        return self.copies[Status.PRESENT.value]


def measure(
    count: int, transforms: dict[str, Callable[[int], Callable[[Image.Image], Image.Image]]]
) -> dict[str, Rates]:
    """Per transform: outcomes of ``count`` genuine labels and of ``count`` copies (every
    third made with another mask)."""
    rates = {name: Rates(Counter(), Counter()) for name in transforms}
    for i, item in enumerate(items(count)):
        original = genuine(item)
        copy = re_encoded(original, item.hri, None if i % 3 else i % 8)
        for name, transform in transforms.items():
            rates[name].genuine[outcome(transform(i)(original), item.code_key)] += 1
            rates[name].copies[outcome(transform(i)(copy), item.code_key)] += 1
    return rates


def main(count: int) -> None:
    print(
        "| transform | genuine: detected | genuine: other outcomes"
        " | copies: accepted | copies: outcomes |"
    )
    print("|---|---|---|---|---|")
    for name, rate in {**measure(count, TRANSFORMS), **measure(count, STRESS)}.items():
        others = ", ".join(f"{k} {v}" for k, v in sorted(rate.genuine.items()) if k != "present")
        print(
            f"| {name} | {rate.genuine['present']}/{count} ({rate.detection:.1%}) |"
            f" {others or '-'} | {rate.false_accepts}/{count} |"
            f" {', '.join(f'{k} {v}' for k, v in sorted(rate.copies.items()))} |"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
