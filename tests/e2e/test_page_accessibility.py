"""The consumer page's content and accessibility in a real headless Chromium: a brand
registers its logo and a product image through the CLI (the Issuer's SetProductMedia over
gRPC), codes are issued and commissioned, one is recalled through the Audit, and the genuine,
PIN, suspicious (copied), counterfeit and recalled pages are checked in English and Chinese
with the rules of tests/e2e/page_checks.js (lang, title, landmarks, heading order, alt texts
of pictures that really loaded, a label on every control, WCAG AA contrast of every text
node, the verdict told by more than colour), keyboard focus that shows, and a 320 px wide
viewport that never scrolls sideways. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import io
import json
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image, ImageDraw
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from sealmark.server.app import create_server
from sealmark.v1 import audit_pb2, audit_pb2_grpc, common_pb2, issuer_pb2, issuer_pb2_grpc
from sealmark_app.root import binding_for
from sealmark_app.root.verifier import build_page_media, build_verifier
from tests.e2e.conftest import _md, make_container
from tests.e2e.test_verify_page import (
    _csp_violations,
    _issue_and_commission,
    _local,
    _require_chromium,
    _submit_pin,
    _verdict,
    browser,
)
from tests.support.cli import sealmark
from tests.support.tenants import seed_tenant
from verifier.domain import Rules
from verifier.http import start_http

pytestmark = pytest.mark.e2e

CHECKS = (Path(__file__).with_name("page_checks.js")).read_text(encoding="utf-8")
NARROW = 320


def _script() -> str:
    body = "\n".join(line for line in CHECKS.splitlines() if not line.startswith("//"))
    return "return " + body.strip().rstrip(";")


def _picture(fmt: str, size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, size[0] - 8, size[1] - 8), fill=colour)
    draw.ellipse(
        (size[0] // 3, 12, size[0] // 3 + size[1] - 24, size[1] - 12), fill=(255, 255, 255)
    )
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def site(
    pg_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    _require_chromium()
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(container.uow, container.clock, "a11y")
    verifier = build_verifier(container)
    # One session more than one is a copy here, so a code scanned from a few clients reads
    # as suspicious; one loopback client makes every scan, so no rate limit may interfere.
    verifier.set_rules(
        brand.tenant_id, Rules(max_sessions=1, rate_per_minute=100_000, guess_limit=100_000)
    )
    running = create_server(
        [binding_for("issuer", container), binding_for("audit", container)],
        container.authenticator,
    )
    target = f"127.0.0.1:{running.port}"
    channel = grpc.insecure_channel(target)
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    codes = _issue_and_commission(issuer, brand.gtin, brand.tokens["line"], count=6)
    tmp = tmp_path_factory.mktemp("page-a11y")
    logo, image = tmp / "logo.png", tmp / "product.jpg"
    logo.write_bytes(_picture("PNG", (360, 120), (24, 73, 169)))
    image.write_bytes(_picture("JPEG", (640, 480), (6, 118, 71)))
    registered = []
    for args in (
        ("--kind", "logo", "--file", str(logo), "--alt", "A11y Brand"),
        ("--kind", "image", "--gtin", brand.gtin, "--file", str(image)),
    ):
        done = sealmark(
            "--json",
            "media",
            "set",
            *args,
            "--target",
            target,
            "--token",
            brand.tokens["admin"],
            dsn=pg_dsn,
            redis_url=redis_url,
        )
        assert done.returncode == 0, done.stderr
        registered.append(json.loads(done.stdout))
    # Recall one code through the Audit, as a brand would.
    audit = audit_pb2_grpc.AuditStub(channel)
    recalled = codes[5]
    audit.Recall(
        audit_pb2.RecallRequest(
            request_id="rc-" + os.urandom(4).hex(),
            codes=audit_pb2.CodeList(codes=[common_pb2.CodeRef(scanned=recalled.digital_link)]),
            reason="a labelling error",
        ),
        metadata=_md(brand.tokens["admin"]),
        timeout=30,
    )
    page, _ = start_http(
        verifier, "127.0.0.1", 0, clock=container.clock, media=build_page_media(container)
    )
    yield {
        "page": page,
        "codes": codes,
        "gtin": brand.gtin,
        "tmp": tmp,
        "media": registered,
        "target": target,
        "admin": brand.tokens["admin"],
        "line": brand.tokens["line"],
        "issuer": issuer,
    }
    page.stop()
    channel.close()
    running.stop(0)
    container.close()


def _narrow(driver: WebDriver) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": NARROW, "height": 720, "deviceScaleFactor": 2, "mobile": True},
    )


def _check(driver: WebDriver, lang: str, shot: Path) -> None:
    """Every rule of page_checks.js, the page's language, the focus ring and the width."""
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
    violations = driver.execute_script(_script())
    assert violations == [], "\n".join(violations)
    assert driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    ), f"wider than {NARROW} px"
    assert _csp_violations(driver) == []
    _tab_shows_focus(driver)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": NARROW, "height": int(height), "deviceScaleFactor": 2, "mobile": True},
    )
    assert driver.save_screenshot(str(shot)), shot
    _narrow(driver)


