"""The Verifier's HTTP face on a real socket (port 0), with a hand-written fake verifier:
routes, HTML vs JSON, languages, the PIN form, status codes, hostile input and headers."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import pytest

from sealmark.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from sealmark.gs1.code import GS1Code
from verifier.domain import ClientContext, Product, Reason, Verdict, Verification
from verifier.http import MAX_BODY_BYTES, SESSION_COOKIE, VerifyApp, VerifyHttp, start_http

GTIN = "09520123456788"
SIGNATURE = "K1" + "A" * 84
LINK = f"/01/{GTIN}/10/LOT1/21/ABC123?17=301231&8030={SIGNATURE}"
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@dataclass
class FakeVerifier:
    """Answers with ``verdict`` (and ``reasons``); echoes lot and serial of the payload into
    the product so escaping can be seen; raises ``error`` when set."""

    verdict: Verdict = Verdict.AUTHENTIC
    reasons: list[Reason] = field(default_factory=list)
    error: Exception | None = None
    pin_available: bool = True
    calls: list[tuple[str, str | None, ClientContext]] = field(default_factory=list)
    keys: dict[str, Any] = field(default_factory=dict)
    health_status: str = "ok"

    def verify(
        self, payload: str, pin: str | None, context: ClientContext, *, parsed: object = None
    ) -> Verification:
        self.calls.append((payload, pin, context))
        if self.error is not None:
            raise self.error
        code = GS1Code.from_digital_link(payload, today=NOW.date())
        verdict, reasons, confirmed = self.verdict, list(self.reasons), False
        if pin == "123456":
            verdict, confirmed = Verdict.AUTHENTIC, True
            reasons = [Reason("pin_confirmed", "pin matches", Verdict.AUTHENTIC, 0.0)]
        elif pin is not None:
            verdict = Verdict.SUSPECT_CLONE
            reasons = [
                Reason(
                    "pin_reused",
                    "pin used before",
                    Verdict.SUSPECT_CLONE,
                    0.9,
                    {"first_used_at": "2026-02-01T08:00:00+00:00"},
                )
            ]
        return Verification(
            verification_id="v-0001",
            verdict=verdict,
            reasons=reasons,
            risk_score=0.9 if verdict is Verdict.SUSPECT_CLONE else 0.0,
            verified_at=NOW,
            serial=code.serial,
            product=Product(
                gtin=code.gtin,
                name="Demo Tonic 100 ml",
                lot=code.lot or "",
                expiry=code.expiry,
                production_date=date(2025, 1, 2),
                brand="Demo Brand",
            ),
            first_verified_at=datetime(2026, 2, 1, 8, 0, tzinfo=UTC),
            first_verified_region="DE",
            session_count=2,
            pin_available=self.pin_available and not confirmed,
            pin_confirmed=confirmed,
            tenant_id="tenant-secret-id",
            alerts=["clone"],
        )

    def key_set(self, tenant_id: str | None, gtin: str | None) -> dict[str, Any]:
        if tenant_id == "nobody":
            raise NotFound("tenant nobody")
        if tenant_id == "down":
            raise Unavailable("postgres: connection refused")
        return {"tenant": tenant_id or "t-by-gtin", "keys": [{"key_id": "K1"}], "gtin": gtin}

    def health(self) -> dict[str, Any]:
        if self.health_status == "broken":
            raise RuntimeError("redis exploded")
        return {
            "status": self.health_status,
            "redis": "up" if self.health_status == "ok" else "down",
        }


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture(scope="module")
def shared_fake() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture(autouse=True)
def fake(shared_fake: FakeVerifier) -> FakeVerifier:
    shared_fake.__init__()  # type: ignore[misc]  # a fresh fake for each test, same server
    return shared_fake


@pytest.fixture(scope="module")
def server(shared_fake: FakeVerifier) -> Iterator[VerifyHttp]:
    running, port = start_http(shared_fake, "127.0.0.1", 0)
    assert port == running.port > 0
    yield running
    running.stop()


def call(
    server: VerifyHttp,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> Reply:
    url = server.url + path
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.headers, exc.read())


def raw(server: VerifyHttp, request: bytes) -> tuple[int, str]:
    """Send bytes as they are (no client-side encoding); the status and the whole reply."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    reply = b"".join(chunks).decode("utf-8", "replace")
    assert reply.startswith("HTTP/1.1 "), f"no status line: {reply[:80]!r}"
    return int(reply.split(" ", 2)[1]), reply


