"""The consumer page's pictures and its scan history summary, over a real socket (port 0),
with the hand-written fake verifier of test_verifier_http and the in-memory media reader:
the logo and the product image on the page, ``/media/{sha256}.{ext}`` with its cache
headers, the CSP, and what the history summary tells (and never tells)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest

from sealmark.errors import Unavailable
from tests.unit.test_verifier_http import GTIN, LINK, FakeVerifier, Reply, call
from verifier.domain import Reason, Verdict, Verification
from verifier.http import VerifyHttp, start_http
from verifier.media import PageMedia, ShownMedia
from verifier.memory_media import MemoryMediaReader
from verifier.ports import MediaBlob, MediaRef

TENANT = "tenant-secret-id"  # what the fake verifier answers with
LOGO = b"\x89PNG brand logo bytes"
PRODUCT_LOGO = b"\x89PNG product logo bytes"
IMAGE = b"RIFF....WEBP product image bytes"


def _ref(kind: str, gtin: str, body: bytes, media_type: str, alt: str = "") -> MediaRef:
    return MediaRef(kind, gtin, hashlib.sha256(body).hexdigest(), media_type, 120, 40, alt)


LOGO_REF = _ref("logo", "", LOGO, "image/png", "Demo Brand")
IMAGE_REF = _ref("image", GTIN, IMAGE, "image/webp")


@pytest.fixture
def reader() -> MemoryMediaReader:
    media = MemoryMediaReader()
    media.put(TENANT, LOGO_REF, LOGO)
    media.put(TENANT, IMAGE_REF, IMAGE)
    return media


@pytest.fixture
def fake() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture
def server(fake: FakeVerifier, reader: MemoryMediaReader) -> Iterator[VerifyHttp]:
    running, _ = start_http(fake, "127.0.0.1", 0, media=PageMedia(reader), trust_proxy=True)
    yield running
    running.stop()


def _img(page: str, element_id: str) -> dict[str, str]:
    match = re.search(rf"<img id=\"{element_id}\"([^>]*)>", page)
    assert match, f"no <img id={element_id}>"
    return dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))


def test_the_page_shows_the_brands_logo_and_the_products_image(server: VerifyHttp) -> None:
    page = call(server, LINK).text
    logo, image = _img(page, "brand-logo"), _img(page, "product-image")
    assert logo == {
        "src": f"/media/{LOGO_REF.sha256}.png",
        "width": "120",
        "height": "40",
        "alt": "Demo Brand",  # the brand's own alt text
    }
    assert image["src"] == f"/media/{IMAGE_REF.sha256}.webp"
    assert image["alt"] == "Photo of Demo Tonic 100 ml"  # none given: the page words one
    zh = call(server, LINK + "&lang=zh-CN").text
    assert _img(zh, "product-image")["alt"] == "Demo Tonic 100 ml产品图片"


def test_a_products_own_logo_wins_over_the_brands(
    server: VerifyHttp, reader: MemoryMediaReader
) -> None:
    own = _ref("logo", GTIN, PRODUCT_LOGO, "image/png")
    reader.put(TENANT, own, PRODUCT_LOGO)
    page = call(server, LINK).text
    assert _img(page, "brand-logo")["src"] == f"/media/{own.sha256}.png"
    assert _img(page, "brand-logo")["alt"] == "Demo Brand logo"


def test_a_counterfeit_page_shows_no_brand_picture(server: VerifyHttp, fake: FakeVerifier) -> None:
    original = fake.verify

    def counterfeit(*args: object, **kwargs: object) -> Verification:
        answer = original(*args, **kwargs)  # type: ignore[arg-type]
        return replace(answer, verdict=Verdict.COUNTERFEIT, product=None, tenant_id="")

    fake.verify = counterfeit  # type: ignore[method-assign]
    page = call(server, LINK).text
    assert 'data-verdict="counterfeit"' in page
    assert "<img" not in page and "/media/" not in page


def test_the_json_names_the_pictures(server: VerifyHttp) -> None:
    body = call(server, LINK, headers={"Accept": "application/json"}).json()
    assert body["media"] == {
        "logo": f"/media/{LOGO_REF.sha256}.png",
        "image": f"/media/{IMAGE_REF.sha256}.webp",
    }


def test_media_is_served_by_its_digest_with_long_cache_headers(server: VerifyHttp) -> None:
    reply = call(server, f"/media/{LOGO_REF.sha256}.png")
    assert (reply.status, reply.body) == (200, LOGO)
    assert reply.headers["Content-Type"] == "image/png"
    assert reply.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert reply.headers["ETag"] == f'"{LOGO_REF.sha256}"'
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    again = call(
        server, f"/media/{LOGO_REF.sha256}.png", headers={"If-None-Match": reply.headers["ETag"]}
    )
    assert (again.status, again.body) == (304, b"")
    head = call(server, f"/media/{IMAGE_REF.sha256}.webp", method="HEAD")
    assert (head.status, head.body, head.headers["Content-Type"]) == (200, b"", "image/webp")


@pytest.mark.parametrize(
    "path",
    [
        f"/media/{LOGO_REF.sha256}.jpg",  # the bytes are a PNG: no other name serves them
        f"/media/{LOGO_REF.sha256}.svg",
        f"/media/{LOGO_REF.sha256.upper()}.png",
        f"/media/{hashlib.sha256(b'nothing').hexdigest()}.png",
        f"/media/{LOGO_REF.sha256}",
        "/media/../etc/passwd",
        "/media/",
    ],
)
def test_anything_but_a_stored_digest_and_its_extension_is_404(
    server: VerifyHttp, path: str
) -> None:
    reply = call(server, path)
    assert reply.status == 404 and LOGO not in reply.body
    assert reply.headers["Cache-Control"] == "no-store"


def test_media_takes_no_post(server: VerifyHttp) -> None:
    reply = call(server, f"/media/{LOGO_REF.sha256}.png", method="POST", data=b"x")
    assert reply.status == 405 and reply.headers["Allow"] == "GET, HEAD"


def test_the_page_csp_admits_our_pictures_only(server: VerifyHttp) -> None:
    csp = call(server, LINK).headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["img-src"] == "'self' data:"
    assert "unsafe-inline" not in csp and "*" not in csp
    assert directives["frame-ancestors"] == "'none'"


class _Down:
    calls = 0

    def media_refs(self, tenant_id: str, gtin: str) -> list[MediaRef]:
        self.calls += 1
        raise Unavailable("postgres: connection refused")

    def media_blob(self, sha256: str) -> MediaBlob | None:
        raise Unavailable("postgres: connection refused")


def test_a_store_away_costs_the_pictures_not_the_verdict(fake: FakeVerifier) -> None:
    down = _Down()
    running, _ = start_http(fake, "127.0.0.1", 0, media=PageMedia(down))
    try:
        page = call(running, LINK)
        assert page.status == 200 and 'data-verdict="authentic"' in page.text
        assert "<img" not in page.text
        assert call(running, LINK).status == 200
        assert down.calls == 1  # the failure is remembered for a few seconds
        assert call(running, f"/media/{LOGO_REF.sha256}.png").status == 503
    finally:
        running.stop()


def test_lookups_and_bytes_are_cached(reader: MemoryMediaReader) -> None:
    media = PageMedia(reader)
    first = media.shown(TENANT, GTIN)
    assert first == ShownMedia(logo=LOGO_REF, image=IMAGE_REF)
    assert media.shown(TENANT, GTIN) == first
    assert media.blob(LOGO_REF.sha256) == media.blob(LOGO_REF.sha256)
    assert reader.reads == 2  # one lookup, one blob read
    assert media.blob("not-a-digest") is None and reader.reads == 2


# --------------------------------------------------------------- the scan history, told


def _summary(reply: Reply) -> str:
    match = re.search(r'<div class="summary" id="history-summary">(.*?)</div>', reply.text, re.S)
    assert match, "no history summary"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def test_the_summary_tells_day_region_and_phones(server: VerifyHttp) -> None:
    text = _summary(call(server, LINK, headers={"X-Client-Region": "DE"}))
    assert "First checked on 1 Feb 2026 in Germany." in text
    assert "Checked from 2 different phones or browsers so far." in text
    assert "A few checks are normal" in text
    assert "another region" not in text
    zh = _summary(call(server, LINK + "&lang=zh-CN", headers={"X-Client-Region": "DE"}))
    assert "首次查验于2026年2月1日，地区：德国。" in zh and "2部不同的手机或浏览器" in zh


def test_the_summary_says_when_the_first_check_was_elsewhere(server: VerifyHttp) -> None:
    text = _summary(call(server, LINK, headers={"X-Client-Region": "CN-SH"}))
    assert "first checked in another region than yours" in text


def test_many_phones_read_as_copies(server: VerifyHttp, fake: FakeVerifier) -> None:
    fake.verdict = Verdict.SUSPECT_CLONE
    fake.reasons = [Reason("too_many_sessions", "sessions > 3", Verdict.SUSPECT_CLONE, 0.6, {})]
    original = fake.verify

    def many(*args: object, **kwargs: object) -> Verification:
        return replace(original(*args, **kwargs), session_count=9)  # type: ignore[arg-type]

    fake.verify = many  # type: ignore[method-assign]
    text = _summary(call(server, LINK))
    assert "9 different phones" in text and "probably been copied" in text


def test_the_first_check_says_so_and_the_time_of_others_never_shows(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    original = fake.verify

    def first(*args: object, **kwargs: object) -> Verification:
        answer = original(*args, **kwargs)  # type: ignore[arg-type]
        return replace(answer, first_verified_at=None, first_verified_region="", session_count=1)

    fake.verify = first  # type: ignore[method-assign]
    assert _summary(call(server, LINK)) == "This is the first check of this code."
    fake.verify = original  # type: ignore[method-assign]
    page = call(server, LINK).text
    history = page.split('id="history"', 1)[1].split("</section>", 1)[0]
    assert "1 Feb 2026" in history and "08:00" not in history and "UTC" not in history