def _tab_shows_focus(driver: WebDriver) -> None:
    """Tab to each of the first few controls: each one, focused, draws a visible outline."""
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    seen = 0
    for _ in range(6):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        focused = driver.switch_to.active_element
        if focused.tag_name == "body":
            break
        style = driver.execute_script(
            "var s = getComputedStyle(arguments[0]);"
            " return [s.outlineStyle, parseFloat(s.outlineWidth), s.boxShadow];",
            focused,
        )
        assert style[0] != "none" and style[1] >= 2, (focused.tag_name, style)
        seen += 1
    assert seen >= 2  # at least the skip link and the language link


def _open(driver: WebDriver, url: str) -> None:
    _narrow(driver)
    driver.get(url)


def _scan_elsewhere(url: str) -> None:
    """A scan by another client (no cookie: a session of its own)."""
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 (our loopback server)
        assert reply.status == 200


@pytest.mark.parametrize(("language", "lang", "index"), [("en-US", "en", 0), ("zh-CN", "zh-CN", 1)])
def test_genuine_and_pin_pages(site: dict[str, Any], language: str, lang: str, index: int) -> None:
    code, tmp = site["codes"][index], site["tmp"]
    with browser(language) as driver:
        _open(driver, _local(site["page"], code))
        assert _verdict(driver) == "authentic"
        logo = driver.find_element(By.ID, "brand-logo")
        assert logo.get_attribute("alt") == "A11y Brand"
        assert logo.get_attribute("src").endswith(site["media"][0]["path"])
        picture = driver.find_element(By.ID, "product-image")
        assert picture.get_attribute("src").endswith(site["media"][1]["path"])
        name = "a11y product"  # the product seed_tenant registers
        assert picture.get_attribute("alt") in (f"Photo of {name}", f"{name}产品图片")
        summary = driver.find_element(By.ID, "history-summary").text
        assert summary in ("This is the first check of this code.", "这是此码的首次查验。")
        _check(driver, lang, tmp / f"{lang}-genuine-pin-form.png")
        _submit_pin(driver, code.pin)
        assert driver.find_elements(By.ID, "pin-confirmed")
        _check(driver, lang, tmp / f"{lang}-pin-confirmed.png")


def test_suspicious_page(site: dict[str, Any]) -> None:
    code, page = site["codes"][2], site["page"]
    for _ in range(2):
        _scan_elsewhere(_local(page, code))
    for language, lang in (("en-US", "en"), ("zh-CN", "zh-CN")):
        with browser(language) as driver:
            _open(driver, _local(page, code))
            assert _verdict(driver) == "suspect_clone"
            summary = driver.find_element(By.ID, "history-summary").text
            assert re.search(r"probably been copied|很可能已被复制", summary), summary
            assert not re.search(r"\d\d:\d\d", driver.find_element(By.ID, "history").text)
            _check(driver, lang, site["tmp"] / f"{lang}-suspicious.png")


def test_counterfeit_page(site: dict[str, Any]) -> None:
    code = site["codes"][3]
    link = _local(site["page"], code)
    serial = code.serial
    forged = link.replace(f"/21/{serial}", f"/21/{serial[:-1]}{'1' if serial[-1] != '1' else '2'}")
    assert forged != link
    for language, lang in (("en-US", "en"), ("zh-CN", "zh-CN")):
        with browser(language) as driver:
            _open(driver, forged)
            assert _verdict(driver) == "counterfeit"
            assert driver.find_elements(By.TAG_NAME, "img") == []  # no brand picture on a fake
            _check(driver, lang, site["tmp"] / f"{lang}-counterfeit.png")


def test_recalled_page(site: dict[str, Any]) -> None:
    code = site["codes"][5]
    for language, lang in (("en-US", "en"), ("zh-CN", "zh-CN")):
        with browser(language) as driver:
            _open(driver, _local(site["page"], code))
            assert _verdict(driver) == "recalled"
            assert "a labelling error" in driver.find_element(By.ID, "reasons").text
            _check(driver, lang, site["tmp"] / f"{lang}-recalled.png")