def _post(server: VerifyHttp, path: str, form: str, **headers: str) -> Reply:
    return call(
        server,
        path,
        method="POST",
        data=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )


# ------------------------------------------------------------------------------ the page


def test_page_shows_the_verdict_and_the_facts(server: VerifyHttp, fake: FakeVerifier) -> None:
    reply = call(server, LINK, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    page = reply.text
    assert 'data-verdict="authentic"' in page and "Genuine product" in page
    assert '<html lang="en">' in page
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in page
    for fact in ("Demo Tonic 100 ml", "Demo Brand", GTIN, "LOT1", "ABC123", "31 Dec 2030"):
        assert fact in page
    assert "2 Jan 2025" in page and "v-0001" in page
    # Another consumer's first check: its day and region, never its time of day.
    assert "First checked on 1 Feb 2026 in Germany." in page and "08:00" not in page
    assert '<form class="pin" method="post"' in page and 'name="pin"' in page
    assert "tenant-secret-id" not in page
    payload, pin, context = fake.calls[-1]
    assert payload == f"http://127.0.0.1:{server.port}{LINK}"
    assert pin is None and context.client == "127.0.0.1" and context.locale == "en"
    assert (context.latitude, context.longitude) == (None, None)


def test_other_digital_link_forms_reach_the_verifier(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    for path in (
        f"/01/{GTIN}/21/ABC123?17=301231",
        f"/01/{GTIN}/22/V1/10/LOT1/21/ABC123",
        "/01/9520123456788/21/ABC123",  # GTIN-13 key, padded by the parser
        f"/some/prefix/01/{GTIN}/21/ABC123?linkType=gs1:certificationInfo",
    ):
        assert call(server, path).status == 200, path
    assert len(fake.calls) == 4


def test_session_cookie_is_set_once_and_becomes_the_session(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    first = call(server, LINK)
    cookie = first.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    session = cookie.split(";")[0].split("=", 1)[1]
    assert len(session) >= 22 and fake.calls[-1][2].session_id == session
    second = call(server, LINK, headers={"Cookie": f"{SESSION_COOKIE}={session}"})
    assert second.headers["Set-Cookie"] is None
    assert fake.calls[-1][2].session_id == session
    forged = call(server, LINK, headers={"Cookie": f'{SESSION_COOKIE}="<x>"; a=\x7f'})
    assert forged.status == 200 and forged.headers["Set-Cookie"] is not None
    assert fake.calls[-1][2].session_id != "<x>"


def test_chinese_by_accept_language_and_lang_override(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    zh = call(server, LINK, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in zh.text and "正品" in zh.text and "有效期至" in zh.text
    assert "2030年12月31日" in zh.text and fake.calls[-1][2].locale == "zh-CN"
    assert f'href="?17=301231&amp;8030={SIGNATURE}&amp;lang=en"' in zh.text
    en = call(server, LINK + "&lang=en", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in en.text and "Genuine product" in en.text
    # Our lang parameter is not part of the scanned code.
    assert fake.calls[-1][0] == f"http://127.0.0.1:{server.port}{LINK}"
    odd = call(server, LINK + "&lang=%3Cscript%3E", headers={"Accept-Language": "zh"})
    assert odd.status == 200 and '<html lang="zh-CN">' in odd.text
    assert "<script>" not in odd.text.split("<script nonce=")[0]


def test_pin_form_reverifies_with_the_pin_and_location(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    reply = _post(server, LINK, "pin=123456&lat=48.137&lon=11.575")
    assert reply.status == 200
    assert 'data-verdict="authentic"' in reply.text and 'id="pin-confirmed"' in reply.text
    assert 'name="pin"' not in reply.text  # confirmed: no form any more
    _, pin, context = fake.calls[-1]
    assert pin == "123456" and (context.latitude, context.longitude) == (48.137, 11.575)
    again = _post(server, LINK, "pin=654321")
    assert 'data-verdict="suspect_clone"' in again.text
    assert "entered on 1 Feb 2026:" in again.text  # pin_reused's param: the day only
    empty = _post(server, LINK, "pin=&lat=&lon=")
    assert empty.status == 200 and fake.calls[-1][1] is None


@pytest.mark.parametrize(
    "form", ["lat=north&lon=1", "lat=1&lon=" + "9" * 40, "pin=%FF%FE", "a=1&" * 40]
)
def test_bad_forms_are_400(server: VerifyHttp, fake: FakeVerifier, form: str) -> None:
    reply = _post(server, LINK, form)
    assert reply.status == 400 and "Traceback" not in reply.text
    assert "Please check what you entered" in reply.text
    assert fake.calls == []


def test_json_of_the_verification(server: VerifyHttp) -> None:
    reply = call(server, LINK, headers={"Accept": "application/json"})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    body = reply.json()
    assert body["verdict"] == "authentic" and body["verification_id"] == "v-0001"
    assert body["product"] == {
        "gtin": GTIN,
        "name": "Demo Tonic 100 ml",
        "lot": "LOT1",
        "expiry": "2030-12-31",
        "production_date": "2025-01-02",
        "brand": "Demo Brand",
    }
    assert body["first_verified_on"] == "2026-02-01" and "first_verified_at" not in body
    assert body["first_verified_region"] == "DE" and body["session_count"] == 2
    assert (body["pin_available"], body["pin_confirmed"], body["degraded"]) == (True, False, False)
    assert body["verified_at"] == NOW.isoformat() and body["risk_score"] == 0.0
    assert "tenant_id" not in body and "alerts" not in body
    assert reply.headers["Cache-Control"] == "no-store"
    clone = _post(server, LINK, "pin=999999", Accept="application/json").json()
    assert clone["verdict"] == "suspect_clone"
    assert clone["reasons"] == [
        {
            "code": "pin_reused",
            "rule": "pin used before",
            "verdict": "suspect_clone",
            "message": "This hidden PIN was already entered on 1 Feb 2026: "
            "the code has most likely been copied.",
        }
    ]
    zh = call(server, LINK, headers={"Accept": "application/json", "Accept-Language": "zh"})
    assert zh.json()["title"] == "正品"


def test_a_browser_accept_header_gets_html(server: VerifyHttp) -> None:
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert (
        call(server, LINK, headers={"Accept": accept})
        .headers["Content-Type"]
        .startswith("text/html")
    )
    assert (
        call(server, LINK, headers={"Accept": "*/*"})
        .headers["Content-Type"]
        .startswith("text/html")
    )


# ----------------------------------------------------------------------- verdict statuses


@pytest.mark.parametrize(
    ("code", "status"), [("not_our_code", 404), ("unparseable", 400), ("never_issued", 200)]
)
def test_invalid_verdicts_are_not_200(
    server: VerifyHttp, fake: FakeVerifier, code: str, status: int
) -> None:
    fake.verdict = Verdict.INVALID if code != "never_issued" else Verdict.COUNTERFEIT
    fake.reasons = [Reason(code, "rule", fake.verdict, 1.0)]
    reply = call(server, LINK)
    assert reply.status == status and f'data-verdict="{fake.verdict.value}"' in reply.text


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidArgument("context.latitude", "91 is outside -90..90"), 400),
        (ResourceExhausted("client 127.0.0.1: 120 per minute"), 429),
        (NotFound("nothing"), 404),
        (Unavailable("postgres down"), 503),
        (RuntimeError("secret internals /etc/passwd"), 500),
    ],
)
def test_errors_map_to_statuses_without_internals(
    server: VerifyHttp, fake: FakeVerifier, error: Exception, status: int
) -> None:
    fake.error = error
    for accept in ("text/html", "application/json"):
        reply = call(server, LINK, headers={"Accept": accept})
        assert reply.status == status
        assert "secret internals" not in reply.text and "Traceback" not in reply.text
        assert "postgres" not in reply.text and "120 per minute" not in reply.text
        assert reply.headers["Content-Security-Policy"]
    if status == 429:
        assert reply.headers["Retry-After"] == "60"
        assert "Too many checks" in call(server, LINK).text
        assert "查验过于频繁" in call(server, LINK, headers={"Accept-Language": "zh"}).text
    if status == 400:
        assert "context.latitude" in call(server, LINK).text  # the field is named


# --------------------------------------------------------------------------- bad links


@pytest.mark.parametrize(
    "path",
    [
        f"/01/{GTIN[:-1]}9/21/ABC123",  # wrong check digit
        "/01/12345/21/ABC123",  # not a GTIN
        f"/01/{GTIN}/21/AB%ZZ",  # bad percent-encoding
        f"/01/{GTIN}/21/%C3%28",  # percent-encoding that is not UTF-8
        f"/01/{GTIN}",  # no serial: a product, not an item
        f"/01/{GTIN}/21/",  # empty segment
        f"/01/{GTIN}/21/ABC123?17=301399",  # no 13th month
        f"/01/{GTIN}/21/ABC123?21=X",  # qualifier in the query
        f"/01/{GTIN}/21/ABC/10/LOT",  # qualifiers out of order
        f"/01/{GTIN}/10/{quote(' OR 1=1--')}/21/A",  # SQL with spaces: not CSET 82
        f"/01/{GTIN}/21/{quote('<img src=x onerror=alert(1)>')}",  # too long and not CSET 82
        f"/01/{GTIN}/21/ABC123?17=301231&8030=" + "A" * 10_000,  # 10 kB URL
        "/00/395201230000000012",  # an SSCC: a pallet, not an item
        "/01",
    ],
)
def test_malformed_links_are_400_with_a_readable_page(
    server: VerifyHttp, fake: FakeVerifier, path: str
) -> None:
    reply = call(server, path, headers={"Accept-Language": "en"})
    assert reply.status == 400, reply.text
    assert "This link is not a valid product code" in reply.text
    assert "<img" not in reply.text and "onerror=alert" not in reply.text.replace("&#34;", "")
    assert "Traceback" not in reply.text and reply.headers["Cache-Control"] == "no-store"
    zh = call(server, path, headers={"Accept-Language": "zh-CN"})
    assert zh.status == 400 and "此链接不是有效的产品码" in zh.text
    assert fake.calls == []


def test_raw_hostile_characters_are_refused_and_escaped(server: VerifyHttp) -> None:
    request = (
        f"GET /01/{GTIN}/10/<script>alert(1)</script>/21/'\";-- HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nAccept-Language: en\r\nConnection: close\r\n\r\n"
    ).encode()
    status, reply = raw(server, request)
    assert status == 400
    assert "<script>alert" not in reply and "&lt;" in reply


def test_hostile_values_that_are_valid_gs1_are_escaped(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    lot, serial = "<script>x</script>", "'\";--"
    path = f"/01/{GTIN}/10/{quote(lot, safe='')}/21/{quote(serial, safe='')}"
    reply = call(server, path)
    assert reply.status == 200
    assert "<script>x" not in reply.text
    assert "&lt;script&gt;x&lt;/script&gt;" in reply.text
    assert "&#39;&#34;;--" in reply.text
    assert GS1Code.from_digital_link(fake.calls[-1][0], today=NOW.date()).lot == lot


def test_a_hostile_host_header_is_not_trusted(server: VerifyHttp, fake: FakeVerifier) -> None:
    reply = call(server, LINK, headers={"Host": "evil<x>.example"})
    assert reply.status == 200
    assert fake.calls[-1][0].startswith(f"http://127.0.0.1:{server.port}/01/")
    root = call(server, "/.well-known/gs1resolver", headers={"Host": "id.brand.example"})
    assert root.json()["resolverRoot"] == "http://id.brand.example"


def test_unknown_paths_are_404(server: VerifyHttp) -> None:
    for path in ("/admin", "/index.php", "/%ZZ", "/gtin/09520123456788", "/.env"):
        reply = call(server, path)
        assert reply.status == 404, path
        assert "Page not found" in reply.text and "Traceback" not in reply.text
    assert "页面不存在" in call(server, "/admin", headers={"Accept-Language": "zh"}).text


def test_a_malformed_request_line_gets_a_static_page(server: VerifyHttp) -> None:
    status, reply = raw(server, b"GET /<script>x</script> HTTP/9.9\r\n\r\n")
    assert status == 505 and "<script>x" not in reply
    status, reply = raw(server, b"\x16\x03\x01garbage\r\n\r\n")  # TLS to a plain port
    assert status == 400 and "garbage" not in reply
    status, reply = raw(server, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n")
    assert status == 431 and "Server: Sealmark\r\n" in reply and "Python" not in reply


@pytest.mark.parametrize(
    "line",
    [
        b"GARBAGE",
        b"\x00\x01\x02\xff\xfe",
        b"GET /",  # HTTP/0.9: no version, so no status line would come back
        b"POST /01/x",
        b"GET / HTTP/1.1 extra",
        b"GET / FTP/1.1",
        b"GET / HTTP/1.x",
        b"A B C D E F",
    ],
)
def test_garbage_request_lines_get_a_400_status_line(server: VerifyHttp, line: bytes) -> None:
    status, reply = raw(server, line + b"\r\n\r\n")
    assert status == 400 and "Server: Sealmark\r\n" in reply and "Connection: close" in reply


@pytest.mark.parametrize("second", ["0", "5", "13"])
def test_two_content_lengths_are_400(server: VerifyHttp, fake: FakeVerifier, second: str) -> None:
    body = "pin=123456"
    for method in ("POST", "GET"):
        request = (
            f"{method} {LINK} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nContent-Length: {second}\r\n\r\n{body}"
        )
        status, reply = raw(server, request.encode())
        assert status == 400 and reply.count("HTTP/1.1 ") == 1, reply
    assert fake.calls == []


def test_a_body_on_a_get_is_never_read_as_the_next_request(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    request = f"GET {LINK} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n"
    status, reply = raw(server, (request + smuggled).encode())
    assert status == 200 and reply.count("HTTP/1.1 ") == 1


def test_unsupported_methods(server: VerifyHttp) -> None:
    assert call(server, LINK, method="PUT", data=b"x").status == 501
    assert call(server, LINK, method="DELETE").status == 501
    wrong = call(server, "/healthz", method="POST", data=b"")
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET, HEAD"


def test_head_and_options_do_not_verify(server: VerifyHttp, fake: FakeVerifier) -> None:
    head = call(server, LINK, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert call(server, f"/01/{GTIN}/21/%ZZ", method="HEAD").status == 400
    options = call(server, LINK, method="OPTIONS")
    assert options.status == 204 and options.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in options.headers["Access-Control-Allow-Methods"]
    assert fake.calls == []


# ----------------------------------------------------------------------------- POST limits


def test_post_body_limit_is_413(server: VerifyHttp, fake: FakeVerifier) -> None:
    reply = _post(server, LINK, "pin=" + "1" * MAX_BODY_BYTES)
    assert reply.status == 413 and "Request too large" in reply.text
    assert fake.calls == []
    status, _ = raw(
        server,
        f"POST {LINK} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n".encode(),
    )
    assert status == 413


def test_post_without_length_is_411(server: VerifyHttp) -> None:
    status, _ = raw(server, f"POST {LINK} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 411
    chunked = f"POST {LINK} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert raw(server, chunked.encode())[0] == 411
    status, _ = raw(
        server, f"POST {LINK} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".encode()
    )
    assert status == 400


def test_post_of_another_content_type_is_400(server: VerifyHttp) -> None:
    reply = call(
        server,
        LINK,
        method="POST",
        data=b'{"pin": "1"}',
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 400


# ------------------------------------------------------------------------------- headers


def test_security_headers_and_csp_nonce(server: VerifyHttp) -> None:
    reply = call(server, LINK)
    csp = reply.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]+)'", csp)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in reply.text
    assert f'<style nonce="{nonce.group(1)}">' in reply.text
    assert "'unsafe-inline'" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.headers["Server"] == "Sealmark"
    assert "Accept-Language" in reply.headers["Vary"]
    other = call(server, LINK).headers["Content-Security-Policy"]
    assert other != csp  # a fresh nonce per response
    for path in ("/healthz", "/.well-known/gs1resolver", "/nowhere", "/keys?tenant=t"):
        headers = call(server, path).headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path


def test_the_page_works_without_javascript(server: VerifyHttp) -> None:
    page = call(server, LINK).text
    # The only script is the nonce-bound location helper; the location box starts hidden
    # and the PIN form is a plain POST form.
    assert page.count("<script") == 1
    assert '<section class="card" id="location" hidden>' in page
    form = page[page.index('<form class="pin"') :]
    form = form[: form.index("</form>")]
    assert 'method="post"' in form and 'type="submit"' in form and "action=" not in form


# ------------------------------------------------------------------------- other routes


def test_resolver_description(server: VerifyHttp) -> None:
    reply = call(server, "/.well-known/gs1resolver")
    assert reply.status == 200 and reply.headers["Access-Control-Allow-Origin"] == "*"
    body = reply.json()
    assert body["name"] and body["supportedPrimaryKeys"] == ["01"]
    assert body["resolverRoot"] == f"http://127.0.0.1:{server.port}"
    assert body["supportedLinkType"][0]["prefix"] == "gs1:"
    assert body["supportedLinkType"][0]["namespace"] == "https://gs1.org/voc/"


def test_key_set(server: VerifyHttp) -> None:
    by_tenant = call(server, "/keys?tenant=acme")
    assert by_tenant.status == 200 and by_tenant.json()["tenant"] == "acme"
    assert by_tenant.headers["Access-Control-Allow-Origin"] == "*"
    by_gtin = call(server, f"/keys?gtin={GTIN}")
    assert by_gtin.json()["gtin"] == GTIN
    missing = call(server, "/keys?tenant=nobody")
    assert missing.status == 404 and missing.json()["error"] == "not_found"
    for query in ("", "?tenant=", "?tenant=%3Cscript%3E", "?gtin=" + "1" * 100):
        bad = call(server, "/keys" + query)
        assert bad.status == 400 and bad.json()["error"] == "invalid_argument", query


@pytest.mark.parametrize("status", ["ok", "degraded"])
def test_health(server: VerifyHttp, fake: FakeVerifier, status: str) -> None:
    fake.health_status = status
    reply = call(server, "/healthz")
    assert reply.status == 200 and reply.json()["status"] == status


def test_health_that_cannot_answer_is_503(server: VerifyHttp, fake: FakeVerifier) -> None:
    fake.health_status = "broken"
    reply = call(server, "/healthz")
    assert reply.status == 503 and reply.json() == {"status": "down"}


def test_key_set_while_the_database_is_down(server: VerifyHttp) -> None:
    reply = call(server, "/keys?tenant=down")
    assert reply.status == 503 and "postgres" not in reply.text


def test_home_page(server: VerifyHttp) -> None:
    assert "Scan the QR code" in call(server, "/").text
    assert "二维码" in call(server, "/", headers={"Accept-Language": "zh-CN"}).text


def test_trusted_proxy_headers(fake: FakeVerifier) -> None:
    running, _ = start_http(fake, "127.0.0.1", 0, trust_proxy=True)
    try:
        headers = {
            "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
            "X-Forwarded-Proto": "https",
            "X-Client-Region": "cn-31",
            "Host": "id.brand.example",
        }
        reply = call(running, LINK, headers=headers)
        _, _, context = fake.calls[-1]
        assert (context.client, context.region) == ("198.51.100.7", "CN-31")
        assert fake.calls[-1][0].startswith("https://id.brand.example/01/")
        assert "Secure" in reply.headers["Set-Cookie"]
        call(running, LINK, headers={**headers, "X-Client-Region": "<bad>"})
        assert fake.calls[-1][2].region == ""
    finally:
        running.stop()
    # Untrusted (the default): the same headers change nothing.
    plain, _ = start_http(fake, "127.0.0.1", 0)
    try:
        call(plain, LINK, headers={"X-Forwarded-For": "203.0.113.9", "X-Client-Region": "CN"})
        assert (fake.calls[-1][2].client, fake.calls[-1][2].region) == ("127.0.0.1", "")
    finally:
        plain.stop()


def test_stop_closes_the_port(fake: FakeVerifier) -> None:
    running, port = start_http(fake, "127.0.0.1", 0)
    assert call(running, "/healthz").status == 200
    running.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_an_app_that_fails_outright_still_answers_500(
    server: VerifyHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: VerifyApp, request: Any) -> Any:
        raise RuntimeError("template directory vanished: /secret/path")

    monkeypatch.setattr(VerifyApp, "handle", explode)
    reply = call(server, LINK)
    assert reply.status == 500
    assert "/secret/path" not in reply.text and "Traceback" not in reply.text


# ------------------------------------------------------------------ trailing slash, CORS


def test_a_trailing_slash_names_the_same_link(server: VerifyHttp, fake: FakeVerifier) -> None:
    path, _, query = LINK.partition("?")
    reply = call(server, f"{path}/?{query}", headers={"Accept": "application/json"})
    assert reply.status == 200 and reply.json()["verdict"] == "authentic"
    assert fake.calls[-1][0].endswith(LINK)  # verified as the link without the slash
    assert call(server, f"/01/{GTIN}/21/ABC123/").status == 200
    assert call(server, f"/01/{GTIN}/21/ABC123/", method="HEAD").status == 200
    assert call(server, f"/01/{GTIN}/21/ABC123//").status == 400  # an empty segment


def test_get_answers_of_the_link_carry_cors(server: VerifyHttp) -> None:
    json_accept = {"Accept": "application/json"}
    for path, status in ((LINK, 200), (f"/01/{GTIN}/21/%ZZ", 400), (f"/01/{GTIN}/21/1/", 200)):
        reply = call(server, path, headers=json_accept)
        assert reply.status == status, path
        assert reply.headers["Access-Control-Allow-Origin"] == "*", path
    head = call(server, LINK, method="HEAD")
    assert head.headers["Access-Control-Allow-Origin"] == "*"
    for path in ("/healthz", "/.well-known/gs1resolver", "/keys?tenant=acme"):
        assert call(server, path).headers["Access-Control-Allow-Origin"] == "*", path
