"""The consumer page's server (uvicorn) on a real socket: request-line and header limits,
malformed percent-encoding, keep-alive, a client that resets, slow clients, bounded
concurrency, the graceful drain and the access log. Behaviour only, never timings."""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from sealmark.server import http_server
from tests.support.logs import capture_all_logs
from tests.unit.test_verifier_http import LINK, SIGNATURE, FakeVerifier, raw
from verifier.domain import ClientContext, Verification
from verifier.http import VerifyHttp, start_http


class GatedVerifier(FakeVerifier):
    """A fake whose verify() waits for ``gate`` (and says it started on ``entered``)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def verify(
        self, payload: str, pin: str | None, context: ClientContext, *, parsed: object = None
    ) -> Verification:
        self.entered.set()
        assert self.gate.wait(timeout=20), "the test never opened the gate"
        return super().verify(payload, pin, context, parsed=parsed)


@pytest.fixture
def page() -> Iterator[VerifyHttp]:
    running, _ = start_http(FakeVerifier(), "127.0.0.1", 0)
    yield running
    running.stop()


def _get(port: int, target: str, headers: dict[str, str] | None = None) -> _Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target, headers=headers or {})
        reply = conn.getresponse()
        return _Reply(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


@dataclass
class _Reply:
    status: int
    headers: Any
    body: bytes


def _in_background(port: int, target: str) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []

    def fetch() -> None:
        reply = _get(port, target)
        answers.append((reply.status, reply.body))

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    return thread, answers


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a phone that lost its signal does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# --------------------------------------------------------------------------------- limits


def test_an_oversized_url_is_414_with_a_static_page(page: VerifyHttp) -> None:
    target = "/01/09520123456788/21/A?8030=" + "A" * http_server.MAX_URL_BYTES
    status, reply = raw(page, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 414 and "Server: Sealmark\r\n" in reply and "Connection: close" in reply
    assert "<title>414" in reply and "AAAA" not in reply and "Traceback" not in reply


def test_oversized_headers_are_431(page: VerifyHttp) -> None:
    big = "X-Big: " + "b" * (http_server.MAX_HEADER_BYTES + 1) + "\r\n"
    status, reply = raw(page, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{big}\r\n".encode())
    assert status == 431 and "bbbb" not in reply and "Connection: close" in reply
    many = "".join(f"X-{n}: y\r\n" for n in range(http_server.MAX_HEADERS + 1))
    status, reply = raw(page, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert status == 431
    # Just under both limits: answered.
    fits = "".join(f"X-{n}: y\r\n" for n in range(http_server.MAX_HEADERS - 2))
    request = f"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{fits}\r\n"
    assert raw(page, request.encode())[0] == 200


@pytest.mark.parametrize(
    "target",
    [
        "/01/09520123456788/21/%",
        "/01/09520123456788/21/AB%2",
        "/01/09520123456788/21/%FF%FE",
        "/01/09520123456788/21/ABC?17=%ZZ",
        "/01/09520123456788/21/ABC?8030=%",
    ],
)
def test_malformed_percent_encoding_is_400_with_a_readable_page(
    page: VerifyHttp, target: str
) -> None:
    request = (
        f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept-Language: en\r\nConnection: close\r\n\r\n"
    )
    status, reply = raw(page, request.encode())
    assert status == 400, reply
    assert "This link is not a valid product code" in reply and "Traceback" not in reply


def test_a_request_line_with_raw_bytes_is_400(page: VerifyHttp) -> None:
    status, reply = raw(page, b"GET /01/\xff\xfe/21/%00 HTTP/1.1\r\nHost: \xff\r\n\r\n")
    assert status == 400 and "Server: Sealmark\r\n" in reply


def test_http_2_over_plain_http_1_is_505(page: VerifyHttp) -> None:
    assert raw(page, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")[0] == 505


# ----------------------------------------------------------------------------- keep-alive


def test_many_requests_share_one_keep_alive_connection(page: VerifyHttp) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", page.port, timeout=10)
    conn.connect()
    first = conn.sock
    for n in range(60):
        target = "/healthz" if n % 2 else LINK
        conn.request("GET", target, headers={"Accept": "application/json"})
        reply = conn.getresponse()
        assert reply.status == 200 and reply.read()
        assert reply.getheader("Connection") != "close"
    assert conn.sock is first  # never reconnected
    conn.close()


def test_pipelined_requests_are_answered_in_order(page: VerifyHttp) -> None:
    one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    two = "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    _, reply = raw(page, (one + one + two).encode())
    statuses = re.findall(r"HTTP/1\.1 ([0-9]{3}) ", reply)
    assert statuses == ["200", "200", "404"]


# --------------------------------------------------------------------- clients that go away


def test_a_client_reset_leaves_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    fake = GatedVerifier()
    running, port = start_http(fake, "127.0.0.1", 0)
    try:
        # Reset mid-head, reset after a whole request, reset while the answer is computed.
        for request in (b"GET /healthz HT", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(request)
            _reset(sock)
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(f"GET {LINK} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert fake.entered.wait(timeout=10)
        _reset(sock)
        time.sleep(0.2)  # the reset reaches the server before the answer is written
        fake.gate.set()
        reply = _get(port, "/healthz")
        assert reply.status == 200
    finally:
        running.stop()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "ConnectionResetError" not in out + err


def test_a_slow_head_is_cut_off_with_408(page: VerifyHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server, "HEAD_TIMEOUT_S", 0.3)
    with socket.create_connection(("127.0.0.1", page.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        reply = sock.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 408 ")


def test_a_slow_body_is_cut_off_with_408(page: VerifyHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server, "BODY_TIMEOUT_S", 0.3)
    head = f"POST {LINK} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\npin="
    with socket.create_connection(("127.0.0.1", page.port), timeout=10) as sock:
        sock.sendall(head.encode())
        reply = sock.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 408 ")


# ----------------------------------------------------------------- concurrency and draining


def test_a_full_pool_answers_503_with_retry_after() -> None:
    fake = GatedVerifier()
    running, port = start_http(fake, "127.0.0.1", 0, workers=1, queue=0)
    try:
        thread, answers = _in_background(port, LINK)
        assert fake.entered.wait(timeout=10)
        refused = _get(port, LINK, {"Accept-Language": "en"})
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        assert b"Traceback" not in refused.body
        assert _get(port, "/healthz").status == 503  # every answer takes a slot
    finally:
        fake.gate.set()
        thread.join(timeout=10)
        running.stop()
    assert answers and answers[0][0] == 200


def test_too_many_connections_get_503_with_retry_after(
    page: VerifyHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 2)
    with (
        socket.create_connection(("127.0.0.1", page.port), timeout=10) as one,
        socket.create_connection(("127.0.0.1", page.port), timeout=10) as two,
    ):
        time.sleep(0.2)  # both accepted before the third
        status, reply = raw(page, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 503 and "Retry-After: 1\r\n" in reply and "Server: Sealmark" in reply
        assert one.fileno() > 0 and two.fileno() > 0
    time.sleep(0.2)  # the two have gone
    assert raw(page, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200


def test_stop_lets_a_request_in_flight_finish() -> None:
    fake = GatedVerifier()
    running, port = start_http(fake, "127.0.0.1", 0, grace_s=10)
    thread, answers = _in_background(port, LINK)
    assert fake.entered.wait(timeout=10)
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(running.stop()), daemon=True)
    stopper.start()
    time.sleep(0.3)  # stop() has closed the listener and is draining
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    fake.gate.set()
    thread.join(timeout=10)
    stopper.join(timeout=15)
    assert answers and answers[0][0] == 200 and b"Genuine product" in answers[0][1]
    assert stopped == [True]


# ----------------------------------------------------------------------------- access log


def test_one_access_line_per_request_without_query_values(
    page: VerifyHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    with capture_all_logs() as logged:
        # The server's module logger may be cached with an earlier test's level filter.
        monkeypatch.setattr(http_server, "log", structlog.get_logger("sealmark.http"))
        assert _get(page.port, LINK).status == 200
        assert _get(page.port, "/nope?pin=654321").status == 404
        raw(page, b"GARBAGE\r\n\r\n")
        time.sleep(0.1)
    lines = [e for e in logged if e["event"] == "verify_http.access"]
    assert [e["status"] for e in lines] == [200, 404, 400]
    first = lines[0]
    assert first["method"] == "GET" and first["path"] == LINK.partition("?")[0]
    assert first["query"] == "17,8030" and isinstance(first["ms"], float)
    text = repr(lines)
    assert SIGNATURE not in text and "654321" not in text and "301231" not in text
    assert lines[2]["refused"] == "malformed"
