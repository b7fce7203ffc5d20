"""The dashboard's HTTP face on the fakes, over real sockets (the shared server loop on a free
port): signing in with a token for a signed session cookie, the cookie's attributes, CSRF and
cross-site refusals, every way a session stops being one (forged, expired, revoked, another
tenant's), the pages and CSV downloads, parameters refused by name, HTTPS with the server
certificate, and no token in any log line."""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import structlog.testing

from audit.dashboard import PANELS, Dashboard
from audit.http import DashboardApp, SessionSeal, start_dashboard
from audit.http import app as dashboard_app
from audit.http.sessions import SESSION_TTL_S
from audit.memory import MemoryAudit
from sealmark.clock import FixedClock
from sealmark.errors import Unauthenticated
from sealmark.server import http_server
from sealmark.server.http_server import HttpServer
from sealmark.server.tls import ServerCertificates, TlsFiles
from sealmark.tenancy.model import Principal, Role
from tests.storage_contract import gtin_under, tenant
from tests.support.certs import TestCA
from tests.support.logs import capture_all_logs

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
KEY = b"k" * 32


class Tokens:
    """The token checks: value → principal, and a principal by token id (revocable)."""

    def __init__(self) -> None:
        self.by_value: dict[str, Principal] = {}
        self.revoked: set[str] = set()

    def add(self, value: str, tenant_id: str, *roles: Role) -> Principal:
        principal = Principal(tenant_id, frozenset(roles), token_id=value[4:16])
        self.by_value[value] = principal
        return principal

    def authenticate(self, bearer: str) -> Principal:
        principal = self.by_value.get(bearer)
        if principal is None or principal.token_id in self.revoked:
            raise Unauthenticated("invalid or revoked token")
        return principal

    def by_id(self, token_id: str) -> Principal:
        for principal in self.by_value.values():
            if principal.token_id == token_id and token_id not in self.revoked:
                return principal
        raise Unauthenticated("invalid or revoked token")


AUDITOR = "smk_auditor0000a_" + "A" * 43
OTHER = "smk_auditor0000b_" + "B" * 43
LINE = "smk_linetoken000_" + "C" * 43


class Site:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.clock = FixedClock(NOW)
        world = MemoryAudit(self.clock.now)
        self.brands = []
        for _ in range(2):
            brand = tenant()
            world.add_tenant(brand)
            gtin = gtin_under(brand.company_prefixes[0])
            world.add_product(brand.id, gtin)
            key = world.add_code(brand.id, gtin, "S1", market="DE")
            world.add_scan(brand.id, f"v-{brand.id}", key, "authentic", NOW - timedelta(hours=1))
            self.brands.append(brand.id)
        self.tokens = Tokens()
        self.tokens.add(AUDITOR, self.brands[0], Role.AUDITOR)
        self.tokens.add(OTHER, self.brands[1], Role.AUDITOR)
        self.tokens.add(LINE, self.brands[0], Role.LINE)
        self.seal = SessionSeal(KEY, self.clock.now)
        app = DashboardApp(
            Dashboard(world.storage, self.clock),
            authenticate=self.tokens.authenticate,
            token_principal=self.tokens.by_id,
            seal=self.seal,
            now=self.clock.now,
        )
        self.server: HttpServer = start_dashboard(app, "127.0.0.1", 0, tls=tls)
        self.tls = tls


@pytest.fixture
def site() -> Iterator[Site]:
    running = Site()
    yield running
    running.server.stop(1)


Reply = tuple[int, dict[str, list[str]], bytes]


def call(
    site: Site,
    method: str,
    target: str,
    *,
    cookies: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Reply:
    if context is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "localhost", site.server.port, context=context, timeout=10
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", site.server.port, timeout=10)
    sent = dict(headers or {})
    if cookies:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = None
    if form is not None:
        body = urlencode(form).encode()
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, target, body=body, headers=sent)
        reply = conn.getresponse()
        found: dict[str, list[str]] = {}
        for name, value in reply.getheaders():
            found.setdefault(name.lower(), []).append(value)
        return reply.status, found, reply.read()
    finally:
        conn.close()


def set_cookies(headers: dict[str, list[str]]) -> dict[str, str]:
    """name → the whole Set-Cookie line."""
    return {line.split("=", 1)[0]: line for line in headers.get("set-cookie", [])}


def login_form(site: Site, **kwargs: object) -> tuple[str, str]:
    """(csrf field, login cookie value) from GET /login."""
    status, headers, body = call(site, "GET", "/login", **kwargs)  # type: ignore[arg-type]
    assert status == 200
    csrf = re.search(rb'name="csrf" value="([^"]+)"', body)
    assert csrf is not None
    cookie = set_cookies(headers)["sm_dash_login"].split(";")[0].split("=", 1)[1]
    return csrf.group(1).decode(), cookie


def post_login(
    site: Site, csrf: str, cookie: str, token: str, headers: dict[str, str] | None = None
) -> Reply:
    """POST /login with the form's CSRF field and its cookie ('' sends none)."""
    return call(
        site,
        "POST",
        "/login",
        cookies={"sm_dash_login": cookie} if cookie else None,
        form={"csrf": csrf, "token": token},
        headers=headers,
    )


