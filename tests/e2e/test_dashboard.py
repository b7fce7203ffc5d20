"""The brand dashboard in a real browser: codes issued, commissioned, packed, shipped, scanned
(genuine, cloned, diverted, forged, recalled) and a lot recalled through real Issuer /
Aggregator / Verifier / Audit servers on PostgreSQL and Redis; the dashboard on a free port;
Debian's headless Chromium signs in with the brand's auditor token, reads every chart and its
table, downloads a CSV, and is refused without a session and for another brand's data.
Screenshots go to pytest's temporary directory (their paths are printed)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from audit.dashboard import PANELS
from audit.http import start_dashboard
from sealmark.clock import FixedClock
from sealmark.server.app import create_server
from sealmark.v1 import (
    aggregator_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    issuer_pb2,
    issuer_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from sealmark_app.root import binding_for
from sealmark_app.root.audit import build_dashboard_app
from sealmark_app.root.verifier import build_verifier
from tests.e2e import test_verify_page as verify_page
from tests.e2e.conftest import _md, make_container
from tests.e2e.test_verification import GENEROUS, _issue, _pack_and_ship, _verify
from tests.support.cli import sealmark
from tests.support.tenants import seed_tenant

pytestmark = pytest.mark.e2e
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DESKTOP = (1280, 900)
ROLES = {"line": ["line"], "logistics": ["logistics"], "admin": ["admin"], "auditor": ["auditor"]}


@pytest.fixture(scope="module")
def site(pg_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Brand A with a real history over three days; brand B with an auditor and nothing
    else; the dashboard serving both."""
    verify_page._require_chromium()
    clock = FixedClock(START)
    container = make_container(pg_dsn, redis_url)
    container.clock = clock
    brand = seed_tenant(container.uow, clock, "dash", tokens=ROLES)
    other = seed_tenant(container.uow, clock, "dash2", tokens={"auditor": ["auditor"]})
    verifier = build_verifier(container)
    verifier.set_rules(brand.tenant_id, GENEROUS)
    running = create_server(
        [binding_for(n, container) for n in ("issuer", "aggregator", "verifier", "audit")],
        container.authenticator,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    w: dict[str, Any] = {
        "issuer": issuer,
        "aggregator": aggregator_pb2_grpc.AggregatorStub(channel),
        "verifier": verifier_pb2_grpc.VerifierStub(channel),
        "brand": brand,
    }
    recall_id = _seed_history(w, clock, audit_pb2_grpc.AuditStub(channel))
    verifier.flush()
    dashboard = start_dashboard(build_dashboard_app(container), "127.0.0.1", 0)
    shots = tmp_path_factory.mktemp("dashboard-screenshots")
    yield {
        # localhost, as `make run` prints it: a secure context, so the Secure cookie is kept
        "url": f"http://localhost:{dashboard.port}",
        "brand": brand,
        "other": other,
        "recall_id": recall_id,
        "shots": shots,
        "downloads": tmp_path_factory.mktemp("dashboard-downloads"),
        "dsn": pg_dsn,
        "redis": redis_url,
    }
    dashboard.stop(1)
    channel.close()
    running.stop(0)
    container.close()


def _seed_history(w: dict[str, Any], clock: FixedClock, audit: Any) -> str:
    """Day 1: genuine scans in DE. Day 2: a clone (one code in six sessions) and a diversion
    (a DE code scanned in PL). Day 3: a forged signature, a lot recalled and scanned."""
    codes = _issue(w, 8, lot="LOT-DASH", expiry="270110")  # expires within 90 days
    _pack_and_ship(w, codes[:6], "DE")
    for n, code in enumerate(codes[:3]):
        assert _verify(w, code.digital_link, session=f"d1-{n}", region="DE").verdict in (
            verifier_pb2.VERDICT_AUTHENTIC,
            verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE,
        )
    clock.advance(days=1)
    verdicts = [
        _verify(w, codes[3].digital_link, session=f"clone-{n}", region="DE").verdict
        for n in range(6)
    ]
    assert verifier_pb2.VERDICT_SUSPECT_CLONE in verdicts
    answer = _verify(w, codes[4].digital_link, session="far-away", region="PL")
    assert answer.verdict == verifier_pb2.VERDICT_DIVERTED
    clock.advance(days=1)
    head, sig = codes[5].digital_link.rsplit("8030=", 1)
    forged = head + "8030=" + sig[:-3] + ("A" if sig[-3] != "A" else "B") + sig[-2:]
    assert _verify(w, forged, session="forger", region="CN").verdict == (
        verifier_pb2.VERDICT_COUNTERFEIT
    )
    recalled = _issue(w, 3, lot="LOT-RECALL", expiry="301231")
    _pack_and_ship(w, recalled[:2], "FR")
    clock.advance(minutes=5)
    report = audit.Recall(
        audit_pb2.RecallRequest(
            request_id="rc-" + os.urandom(4).hex(),
            lot=audit_pb2.LotRef(gtin=w["brand"].gtin, lot="LOT-RECALL"),
            reason="seal may be broken",
        ),
        metadata=_md(w["brand"].tokens["admin"]),
        timeout=10,
    )
    assert report.units_affected == 3
    clock.advance(minutes=5)
    answer = _verify(w, recalled[0].digital_link, session="after-recall", region="FR")
    assert answer.verdict == verifier_pb2.VERDICT_RECALLED
    return str(report.recall_id)


@contextmanager
def browser(downloads: Path | None = None) -> Iterator[WebDriver]:
    """A fresh headless Chromium (its own profile: no cookie of another test) at desktop
    width, saving downloads in ``downloads``."""
    with verify_page.browser("en-US", window=DESKTOP, downloads=downloads) as driver:
        yield driver


def _screenshot(driver: WebDriver, site: dict[str, Any], name: str) -> Path:
    """The whole page at desktop width, as a PNG in the test's temporary directory."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(DESKTOP[0], max(DESKTOP[1], int(height) + 40))
    path = Path(site["shots"]) / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    driver.set_window_size(*DESKTOP)
    print(f"screenshot: {path}")
    return path


def _sign_in(driver: WebDriver, site: dict[str, Any], token: str) -> None:
    driver.get(site["url"] + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "tenant"))


def _csp_violations(driver: WebDriver) -> list[str]:
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return [e["message"] for e in entries if "Content Security Policy" in e["message"]]


def _rows(driver: WebDriver, panel: str) -> list[list[str]]:
    table = driver.find_element(By.ID, f"table-{panel}")
    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def _bars(driver: WebDriver, panel: str) -> dict[str, float]:
    """Bar tooltip → drawn size (width for horizontal charts, height for vertical)."""
    chart = driver.find_element(By.ID, f"chart-{panel}")
    bars: dict[str, float] = {}
    for rect in chart.find_elements(By.CSS_SELECTOR, "rect"):
        tips = rect.find_elements(By.TAG_NAME, "title")
        if tips:
            size = max(float(rect.get_attribute("width")), 0) * (
                float(rect.get_attribute("height"))
            )
            bars[str(tips[0].get_attribute("textContent"))] = size
    return bars


def test_without_a_session_the_dashboard_asks_to_sign_in(site: dict[str, Any]) -> None:
    with browser() as driver:
        driver.get(site["url"] + "/")
        assert driver.current_url == site["url"] + "/login"
        assert driver.find_element(By.ID, "token").get_attribute("type") == "password"
        _screenshot(driver, site, "01-sign-in")
        driver.get(site["url"] + "/csv/verdict_mix")
        assert "401 Unauthorized" in driver.find_element(By.TAG_NAME, "h1").text
        assert "sign in first" in driver.find_element(By.ID, "error-detail").text
        driver.get(site["url"] + "/login")
        driver.find_element(By.ID, "token").send_keys("smk_aaaaaaaaaaaa_" + "x" * 43)
        driver.find_element(By.ID, "sign-in").click()
        assert "not valid" in driver.find_element(By.ID, "login-error").text
        assert driver.get_cookie("sm_dash") is None
        driver.get(site["url"] + "/")
        assert driver.current_url == site["url"] + "/login"


def test_an_auditor_sees_every_chart_with_the_seeded_data(site: dict[str, Any]) -> None:
    brand = site["brand"]
    with browser() as driver:
        _sign_in(driver, site, brand.tokens["auditor"])
        assert driver.current_url == site["url"] + "/"
        assert driver.find_element(By.ID, "tenant").text == brand.tenant_id
        cookie = driver.get_cookie("sm_dash")
        assert cookie is not None
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert brand.tokens["auditor"] not in json.dumps(driver.get_cookies())
        for panel in PANELS:
            chart = driver.find_element(By.ID, f"chart-{panel}")
            assert chart.is_displayed(), panel
            assert chart.get_attribute("role") == "img"
            assert driver.find_element(By.ID, f"table-{panel}").is_displayed(), panel
            assert "No data" not in driver.find_element(By.ID, f"panel-{panel}").text, panel
            assert any(size > 0 for size in _bars(driver, panel).values()), panel
            assert driver.find_element(By.ID, f"alt-{panel}").text, panel
        days = {r[0]: r for r in _rows(driver, "scans_per_day")}
        assert days["2026-11-20"][1] == "3" and days["2026-11-21"][4] == "7"
        assert days["2026-11-22"][4] == "2"
        regions = {r[0] for r in _rows(driver, "scans_per_region")}
        assert {"DE", "PL", "CN", "FR"} <= regions
        verdicts = {r[0] for r in _rows(driver, "verdict_mix")}
        assert {"suspect_clone", "diverted", "counterfeit", "recalled"} <= verdicts
        kinds = {r[0] for r in _rows(driver, "open_alerts")}
        assert {"clone", "diversion", "bad_signature"} <= kinds
        hotspots = {r[0]: r for r in _rows(driver, "clones")}
        assert int(hotspots["DE"][1]) >= 1 and hotspots["PL"][3] == "1"
        lots = _rows(driver, "nearing_expiry")
        # Six shipped to DE; two still at the plant (no market yet). The recalled lot is out.
        assert [r[1:] for r in lots] == [
            ["LOT-DASH", "2027-01-10", "", "2"],
            ["LOT-DASH", "2027-01-10", "DE", "6"],
        ]
        recalls = _rows(driver, "recalls")
        assert recalls[0][0] == site["recall_id"] and recalls[0][2] == "seal may be broken"
        assert recalls[0][3:] == ["3", "1", "1"]
        assert _csp_violations(driver) == []
        _screenshot(driver, site, "02-dashboard")
        driver.get(site["url"] + "/?from=2026-11-21&to=2026-11-21")
        only = _rows(driver, "scans_per_day")
        assert [r[0] for r in only] == ["2026-11-21"]
        _screenshot(driver, site, "03-dashboard-one-day")


def test_an_auditor_downloads_a_csv(site: dict[str, Any]) -> None:
    downloads: Path = site["downloads"]
    with browser(downloads) as driver:
        _sign_in(driver, site, site["brand"].tokens["auditor"])
        driver.find_element(By.ID, "csv-scans_per_region").click()
        deadline = time.monotonic() + 20
        files: list[Path] = []
        while time.monotonic() < deadline:
            files = [p for p in downloads.glob("*.csv") if not p.name.endswith(".crdownload")]
            if files:
                break
            time.sleep(0.1)
        assert len(files) == 1, list(downloads.iterdir())
        name = files[0].name
        assert name.startswith(f"sealmark-{site['brand'].tenant_id}-scans_per_region-")
        lines = files[0].read_text().splitlines()
        assert lines[0] == "region,genuine,suspect,other,total"
        rows = {line.split(",")[0]: line.split(",") for line in lines[1:]}
        assert rows["PL"][2] == "1" and set(rows) >= {"DE", "PL", "CN", "FR"}
        print(f"downloaded: {files[0]}")


def test_another_brands_auditor_sees_none_of_it_and_cannot_ask(site: dict[str, Any]) -> None:
    brand, other = site["brand"], site["other"]
    with browser() as driver:
        _sign_in(driver, site, other.tokens["auditor"])
        assert driver.find_element(By.ID, "tenant").text == other.tenant_id
        source = driver.page_source
        for secret in (brand.tenant_id, "LOT-DASH", site["recall_id"], brand.gtin):
            assert secret not in source
        for panel in ("verdict_mix", "open_alerts", "clones", "recalls", "nearing_expiry"):
            assert "No data" in driver.find_element(By.ID, f"panel-{panel}").text, panel
        _screenshot(driver, site, "04-other-brand")
        # Asking for the first brand by name is a parameter the dashboard does not take.
        driver.get(site["url"] + f"/?tenant={brand.tenant_id}")
        assert "400" in driver.find_element(By.TAG_NAME, "h1").text
        assert "tenant" in driver.find_element(By.ID, "error-detail").text
        # A session cookie rewritten to name the first brand is no session at all.
        cookie = driver.get_cookie("sm_dash")
        assert cookie is not None
        payload, mac = cookie["value"].split(".")
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        body["t"] = brand.tenant_id
        forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
        driver.delete_cookie("sm_dash")
        driver.add_cookie({**cookie, "value": f"{forged}.{mac}"})
        driver.get(site["url"] + "/csv/verdict_mix")
        assert "401" in driver.find_element(By.TAG_NAME, "h1").text
        driver.get(site["url"] + "/")
        assert driver.current_url == site["url"] + "/login"
        _screenshot(driver, site, "05-forged-session-refused")


def test_signing_out_ends_the_session(site: dict[str, Any]) -> None:
    with browser() as driver:
        _sign_in(driver, site, site["brand"].tokens["auditor"])
        driver.find_element(By.ID, "sign-out").click()
        WebDriverWait(driver, 20).until(lambda d: d.current_url.endswith("/login"))
        assert driver.get_cookie("sm_dash") is None
        driver.get(site["url"] + "/")
        assert driver.current_url == site["url"] + "/login"


def test_serve_refuses_a_plaintext_dashboard_off_loopback(site: dict[str, Any]) -> None:
    done = sealmark(
        "serve",
        "audit",
        dsn=site["dsn"],
        redis_url=site["redis"],
        env_extra={
            "SEALMARK_GRPC_PORT": "0",
            "SEALMARK_METRICS_PORT": "0",
            "SEALMARK_DASHBOARD_HTTP_HOST": "0.0.0.0",  # noqa: S104 (what the refusal is about)
            "SEALMARK_DASHBOARD_HTTP_PORT": "0",
        },
    )
    assert done.returncode == 2
    assert "SEALMARK_DASHBOARD_HTTP_HOST: 0.0.0.0 is not a loopback address" in done.stderr
    assert "plaintext HTTP (the brand dashboard)" in done.stderr
