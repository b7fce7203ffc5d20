"""VerifyImage end to end: codes issued and commissioned on real servers, their labels rendered
with and without the brand's covert mark, photographed (rotated, JPEG) and sent as images."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from PIL import Image

from issuer.labels import Label, Symbology, render_png
from sealmark.clock import FixedClock
from sealmark.covert.reader import MAX_IMAGE_BYTES
from sealmark.crypto.covert import CovertKeys
from sealmark.v1 import verifier_pb2
from tests.e2e.test_verification import _issue, _start, _stop

pytestmark = pytest.mark.e2e
V = verifier_pb2
PEPPER = b"e2e-test-pepper-0123456789"  # as tests.e2e.conftest.make_container sets it


@pytest.fixture(scope="module")
def lab(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    world = _start(pg_dsn, redis_url, FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)))
    world["codes"] = _issue(world, 4)
    world["covert_key"] = CovertKeys(PEPPER).for_tenant(world["brand"].tenant_id)
    yield world
    _stop(world)


def _label(code: Any, covert_key: bytes | None) -> bytes:
    label = Label(Symbology.QR, code.digital_link, code.hri)
    return render_png(label, module_px=6, covert_key=covert_key)


def _photo(png: bytes, angle: float) -> bytes:
    image = Image.open(io.BytesIO(png)).convert("L")
    image = image.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=50)
    return out.getvalue()


def _verify_image(world: dict[str, Any], image: bytes, session: str = "img-1") -> Any:
    context = V.ClientContext(session_id=session, locale="en")
    return world["verifier"].VerifyImage(
        V.VerifyImageRequest(image=image, context=context), timeout=20
    )


def test_a_genuine_label_carries_the_mark(lab: dict[str, Any]) -> None:
    code = lab["codes"][0]
    answer = _verify_image(lab, _label(code, lab["covert_key"]))
    assert answer.payload == code.digital_link
    assert answer.verification.verdict == V.VERDICT_AUTHENTIC
    assert answer.verification.serial == code.serial
    assert answer.covert_mark.status == V.COVERT_MARK_STATUS_PRESENT
    assert answer.covert_mark.score >= 0.5 and answer.covert_mark.modules >= 24
    # A phone photo of it, tilted and compressed: still the same code, still marked.
    again = _verify_image(lab, _photo(_label(code, lab["covert_key"]), 23), session="img-2")
    assert again.verification.verdict == V.VERDICT_AUTHENTIC_SEEN_BEFORE
    assert again.covert_mark.status == V.COVERT_MARK_STATUS_PRESENT


def test_a_re_generated_label_has_no_mark_but_the_same_verdict(lab: dict[str, Any]) -> None:
    # Printed from the code's text alone (a leaked list): the signature is valid, the mark is not
    # there. The verdict stays what the code's state says; the mark is reported beside it.
    code = lab["codes"][1]
    answer = _verify_image(lab, _photo(_label(code, None), 11))
    assert answer.verification.verdict == V.VERDICT_AUTHENTIC
    assert answer.covert_mark.status == V.COVERT_MARK_STATUS_ABSENT
    assert answer.covert_mark.score < 0.5
    assert "score" in answer.covert_mark.rule


def test_another_brands_key_does_not_mark_this_brands_code(lab: dict[str, Any]) -> None:
    code = lab["codes"][2]
    other = CovertKeys(PEPPER).for_tenant("someone-else")
    answer = _verify_image(lab, _label(code, other))
    assert answer.covert_mark.status == V.COVERT_MARK_STATUS_ABSENT


def test_a_code_of_no_brand_is_invalid_and_not_checked(lab: dict[str, Any]) -> None:
    link = "https://id.example.com/01/04000000000006/21/ABC123"
    answer = _verify_image(lab, render_png(Label(Symbology.QR, link, "(21)ABC123")))
    assert answer.verification.verdict == V.VERDICT_INVALID
    assert answer.covert_mark.status == V.COVERT_MARK_STATUS_NOT_CHECKED


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        pytest.param(b"", "required", id="empty"),
        pytest.param(b"GIF89a" + bytes(64), "not a PNG, JPEG or WebP", id="gif"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(40), "cannot be decoded", id="truncated"),
        pytest.param(b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES), "bytes, want at most", id="big"),
        pytest.param(_png(Image.new("1", (12_000, 8))), "pixels, want at most", id="wide"),
        pytest.param(_png(Image.new("L", (64, 64), 255)), "no readable QR Code", id="blank"),
    ],
)
def test_bad_images_name_the_field(lab: dict[str, Any], image: bytes, message: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _verify_image(lab, image)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("VerifyImageRequest.image: ")
    assert message in info.value.details()
