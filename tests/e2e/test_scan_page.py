"""The /scan page in a real browser: a photo of a label chosen in the file input and sent by
the plain form (JavaScript off), against a real Verifier on PostgreSQL and Redis with codes
issued and commissioned through the Issuer. Screenshots go to test-artifacts/verify-page/."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from issuer.labels import Label, Symbology, render_png
from sealmark.crypto.covert import CovertKeys
from sealmark.server.app import create_server
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.root import binding_for
from sealmark_app.root.verifier import build_image_verifier, build_verifier
from tests.e2e.conftest import _md, make_container
from tests.e2e.test_verify_page import (
    ARTIFACTS,
    _csp_violations,
    _fits_the_phone,
    _issue_and_commission,
    _require_chromium,
    _screenshot,
    browser,
)
from tests.support.tenants import seed_tenant
from verifier.domain import Rules
from verifier.http import start_http

pytestmark = pytest.mark.e2e
PEPPER = b"e2e-test-pepper-0123456789"  # as make_container sets it


@pytest.fixture(scope="module")
def shop(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    _require_chromium()
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(container.uow, container.clock, "scan")
    verifier = build_verifier(container)
    verifier.set_rules(brand.tenant_id, Rules(rate_per_minute=100_000, guess_limit=100_000))
    running = create_server([binding_for("issuer", container)], container.authenticator)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    codes = _issue_and_commission(issuer, brand.gtin, brand.tokens["line"], count=2)
    page, _ = start_http(
        verifier, "127.0.0.1", 0, clock=container.clock, images=build_image_verifier(container)
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield {"page": page, "codes": codes, "key": CovertKeys(PEPPER).for_tenant(brand.tenant_id)}
    page.stop()
    channel.close()
    running.stop(0)
    container.close()


def _photo(code: issuer_pb2.IssuedCode, key: bytes | None, path: Path) -> Path:
    png = render_png(Label(Symbology.QR, code.digital_link, code.hri), module_px=6, covert_key=key)
    image = Image.open(io.BytesIO(png)).convert("L").rotate(13, expand=True, fillcolor=255)
    image.save(path, format="JPEG", quality=60)
    return path


def _send(shop: dict[str, Any], language: str, photo: Path, name: str) -> tuple[str, str, str]:
    with browser(language, javascript=False) as driver:
        driver.get(shop["page"].url + "/scan")
        assert _fits_the_phone(driver)
        driver.find_element(By.ID, "image-input").send_keys(str(photo))
        driver.find_element(By.ID, "scan-submit").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "covert"))
        _screenshot(driver, name)
        assert _fits_the_phone(driver) and _csp_violations(driver) == []
        verdict = driver.find_element(By.ID, "verdict").get_attribute("data-verdict")
        mark = driver.find_element(By.ID, "covert").get_attribute("data-mark")
        return str(verdict), str(mark), str(driver.find_element(By.ID, "covert").text)


def test_a_photo_of_a_genuine_label(shop: dict[str, Any], tmp_path: Path) -> None:
    photo = _photo(shop["codes"][0], shop["key"], tmp_path / "genuine.jpg")
    verdict, mark, text = _send(shop, "en", photo, "scan-genuine-en")
    assert (verdict, mark) == ("authentic", "present")
    assert "photocopy" in text


def test_a_photo_of_a_re_generated_label_in_chinese(shop: dict[str, Any], tmp_path: Path) -> None:
    photo = _photo(shop["codes"][1], None, tmp_path / "copy.jpg")
    verdict, mark, text = _send(shop, "zh-CN", photo, "scan-copy-zh")
    assert (verdict, mark) == ("authentic", "absent")
    assert "未发现" in text
