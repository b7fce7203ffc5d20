"""The server loop: the standard library's threading HTTP server, hardened (no HTTP/0.9, one
Content-Length, bounded bodies, no traceback on stderr), answering through a :class:`VerifyApp`
on a thread of its own."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from sealmark.clock import Clock
from verifier.http.app import ImagePort, VerifierPort, VerifyApp
from verifier.http.pages import render_plain_error, secure
from verifier.http.requests import (
    HOST,
    MAX_BODY_BYTES,
    MAX_UPLOAD_BYTES,
    SCAN_PATH,
    Request,
    RequestView,
    Response,
)

log = structlog.get_logger("sealmark.verify_http")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "Sealmark"
    timeout = 20  # seconds a client may take to send a request: no slow-loris threads
    # The standard library answers a request line it cannot parse as HTTP/0.9 (a bare body,
    # no status line); as HTTP/1.0 the 400 it sends has one.
    default_request_version = "HTTP/1.0"

    def version_string(self) -> str:
        return self.server_version  # no Python version for scanners to match

    def parse_request(self) -> bool:
        """The standard library's parsing, less what lets a request hide in another: HTTP/0.9
        request lines (no version) and more than one Content-Length are 400; a body on a
        method that takes none is never read as the next request (the connection closes)."""
        raw: bytes = getattr(self, "raw_requestline", b"")
        if len(raw.split()) == 2:
            self.command, self.close_connection = "", True
            self.request_version = self.default_request_version
            self.requestline = str(raw, "iso-8859-1").rstrip("\r\n")
            self.send_error(HTTPStatus.BAD_REQUEST)
            return False
        if not super().parse_request():
            return False
        if len(self.headers.get_all("Content-Length") or ()) > 1:
            self.send_error(HTTPStatus.BAD_REQUEST)
            return False
        if self.command != "POST" and (
            self.headers.get("Content-Length", "0").strip() != "0"
            or self.headers.get("Transfer-Encoding")
        ):
            self.close_connection = True
        return True

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_OPTIONS(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = b""
        if self.command == "POST":
            length = self._content_length()
            if length is None:
                return
            body = self.rfile.read(length)
        request = Request(
            method=self.command,
            target=self.path,
            headers=_Headers(self.headers),
            body=body,
            client=self.client_address[0],
        )
        try:
            response = self.server.app.handle(request)
        except Exception:  # handle() answers every error itself; this is the last resort
            log.exception("verify_http.unanswered", method=self.command)
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        self._send(response)

    def _content_length(self) -> int | None:
        """The POST body's length, or None after answering 411 / 413 / 400."""
        if self.headers.get("Transfer-Encoding"):
            self._refuse(HTTPStatus.LENGTH_REQUIRED)
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            self._refuse(HTTPStatus.LENGTH_REQUIRED)
            return None
        if not raw.isascii() or not raw.strip().isdigit():
            self._refuse(HTTPStatus.BAD_REQUEST)
            return None
        length = int(raw)
        limit = MAX_UPLOAD_BYTES if self.path.partition("?")[0] == SCAN_PATH else MAX_BODY_BYTES
        if length > limit:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return None
        return length

    def _refuse(self, status: HTTPStatus) -> None:
        """Answer without reading the body, and close: what is left of it is not a request."""
        self.close_connection = True
        view = RequestView(
            Request("POST", self.path, _Headers(self.headers), b"", self.client_address[0]),
            trust_proxy=False,
        )
        key = (
            "error_too_large"
            if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            else "error_bad_input"
        )
        if key == "error_too_large" and view.path == SCAN_PATH:
            key = "error_image_too_large"
        response = self.server.app.error(view, status, key)
        secure(response, view.nonce)
        response.headers.append(("Connection", "close"))
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304):
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by the standard library before routing (malformed request line,
        headers too long, unsupported method): a static page, nothing echoed."""
        self.close_connection = True
        body = render_plain_error(code)
        self.send_response(code)
        for name, value in (
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Access lines carry serials and client addresses: debug only, and never a body.
        log.debug("verify_http.access", line=format % args)


class _Headers(Mapping[str, str]):
    """The request headers, looked up case-insensitively (first value wins)."""

    def __init__(self, message: Any) -> None:
        self._message = message

    def __getitem__(self, key: str) -> str:
        value = self._message.get(key)
        if value is None:
            raise KeyError(key)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._message.keys())

    def __len__(self) -> int:
        return len(self._message.keys())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        app_factory: Callable[[int], VerifyApp],
        reuse_port: bool = False,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.allow_reuse_port = reuse_port  # other serving processes share the port
        super().__init__(address, _Handler)
        self.app = app_factory(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke outside the handler's own answers. A client that went away
        (reset, closed before reading the answer) is routine under load; anything else is
        logged with its traceback. Never socketserver's raw traceback on stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("verify_http.client_gone", error=type(error).__name__)
        else:
            log.exception("verify_http.connection_failed")


class VerifyHttp:
    """A running HTTP face: ``port``, ``url`` and :meth:`stop`."""

    def __init__(self, server: _Server, host: str) -> None:
        self._server = server
        self.port: int = server.server_address[1]
        shown = "localhost" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
        self.url = (
            f"http://{shown}:{self.port}" if ":" not in shown else f"http://[{shown}]:{self.port}"
        )
        self._thread = threading.Thread(
            target=server.serve_forever, name="verify-http", kwargs={"poll_interval": 0.2}
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop taking connections and close the socket; requests under way run to their end
        on their own threads."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_http(
    verifier: VerifierPort,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
    trust_proxy: bool = False,
    reuse_port: bool = False,
    images: ImagePort | None = None,
) -> tuple[VerifyHttp, int]:
    """Start the HTTP face on ``host:port`` (0 = any free port) in a thread of its own;
    ``reuse_port`` lets other serving processes bind the same port; with ``images`` it also
    serves the /scan upload page. Returns the running face and the port it bound."""

    def app_factory(bound: int) -> VerifyApp:
        shown = "localhost" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
        fallback = (
            f"{shown}:{bound}" if HOST.fullmatch(f"{shown}:{bound}") else f"localhost:{bound}"
        )
        return VerifyApp(
            verifier, fallback_host=fallback, clock=clock, trust_proxy=trust_proxy, images=images
        )

    running = VerifyHttp(_Server((host, port), app_factory, reuse_port), host)
    log.info("verify_http.started", url=running.url)
    return running, running.port
