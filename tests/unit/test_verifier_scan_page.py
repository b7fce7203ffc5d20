"""The /scan page on a real socket: a photo of a label uploaded (multipart form or the image
itself), verified through the real ImageVerifier over a hand-written fake verifier, with the
covert mark shown; bad uploads refused with 400 / 413 naming the field."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from PIL import Image

from issuer.labels import Label, Symbology, render_png
from sealmark.crypto.covert import CovertKeys
from sealmark.errors import ResourceExhausted
from tests.unit.test_verifier_http import GTIN, NOW, FakeVerifier, Reply, call, raw
from verifier.domain import ClientContext
from verifier.http import MAX_UPLOAD_BYTES, VerifyHttp, start_http
from verifier.images import ImageVerifier

PEPPER = b"scan-page-test-pepper-0123"
TENANT = "tenant-secret-id"  # what FakeVerifier answers
LINK = f"https://id.example.com/01/{GTIN}/10/LOT1/21/ABC123?17=301231&8030={'K1' + 'A' * 84}"


@dataclass
class Admitting(FakeVerifier):
    refuse: bool = False
    admitted: list[ClientContext] = field(default_factory=list)

    def admit(self, context: ClientContext) -> None:
        self.admitted.append(context)
        if self.refuse:
            raise ResourceExhausted("slow down")

    def today(self) -> object:
        return NOW.date()


@pytest.fixture(scope="module")
def shared() -> Admitting:
    return Admitting()


@pytest.fixture(autouse=True)
def fake(shared: Admitting) -> Admitting:
    shared.__init__()  # type: ignore[misc]  # fresh for each test, same server
    return shared


@pytest.fixture(scope="module")
def server(shared: Admitting) -> Iterator[VerifyHttp]:
    images = ImageVerifier(shared, CovertKeys(PEPPER))  # type: ignore[arg-type]
    running, _ = start_http(shared, "127.0.0.1", 0, images=images)
    yield running
    running.stop()


def label(marked: bool = True, fmt: str = "PNG") -> bytes:
    key = CovertKeys(PEPPER).for_tenant(TENANT) if marked else None
    png = render_png(Label(Symbology.QR, LINK, "(01)" + GTIN), module_px=6, covert_key=key)
    if fmt == "PNG":
        return png
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("L").rotate(9, expand=True, fillcolor=255).save(
        out, format=fmt, quality=50
    )
    return out.getvalue()


def multipart(fields: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = "sealmark-test-boundary-7f3a"
    parts = []
    for name, value in fields.items():
        extra = '; filename="label.png"\r\nContent-Type: image/png' if name == "image" else ""
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload(server: VerifyHttp, fields: dict[str, bytes], **headers: str) -> Reply:
    body, kind = multipart(fields)
    return call(
        server, "/scan", method="POST", data=body, headers={"Content-Type": kind, **headers}
    )


def test_the_form_works_without_javascript(server: VerifyHttp) -> None:
    reply = call(server, "/scan", headers={"Accept-Language": "zh-CN"})
    assert reply.status == 200
    page = reply.text
    assert 'enctype="multipart/form-data"' in page and 'action="/scan"' in page
    assert 'type="file" id="image-input" name="image"' in page
    assert "上传标签照片查验" in page and "<script" not in page


def test_a_genuine_photo_shows_the_verdict_and_the_mark(
    server: VerifyHttp, fake: Admitting
) -> None:
    reply = upload(server, {"image": label(), "pin": b" 123456 "})
    assert reply.status == 200, reply.text
    page = reply.text
    assert 'data-verdict="authentic"' in page and 'data-mark="present"' in page
    assert "printed from the brand&#39;s own label" in page
    assert "photocopy" in page  # the limit is said where the mark is offered
    assert TENANT not in page
    payload, pin, context = fake.calls[-1]
    assert payload == LINK and pin == "123456" and context.client == "127.0.0.1"
    assert len(fake.admitted) == 1


def test_json_answers_carry_the_mark(server: VerifyHttp) -> None:
    accept = {"Accept": "application/json"}
    genuine = upload(server, {"image": label()}, **accept).json()
    assert genuine["payload"] == LINK
    assert genuine["verification"]["verdict"] == "authentic"
    assert genuine["covert_mark"]["status"] == "present"
    assert genuine["covert_mark"]["score"] >= 0.5 and genuine["covert_mark"]["modules"] >= 24
    copy = upload(server, {"image": label(marked=False)}, **accept).json()
    assert copy["covert_mark"]["status"] == "absent" and copy["covert_mark"]["score"] < 0.5
    assert TENANT not in str(genuine) + str(copy)


def test_the_image_itself_as_the_body(server: VerifyHttp) -> None:
    reply = call(
        server,
        "/scan",
        method="POST",
        data=label(fmt="JPEG"),
        headers={"Content-Type": "image/jpeg", "Accept": "application/json"},
    )
    assert reply.status == 200
    assert reply.json()["covert_mark"]["status"] == "present"


@pytest.mark.parametrize(
    ("fields", "kind", "detail"),
    [
        pytest.param({"pin": b"1"}, None, "image: required", id="no-image"),
        pytest.param({"image": b"GIF89a...."}, None, "image: not a PNG", id="gif"),
        pytest.param({"image": label()[:300]}, None, "image: cannot be decoded", id="cut"),
        pytest.param({"image": label(), "pin": b"\xff"}, None, "pin: not UTF-8", id="pin"),
        pytest.param({"image": label()}, "text/plain", "form: content type", id="type"),
    ],
)
def test_bad_uploads_name_the_field(
    server: VerifyHttp, fields: dict[str, bytes], kind: str | None, detail: str
) -> None:
    body, multipart_kind = multipart(fields)
    reply = call(
        server,
        "/scan",
        method="POST",
        data=body,
        headers={"Content-Type": kind or multipart_kind, "Accept": "application/json"},
    )
    assert reply.status == 400
    assert reply.json()["message"].startswith(detail)


def test_an_upload_over_the_limit_is_refused_unread(server: VerifyHttp) -> None:
    head = (
        "POST /scan HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {MAX_UPLOAD_BYTES + 1}\r\n\r\n"
    )
    status, reply = raw(server, head.encode())
    assert status == 413
    assert "Photo too large" in reply
    # Within the upload limit it is read (and judged); the Digital Link page keeps its limit.
    link = re.sub(r"^https://[^/]+", "", LINK)
    status, _ = raw(
        server, f"POST {link} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".encode()
    )
    assert status == 413


def test_a_client_over_its_limit_is_refused_before_decoding(
    server: VerifyHttp, fake: Admitting
) -> None:
    fake.refuse = True
    reply = upload(server, {"image": label()})
    assert reply.status == 429
    assert fake.calls == []


def test_no_scan_page_without_an_image_verifier() -> None:
    running, _ = start_http(FakeVerifier(), "127.0.0.1", 0)
    try:
        assert call(running, "/scan").status == 404
    finally:
        running.stop()
