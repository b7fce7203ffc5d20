"""The consumer page in a real browser: codes issued and commissioned through the Issuer, a
real Verifier on PostgreSQL and Redis, its HTTP face on a free port, and Debian's headless
Chromium driven by selenium, at phone width, in English and in Chinese, with and without
JavaScript. Screenshots go to test-artifacts/verify-page/.

Chromium is a requirement, not an option: without /usr/bin/chromium and /usr/bin/chromedriver
these tests fail and say how to install them (`make chromium`)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from sealmark.server.app import create_server
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.root import binding_for
from sealmark_app.root.verifier import build_verifier
from tests.e2e.conftest import _md, make_container
from tests.support.tenants import seed_tenant
from verifier.domain import Rules
from verifier.http import VerifyHttp, start_http

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "verify-page"
PHONE = (360, 800)  # CSS pixels: the narrowest common Android width
SHANGHAI = (31.23, 121.47)


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"headless Chromium is required for the consumer page tests, missing: "
            f"{', '.join(missing)}. Install Debian's chromium and chromium-driver: `make "
            "chromium` (runs apt-get update && apt-get install -y chromium chromium-driver)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def site(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    """A brand with commissioned codes (and their PINs) and the consumer page serving them."""
    _require_chromium()
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(container.uow, container.clock, "page")
    verifier = build_verifier(container)
    # One loopback client makes every scan here: no rate limit may get in the way.
    verifier.set_rules(brand.tenant_id, Rules(rate_per_minute=100_000, guess_limit=100_000))
    running = create_server([binding_for("issuer", container)], container.authenticator)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    codes = _issue_and_commission(issuer, brand.gtin, brand.tokens["line"], count=4)
    page, _ = start_http(verifier, "127.0.0.1", 0, clock=container.clock)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield {"page": page, "codes": codes, "gtin": brand.gtin}
    page.stop()
    channel.close()
    running.stop(0)
    container.close()


def _issue_and_commission(
    issuer: issuer_pb2_grpc.IssuerStub, gtin: str, token: str, count: int
) -> list[issuer_pb2.IssuedCode]:
    responses = issuer.IssueCodes(
        issuer_pb2.IssueCodesRequest(
            request_id="page-" + os.urandom(6).hex(),
            gtin=gtin,
            lot="LOT-P1",
            expiry="301231",
            production_date="260301",
            quantity=count,
            line_id="line-1",
            work_order="WO-page",
        ),
        metadata=_md(token),
        timeout=60,
    )
    codes = [c for r in responses for c in r.codes]
    batch = issuer_pb2.CodeBatch(
        batch_id="c-" + os.urandom(6).hex(), gtin=gtin, serials=[c.serial for c in codes]
    )
    acks = list(issuer.ReportCommissioned(iter([batch]), metadata=_md(token), timeout=30))
    assert acks[0].accepted == count
    return codes


def _local(page: VerifyHttp, code: issuer_pb2.IssuedCode) -> str:
    """The code's Digital Link with the brand's resolver host swapped for our test port."""
    assert code.digital_link.startswith("https://")
    return page.url + "/01/" + code.digital_link.split("/01/", 1)[1]


@contextmanager
def browser(
    language: str,
    *,
    javascript: bool = True,
    window: tuple[int, int] = PHONE,
    downloads: Path | None = None,
) -> Iterator[WebDriver]:
    """A fresh headless Chromium (its own profile, so its own session cookie) that asks for
    ``language`` first, at phone width (or ``window``), saving downloads in ``downloads``."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={window[0]},{window[1]}",
        f"--lang={language}",
    ):
        options.add_argument(arg)
    prefs: dict[str, Any] = {"intl.accept_languages": f"{language},{language.split('-')[0]}"}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    if downloads is not None:
        prefs["download.default_directory"] = str(downloads)
        prefs["download.prompt_for_download"] = False
    options.add_experimental_option("prefs", prefs)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    if downloads is not None:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: WebDriver, name: str) -> None:
    """The whole page at phone width, as a PNG under test-artifacts/verify-page/."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(PHONE[0], max(PHONE[1], int(height) + 120))
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    driver.set_window_size(*PHONE)


def _verdict(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "verdict").get_attribute("data-verdict"))


def _title(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "verdict-title").text)


def _fits_the_phone(driver: WebDriver) -> bool:
    return bool(
        driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    )


def _csp_violations(driver: WebDriver) -> list[str]:
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return [e["message"] for e in entries if "Content Security Policy" in e["message"]]


def _submit_pin(driver: WebDriver, pin: str) -> None:
    old = driver.find_element(By.ID, "verdict")
    field = driver.find_element(By.ID, "pin-input")
    field.clear()
    field.send_keys(pin)
    driver.find_element(By.ID, "pin-submit").click()
    WebDriverWait(driver, 20).until(_stale(old))


def _stale(element: Any) -> Callable[[WebDriver], bool]:
    def gone(_: WebDriver) -> bool:
        try:
            element.is_enabled()
        except Exception:  # StaleElementReferenceException: the new page is in
            return True
        return False

    return gone


def test_first_scan_in_english_is_authentic(site: dict[str, Any]) -> None:
    code = site["codes"][0]
    with browser("en-US") as driver:
        driver.get(_local(site["page"], code))
        assert _verdict(driver) == "authentic"
        assert _title(driver) == "Genuine product"
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        product = driver.find_element(By.ID, "product").text
        for fact in (site["gtin"], "LOT-P1", code.serial, "31 Dec 2030", "1 Mar 2026"):
            assert fact in product
        assert "page product" in product  # the product's registered name
        assert driver.find_element(By.ID, "verification-id").text
        assert driver.find_element(By.ID, "pin-input").is_displayed()
        # The location helper (the page's only script) ran under the CSP nonce.
        assert driver.find_element(By.ID, "geo").is_displayed()
        assert _fits_the_phone(driver)
        assert _csp_violations(driver) == []
        _screenshot(driver, "en-authentic")


def test_first_scan_in_chinese_says_so_in_chinese(site: dict[str, Any]) -> None:
    with browser("zh-CN") as driver:
        driver.get(_local(site["page"], site["codes"][1]))
        assert _verdict(driver) == "authentic"
        assert _title(driver) == "正品"
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
        assert "有效期至" in driver.find_element(By.ID, "product").text
        assert "2030年12月31日" in driver.find_element(By.ID, "product").text
        assert driver.find_element(By.ID, "pin-submit").text == "确认验证码"
        assert _fits_the_phone(driver)
        _screenshot(driver, "zh-authentic")
        # The language link switches the same page to English (and counts as the same
        # session: the verdict is now "seen before", by this very browser).
        driver.find_element(By.ID, "other-language").click()
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        )
        assert _verdict(driver) == "authentic_seen_before"
        assert "First checked on" in driver.find_element(By.ID, "reasons").text


def test_pin_confirms_first_opening_then_a_copy_is_a_clone(site: dict[str, Any]) -> None:
    code, page = site["codes"][2], site["page"]
    # The owner's phone, with JavaScript off: the plain HTML form is all it needs.
    with browser("en-GB", javascript=False) as owner:
        owner.get(_local(page, code))
        assert _verdict(owner) == "authentic"
        assert not owner.find_element(By.ID, "location").is_displayed()
        _submit_pin(owner, code.pin)
        # The verdict may say "seen before" (the owner's own first look), the page leads
        # with the confirmation.
        assert _verdict(owner) in ("authentic", "authentic_seen_before")
        assert _title(owner) == "Genuine, first opening confirmed"
        assert "tone-good" in str(owner.find_element(By.ID, "verdict").get_attribute("class"))
        assert "Hidden PIN confirmed" in owner.find_element(By.ID, "pin-confirmed").text
        assert "first to open" in owner.find_element(By.ID, "reasons").text
        assert owner.find_elements(By.ID, "pin-input") == []
        _screenshot(owner, "en-pin-confirmed")
    # Someone else's phone, same code, same PIN: a copy. Chinese, JavaScript on, location
    # shared through the page's optional script.
    with browser("zh-CN") as other:
        other.execute_cdp_cmd(
            "Browser.grantPermissions", {"origin": page.url, "permissions": ["geolocation"]}
        )
        other.execute_cdp_cmd(
            "Emulation.setGeolocationOverride",
            {"latitude": SHANGHAI[0], "longitude": SHANGHAI[1], "accuracy": 50},
        )
        other.get(_local(page, code))
        assert _verdict(other) == "authentic_seen_before"
        assert _title(other) == "正品码，此前已被查验过"
        other.find_element(By.ID, "geo").click()
        WebDriverWait(other, 20).until(lambda d: d.find_element(By.ID, "recheck").is_displayed())
        assert other.find_element(By.ID, "geo-status").text == "已添加位置。"
        lat = other.find_element(By.CSS_SELECTOR, "form.pin input[name=lat]")
        assert lat.get_attribute("value") == f"{SHANGHAI[0]:.2f}"
        _submit_pin(other, code.pin)
        assert _verdict(other) == "suspect_clone"
        assert _title(other) == "疑似复制码"
        assert "很可能已被复制" in other.find_element(By.ID, "reasons").text
        assert "请勿使用" in other.find_element(By.ID, "advice").text
        assert _csp_violations(other) == []
        _screenshot(other, "zh-pin-reused-clone")


def test_a_wrong_pin_says_so(site: dict[str, Any]) -> None:
    code = site["codes"][3]
    wrong = "000000" if code.pin != "000000" else "111111"
    with browser("en") as driver:
        driver.get(_local(site["page"], code))
        _submit_pin(driver, wrong)
        assert "not correct" in driver.find_element(By.ID, "reasons").text
        assert driver.find_element(By.ID, "pin-input").is_displayed()  # try again
        _screenshot(driver, "en-pin-wrong")


def test_a_malformed_link_shows_the_400_page(site: dict[str, Any]) -> None:
    page, gtin = site["page"], site["gtin"]
    bad = f"{page.url}/01/{gtin[:-1]}{(int(gtin[-1]) + 1) % 10}/21/ABC%3Cscript%3E?17=301231"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(bad, timeout=10)  # noqa: S310 (our own loopback server)
    assert caught.value.code == 400
    caught.value.close()
    with browser("en") as driver:
        driver.get(bad)
        error = driver.find_element(By.ID, "error")
        assert error.get_attribute("data-status") == "400"
        assert "This link is not a valid product code" in error.text
        assert "<script>" not in driver.page_source.split("<script nonce")[0]
        _screenshot(driver, "en-bad-link-400")
    with browser("zh-CN") as driver:
        driver.get(bad)
        assert "此链接不是有效的产品码" in driver.find_element(By.ID, "error").text
        _screenshot(driver, "zh-bad-link-400")