def test_media_is_served_immutable_and_removable(
    site: dict[str, Any], pg_dsn: str, redis_url: str
) -> None:
    path = site["media"][1]["path"]
    with urllib.request.urlopen(site["page"].url + path, timeout=10) as reply:  # noqa: S310
        body = reply.read()
        assert reply.headers["Content-Type"] == "image/jpeg"
        assert "immutable" in reply.headers["Cache-Control"]
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(body)).size == (640, 480)
    listed = sealmark(
        "--json",
        "media",
        "list",
        "--gtin",
        site["gtin"],
        "--target",
        site["target"],
        "--token",
        site["admin"],
        dsn=pg_dsn,
        redis_url=redis_url,
    )
    assert listed.returncode == 0, listed.stderr
    assert [m["kind"] for m in json.loads(listed.stdout)] == ["image"]
    svg = site["tmp"] / "logo.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    refused = sealmark(
        "media",
        "set",
        "--kind",
        "logo",
        "--file",
        str(svg),
        "--target",
        site["target"],
        "--token",
        site["admin"],
        dsn=pg_dsn,
        redis_url=redis_url,
    )
    assert refused.returncode == 2 and "SetProductMediaRequest.content: SVG" in refused.stderr


BAD_PAGE = """<!doctype html><html><head><title>x</title></head><body>
<main><h1>Title</h1><h3>Skipped a level</h3>
<p style="color:#999;background:#fff">Grey on white</p>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<input type="text" id="nolabel"><button></button>
</main></body></html>"""


def test_the_checks_catch_what_they_check() -> None:
    """The rules fail on a page that breaks them: they are not a check that cannot fail."""
    _require_chromium()
    with browser("en-US") as driver:
        driver.get("data:text/html;charset=utf-8," + urllib.parse.quote(BAD_PAGE))
        found = "\n".join(driver.execute_script(_script()))
    for rule in (
        'html[lang] is ""',
        "no landmark body > header",
        "heading level skipped at h3",
        "img without alt",
        "form control without a label: input#nolabel",
        "form control without a label: button",
        'for "Grey on white"',
    ):
        assert rule in found, f"{rule!r} not caught:\n{found}"


def test_only_an_admin_of_the_product_sets_its_pictures(site: dict[str, Any]) -> None:
    issuer, png = site["issuer"], _picture("PNG", (64, 64), (0, 0, 0))
    request = issuer_pb2.SetProductMediaRequest(gtin=site["gtin"], kind="image", content=png)
    with pytest.raises(grpc.RpcError) as caught:
        issuer.SetProductMedia(request, metadata=_md(site["line"]), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    foreign = issuer_pb2.SetProductMediaRequest(gtin="09506000134352", kind="image", content=png)
    with pytest.raises(grpc.RpcError) as caught:
        issuer.SetProductMedia(foreign, metadata=_md(site["admin"]), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    bomb = issuer_pb2.SetProductMediaRequest(
        gtin=site["gtin"], kind="image", content=b"\x89PNG\r\n\x1a\n" + b"\x00" * 600_000
    )
    with pytest.raises(grpc.RpcError) as caught:
        issuer.SetProductMedia(bomb, metadata=_md(site["admin"]), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "SetProductMediaRequest.content" in str(caught.value.details())
    # Nothing of the refusals was written: the product still shows the image set before.
    listed = issuer.GetProductMedia(
        issuer_pb2.GetProductMediaRequest(gtin=site["gtin"]), metadata=_md(site["line"]), timeout=10
    )
    assert [m.path for m in listed.media] == [site["media"][1]["path"]]


def test_error_and_home_pages(site: dict[str, Any]) -> None:
    page, gtin = site["page"], site["gtin"]
    bad = f"{page.url}/01/{gtin[:-1]}{(int(gtin[-1]) + 1) % 10}/21/ABC?17=301231"
    for language, lang in (("en-US", "en"), ("zh-CN", "zh-CN")):
        with browser(language) as driver:
            _open(driver, bad)
            assert driver.find_element(By.ID, "error").get_attribute("data-status") == "400"
            _check(driver, lang, site["tmp"] / f"{lang}-error-400.png")
            _open(driver, page.url + "/")
            assert driver.find_element(By.ID, "home")
            _check(driver, lang, site["tmp"] / f"{lang}-home.png")