def sign_in(site: Site, token: str = AUDITOR, **kwargs: object) -> str:
    """The session cookie's value after signing in with ``token``."""
    csrf, cookie = login_form(site, **kwargs)
    status, headers, _ = call(
        site,
        "POST",
        "/login",
        cookies={"sm_dash_login": cookie},
        form={"csrf": csrf, "token": token},
        **kwargs,  # type: ignore[arg-type]
    )
    assert status == 303 and headers["location"] == ["/"]
    return set_cookies(headers)["sm_dash"].split(";")[0].split("=", 1)[1]


def test_without_a_session_the_page_sends_to_sign_in_and_csv_is_refused(site: Site) -> None:
    status, headers, _ = call(site, "GET", "/")
    assert status == 303 and headers["location"] == ["/login"]
    for panel in PANELS:
        status, headers, body = call(site, "GET", f"/csv/{panel}")
        assert status == 401, panel
        assert b"Sign in" in body and "text/csv" not in headers["content-type"][0]


def test_the_login_form_and_its_cookie(site: Site) -> None:
    status, headers, body = call(site, "GET", "/login")
    assert status == 200
    assert b'type="password"' in body and b'method="post"' in body
    line = set_cookies(headers)["sm_dash_login"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/login", "Max-Age=600"):
        assert attribute in line
    csp = headers["content-security-policy"][0]
    assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert headers["cache-control"] == ["no-store"]


def test_signing_in_gives_a_signed_http_only_strict_cookie_without_the_token(site: Site) -> None:
    csrf, cookie = login_form(site)
    status, headers, _ = post_login(site, csrf, cookie, AUDITOR)
    assert status == 303
    line = set_cookies(headers)["sm_dash"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute in line
    assert f"Max-Age={SESSION_TTL_S}" in line
    value = line.split(";")[0].split("=", 1)[1]
    payload = base64.urlsafe_b64decode(value.split(".")[0] + "==")
    assert AUDITOR not in line and AUDITOR.split("_")[2] not in payload.decode()
    assert json.loads(payload)["t"] == site.brands[0]


def test_the_dashboard_shows_every_panel_with_chart_table_and_csv(site: Site) -> None:
    session = sign_in(site)
    status, headers, body = call(site, "GET", "/", cookies={"sm_dash": session})
    assert status == 200
    page = body.decode()
    assert site.brands[0] in page and site.brands[1] not in page
    for panel in PANELS:
        assert f'id="panel-{panel}"' in page
        assert f'id="chart-{panel}"' in page and f'id="table-{panel}"' in page
        assert f'href="/csv/{panel}?from=' in page
    assert page.count('role="img"') == len(PANELS)
    nonce = re.search(r"style-src 'nonce-([^']+)'", headers["content-security-policy"][0])
    assert nonce is not None and f'<style nonce="{nonce.group(1)}">' in page
    assert "<script" not in page


def test_a_csv_download_is_the_panels_table(site: Site) -> None:
    session = sign_in(site)
    status, headers, body = call(
        site, "GET", "/csv/verdict_mix?from=2026-11-01&to=2026-11-20", cookies={"sm_dash": session}
    )
    assert status == 200
    assert headers["content-type"] == ["text/csv; charset=utf-8"]
    filename = f"sealmark-{site.brands[0]}-verdict_mix-2026-11-01-2026-11-20.csv"
    assert headers["content-disposition"] == [f'attachment; filename="{filename}"']
    assert body.decode().splitlines() == ["verdict,verifications,percent", "authentic,1,100.0"]


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ("/?from=2026-02-30", "from"),
        ("/?to=soon", "to"),
        ("/?from=2026-11-20&to=2026-11-01", "from"),
        ("/?limit=0", "limit"),
        ("/?days_ahead=99999", "days_ahead"),
        ("/?tenant=other", "tenant"),
        ("/csv/verdict_mix?limit=x", "limit"),
        ("/csv/everything", "panel"),
        ("/?from=%ff", "query"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(site: Site, target: str, field: str) -> None:
    session = sign_in(site)
    status, _, body = call(site, "GET", target, cookies={"sm_dash": session})
    assert status == 400
    assert f"<strong>{field}</strong>:" in body.decode()


def test_a_bad_token_a_token_without_the_role_or_a_bad_csrf_gets_no_session(site: Site) -> None:
    for token, expected in (("smk_nope", 401), (LINE, 403), ("", 401)):
        csrf, cookie = login_form(site)
        status, headers, body = post_login(site, csrf, cookie, token)
        assert status == expected, token
        assert "sm_dash" not in set_cookies(headers)
        assert b'id="login-error"' in body
    _, cookie = login_form(site)
    for csrf_field, login_cookie in (("forged" * 5, cookie), ("", ""), (cookie, "")):
        status, headers, _ = post_login(site, csrf_field, login_cookie, AUDITOR)
        assert status == 403 and "sm_dash" not in set_cookies(headers)


def test_a_cross_site_post_is_refused(site: Site) -> None:
    csrf, cookie = login_form(site)
    for headers in (
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "null"},
    ):
        status, found, _ = post_login(site, csrf, cookie, AUDITOR, headers)
        assert status == 403 and "sm_dash" not in set_cookies(found)
    ours = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}  # as our own forms send it
    assert post_login(site, csrf, cookie, AUDITOR, ours)[0] == 303
    csrf, cookie = login_form(site)
    origin = {"Origin": f"http://127.0.0.1:{site.server.port}"}
    assert post_login(site, csrf, cookie, AUDITOR, origin)[0] == 303


def test_a_forged_expired_or_revoked_session_is_no_session(site: Site) -> None:
    session = sign_in(site)
    payload, mac = session.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["t"] = site.brands[1]  # another tenant's data, with the old signature
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=") + "." + mac
    for value in (forged, payload, session + "x", "garbage", ""):
        status, headers, _ = call(site, "GET", "/", cookies={"sm_dash": value})
        assert status == 303 and headers["location"] == ["/login"], value
    assert call(site, "GET", "/", cookies={"sm_dash": session})[0] == 200
    site.clock.advance(seconds=SESSION_TTL_S + 1)
    assert call(site, "GET", "/", cookies={"sm_dash": session})[0] == 303
    fresh = sign_in(site)
    site.tokens.revoked.add(site.tokens.by_value[AUDITOR].token_id)
    assert call(site, "GET", "/", cookies={"sm_dash": fresh})[0] == 303
    assert call(site, "GET", "/csv/clones", cookies={"sm_dash": fresh})[0] == 401


def test_a_session_reads_only_its_own_tenant(site: Site) -> None:
    mine, theirs = sign_in(site, AUDITOR), sign_in(site, OTHER)
    for session, seen, unseen in ((mine, 0, 1), (theirs, 1, 0)):
        _, _, body = call(site, "GET", "/csv/scans_per_region", cookies={"sm_dash": session})
        assert body.decode().splitlines() == ["region,genuine,suspect,other,total", "DE,1,0,0,1"]
        _, _, page = call(site, "GET", "/", cookies={"sm_dash": session})
        assert site.brands[seen] in page.decode() and site.brands[unseen] not in page.decode()


def test_sign_out_needs_the_sessions_csrf_and_clears_the_cookie(site: Site) -> None:
    session = sign_in(site)
    _, _, page = call(site, "GET", "/", cookies={"sm_dash": session})
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    status, _, _ = call(site, "POST", "/logout", cookies={"sm_dash": session}, form={"csrf": "x"})
    assert status == 403
    status, headers, _ = call(
        site, "POST", "/logout", cookies={"sm_dash": session}, form={"csrf": csrf.group(1).decode()}
    )
    assert status == 303 and headers["location"] == ["/login"]
    assert "Max-Age=0" in set_cookies(headers)["sm_dash"]


def test_methods_paths_and_oversized_forms(site: Site) -> None:
    assert call(site, "GET", "/nowhere")[0] == 404
    status, headers, _ = call(site, "DELETE", "/")
    assert status == 501
    status, headers, _ = call(site, "POST", "/")
    assert status == 405 and headers["allow"] == ["GET"]
    status, _, _ = call(site, "POST", "/login", form={"token": "x" * 5000})
    assert status == 413
    assert call(site, "GET", "/healthz")[2] == b'{"status": "ok"}'


def test_no_token_reaches_a_log_line(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    with capture_all_logs() as logged:
        # The module loggers may be cached with an earlier test's level filter.
        monkeypatch.setattr(http_server, "log", structlog.get_logger("sealmark.http"))
        monkeypatch.setattr(dashboard_app, "log", structlog.get_logger("sealmark.dashboard"))
        session = sign_in(site)
        csrf, cookie = login_form(site)
        post_login(site, csrf, cookie, LINE)
        call(site, "GET", "/?from=2026-11-01", cookies={"sm_dash": session})
    text = json.dumps(logged, default=str)
    assert "dashboard_http.access" in text and "dashboard.login" in text
    for secret in (AUDITOR, LINE, AUDITOR.split("_")[2], LINE.split("_")[2], session):
        assert secret not in text


def test_the_dashboard_speaks_https_with_the_server_certificate(tmp_path: Path) -> None:
    ca = TestCA()
    cert, key = ca.server(cn="dashboard").write(tmp_path, "server")
    certs = ServerCertificates(TlsFiles(cert, key))
    site = Site(tls=certs.https_context())
    try:
        assert site.server.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(ca.write(tmp_path, "client-ca")))
        session = sign_in(site, context=context)
        status, _, body = call(site, "GET", "/", cookies={"sm_dash": session}, context=context)
        assert status == 200 and b'role="img"' in body
        try:  # plaintext on the TLS port: no page
            plain: int | None = call(site, "GET", "/login")[0]
        except (OSError, http.client.HTTPException):
            plain = None
        assert plain != 200
    finally:
        site.server.stop(1)


def test_session_seals_refuse_short_keys() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SessionSeal(b"short", lambda: NOW)
