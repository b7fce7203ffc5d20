"""The HTTP server loop every HTTP face shares (the Verifier's consumer page, the Audit's
dashboard): uvicorn (httptools' llhttp parser on a uvloop event loop) on a thread of its own,
answering through an :class:`HttpApp` called on a bounded thread pool. The app is request in,
response out, no sockets: :class:`Request` and :class:`Response` are the records between them.

What the standard library's server did not do, and this one does: HTTP/1.1 keep-alive without
the Nagle / delayed-ACK stall, request-line and header limits (414 / 431 with a static page),
a timeout for a request's head and its body, bounded concurrency (503 with Retry-After when
every worker is busy and the queue is full), a graceful drain on :meth:`HttpServer.stop` and
one structured access line per request, with no traceback when a client goes away. What it
kept: no HTTP/0.9, one Content-Length, bounded bodies, a body on a method that takes none is
never read as the next request, and no error page echoes the request."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

import httptools
import structlog
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = structlog.get_logger("sealmark.http")

MAX_URL_BYTES = 16 * 1024  # the request target (414 above); a Digital Link is a few hundred bytes
MAX_HEADERS = 100  # header lines per request, as the standard library allowed (431 above)
MAX_HEADER_BYTES = 16 * 1024  # all header lines together (431 above)
HEAD_TIMEOUT_S = 20.0  # a client may take this long to send a request's head: no slow loris
BODY_TIMEOUT_S = 20.0  # … and this long to send its body (408 after)
KEEP_ALIVE_S = 15.0  # an idle keep-alive connection closes after this
WORKERS = 32  # threads calling the (blocking) use case at once
QUEUE = 256  # requests that may wait for one of them; more are refused with 503
MAX_CONNECTIONS = 4096  # open connections; a new one above is answered 503 and closed
BACKLOG = 2048
_METHODS = frozenset({"GET", "HEAD", "POST", "OPTIONS"})
_ERROR_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Connection", "close"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # the request target as sent: origin form (/path?query) or absolute form
    headers: Mapping[str, str]  # lookups are case-insensitive
    body: bytes
    client: str  # the peer address


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


class HttpApp(Protocol):
    """What the server loop calls; request in, response out, no sockets."""

    def handle(self, request: Request) -> Response:
        """Answer one request (its body read); never raises."""

    def refused(self, request: Request, status: int) -> Response:
        """The app's own page for a request refused before it is handled (the body unread):
        503 when every worker is busy, 413 / 411 / 400 for a POST whose length is too large,
        missing or malformed. The server adds Retry-After to a 503."""

    def body_limit(self, path: str) -> int:
        """The largest POST body accepted on ``path`` (413 above)."""


def render_plain_error(status: int) -> bytes:
    """The page for errors found before a request is parsed (bad request line, oversized
    headers, unknown method): static text in both languages, nothing echoed."""
    phrase = HTTPStatus(status).phrase
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{status} {phrase}</title></head><body>"
        f"<h1>{status} {phrase}</h1><p>请求无效。The request could not be understood.</p>"
        "</body></html>"
    ).encode()


def page_headers(nonce: str, *, scripts: bool) -> list[tuple[str, str]]:
    """The security headers of every HTML face: styles (and with ``scripts``, scripts) run
    only with this response's nonce, forms post only to us, nothing may frame the page or
    sniff its type, no Referer leaves it."""
    script = f"'nonce-{nonce}'" if scripts else "'none'"
    csp = (
        f"default-src 'none'; script-src {script}; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    return [
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
    ]


class _Refused(Exception):
    """Raised from a parser callback: answer ``status`` with a static page and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _static_page(status: int, *extra: str) -> bytes:
    """A complete response for an error found before routing: nothing of the request in it."""
    body = render_plain_error(status)
    phrase = HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {phrase}", "Server: Sealmark", *extra]
    lines += ["Content-Type: text/html; charset=utf-8", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in _ERROR_HEADERS]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with Sealmark's limits and its own error pages: a request
    line or head the parser refuses is answered here (400 / 414 / 431 / 505, static page,
    Connection: close), logged as one access line, never as a traceback."""

    name = "http"  # the prefix of its log events (a subclass per face, see HttpServer)
    _head_bytes = 0
    _head_count = 0
    _head_timer: asyncio.TimerHandle | None = None
    _over_limit = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # As the standard library did: control characters and obs-fold in header values pass
        # (a forged cookie is the session's business); a bare CR or LF is still refused.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True, lenient_headers=True)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Above the limit the first bytes are answered 503 (our page, not uvicorn's plain
        # text); answered once read, so that closing sends a FIN, not an RST.
        self._over_limit = len(self.connections) > MAX_CONNECTIONS

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_count = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            raise _Refused(HTTPStatus.REQUEST_URI_TOO_LONG, "url_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        self._head_bytes += len(name) + len(value) + 4
        if self._head_count > MAX_HEADERS or self._head_bytes > MAX_HEADER_BYTES:
            raise _Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):  # 0.9 has no status line to answer with
            status = (
                HTTPStatus.BAD_REQUEST
                if version == "0.9"
                else HTTPStatus.HTTP_VERSION_NOT_SUPPORTED
            )
            raise _Refused(status, "http_version")
        try:
            super().on_headers_complete()
        except (UnicodeDecodeError, httptools.HttpParserInvalidURLError) as exc:
            raise _Refused(HTTPStatus.BAD_REQUEST, "bad_url") from exc

    def data_received(self, data: bytes) -> None:
        if self._over_limit:
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, "connections")
            return
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            loop = asyncio.get_running_loop()  # a new request's head starts: it has a deadline
            self._head_timer = loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no upgrades (no WebSocket): the request was answered as a plain one
        except httptools.HttpParserError as exc:
            refused = exc.__context__ if isinstance(exc.__context__, _Refused) else None
            if refused is not None:
                self._refuse(refused.status, refused.reason)
            elif str(exc) == "Invalid HTTP version":
                self._refuse(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "http_version")
            else:
                self._refuse(HTTPStatus.BAD_REQUEST, "malformed")

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(HTTPStatus.REQUEST_TIMEOUT, "head_timeout")

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _refuse(self, status: int, reason: str) -> None:
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # no answer under way
            extra = ("Retry-After: 1",) if status == HTTPStatus.SERVICE_UNAVAILABLE else ()
            self.transport.write(_static_page(status, *extra))
        self.transport.close()
        log.info(f"{self.name}.access", method="-", path="-", status=int(status), refused=reason)

    def send_400_response(self, msg: str) -> None:  # uvicorn's own text page, never used
        self._refuse(HTTPStatus.BAD_REQUEST, "malformed")


class _Headers(Mapping[str, str]):
    """The request headers, looked up case-insensitively (first value wins)."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._values: dict[str, str] = {}
        for name, value in raw:
            self._values.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def __getitem__(self, key: str) -> str:
        return self._values[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class _BodyTimeout(Exception):
    pass


class _ClientGone(Exception):
    pass


class _Face:
    """The ASGI application: the request from the scope, its body (bounded, with a
    deadline), then :meth:`HttpApp.handle` on the pool, one access line."""

    def __init__(self, app: HttpApp, workers: int, queue: int, name: str) -> None:
        self.app = app
        self.name = name
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=name.replace("_", "-")
        )
        self._capacity = workers + queue
        self._busy = 0  # requests on the pool or waiting for it (event loop thread only)
        self.cut_short = 0  # requests cancelled when the drain ran out of time

    def close(self, wait: bool) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        method: str = scope["method"]
        query: bytes = scope["query_string"]
        target = (scope["raw_path"] + (b"?" + query if query else b"")).decode("latin-1")
        headers = _Headers(scope["headers"])
        client = scope["client"][0] if scope.get("client") else ""
        request = Request(method, target, headers, b"", client)
        try:
            response, close = await self._answer(request, receive)
        except _ClientGone:
            self._access(request, 499, started)
            return
        if close:
            response.headers.append(("Connection", "close"))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", response.content_type.encode("latin-1")),
                    (b"content-length", str(len(response.body)).encode("ascii")),
                    *((n.encode("latin-1"), v.encode("latin-1")) for n, v in response.headers),
                ],
            }
        )
        quiet = method == "HEAD" or response.status in (204, 304)
        await send({"type": "http.response.body", "body": b"" if quiet else response.body})
        self._access(request, response.status, started)

    async def _answer(self, request: Request, receive: Any) -> tuple[Response, bool]:
        """The response, and whether to close the connection after it."""
        headers = request.headers
        if request.method not in _METHODS:
            return _plain(HTTPStatus.NOT_IMPLEMENTED), True
        close = False
        if request.method == "POST":
            refusal = self._refusal(request)
            if refusal is not None:
                return self._refused(request, refusal), True
            try:
                body = await self._body(receive, int(headers["Content-Length"]))
            except _BodyTimeout:
                return self._refused(request, HTTPStatus.REQUEST_TIMEOUT), True
            request = Request(request.method, request.target, headers, body, request.client)
        elif headers.get("Content-Length", "0").strip() != "0" or "Transfer-Encoding" in headers:
            close = True  # a body on a method that takes none is never read as a request
        if self._busy >= self._capacity:
            response = self.app.refused(request, HTTPStatus.SERVICE_UNAVAILABLE)
            response.headers.append(("Retry-After", "1"))
            return response, close
        self._busy += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self.app.handle, request), close
        except asyncio.CancelledError:
            self.cut_short += 1
            raise
        except Exception:  # handle() answers every error itself; this is the last resort
            log.exception(f"{self.name}.unanswered", method=request.method)
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR), True
        finally:
            self._busy -= 1

    def _refusal(self, request: Request) -> int | None:
        """411 / 400 / 413 for a POST whose length is missing, malformed or too large."""
        headers = request.headers
        if "Transfer-Encoding" in headers or "Content-Length" not in headers:
            return HTTPStatus.LENGTH_REQUIRED
        raw = headers["Content-Length"]
        if not raw.isascii() or not raw.strip().isdigit():
            return HTTPStatus.BAD_REQUEST
        if int(raw) > self.app.body_limit(request.target.partition("?")[0]):
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        return None

    def _refused(self, request: Request, status: int) -> Response:
        """Answer without reading (the rest of) the body: the connection closes after."""
        if status == HTTPStatus.REQUEST_TIMEOUT:
            return _plain(status)
        return self.app.refused(request, status)

    @staticmethod
    async def _body(receive: Any, length: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + BODY_TIMEOUT_S
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0.0))
            except TimeoutError as exc:
                raise _BodyTimeout from exc
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size >= length or not message.get("more_body", False):
                return b"".join(chunks)[:length]

    def _access(self, request: Request, status: int, started: float) -> None:
        """One line per request: the path, the names of the query's parameters (their values
        carry signatures and expiry dates; a PIN only ever comes in a POST body), the status
        and the time taken. Never a body, a cookie or a header."""
        path, _, query = request.target.partition("?")
        names = sorted({item.partition("=")[0][:32] for item in query.split("&") if item})
        log.info(
            f"{self.name}.access",
            method=request.method,
            path=path[:256],
            query=",".join(names[:16]),
            status=int(status),
            ms=round((time.perf_counter() - started) * 1000, 2),
        )


def _plain(status: int) -> Response:
    """A static error page (the server's own, before routing): nothing of the request."""
    return Response(
        status, render_plain_error(status), headers=list(_ERROR_HEADERS[:1] + _ERROR_HEADERS[2:])
    )


class _Config(uvicorn.Config):
    """uvicorn's configuration with our own TLS context (uvicorn builds one from file names
    only, and could not take the certificate reloads of :class:`ServerCertificates`)."""

    def __init__(self, tls: ssl.SSLContext | None, app: Any, **options: Any) -> None:
        super().__init__(app, **options)
        self._tls = tls

    def load(self) -> None:
        super().load()
        self.ssl = self._tls


class HttpServer:
    """A running HTTP face: ``port``, ``url`` and :meth:`stop`."""

    def __init__(
        self,
        sock: socket.socket,
        face: _Face,
        host: str,
        *,
        grace_s: float,
        tls: ssl.SSLContext | None = None,
        what: str = "the HTTP face",
    ) -> None:
        self._face = face
        self.port: int = sock.getsockname()[1]
        self.url = f"{'https' if tls is not None else 'http'}://{shown_host(host, self.port)}"
        config = _Config(
            tls,
            face,
            http=type(f"_Protocol_{face.name}", (_Protocol,), {"name": face.name}),
            ws="none",
            lifespan="off",
            loop="none",
            log_config=None,
            access_log=False,  # ours: one structlog line per request (_Face._access)
            server_header=False,
            proxy_headers=False,  # X-Forwarded-* is the app's business (trust_proxy)
            headers=[("Server", "Sealmark")],
            timeout_keep_alive=int(KEEP_ALIVE_S),
            timeout_graceful_shutdown=int(max(grace_s, 1)),
            limit_concurrency=None,  # _Protocol.connection_made answers 503 above MAX_CONNECTIONS
            backlog=BACKLOG,
        )
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._failed: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=face.name.replace("_", "-"), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start in 10 s")
            time.sleep(0.005)
        if not self._server.started:
            raise RuntimeError(f"{what} did not start") from self._failed

    def _run(self) -> None:
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by __init__, not lost
            self._failed = exc
            log.exception(f"{self._face.name}.failed")
        finally:
            loop.close()

    def stop(self, grace_s: float | None = None) -> bool:
        """Stop taking connections and close the socket; requests under way run to their end
        (for at most the grace period given to :func:`serve_http`, or ``grace_s``), idle
        keep-alive connections close. Returns True when every request finished in time."""
        if grace_s is not None:
            self._server.config.timeout_graceful_shutdown = int(max(grace_s, 1))
        timeout = self._server.config.timeout_graceful_shutdown or 1
        self._server.should_exit = True
        self._thread.join(timeout=timeout + 5)
        drained = not self._thread.is_alive() and self._face.cut_short == 0
        self._face.close(wait=drained)
        self._sock.close()
        return drained


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (0 = any free port); ``reuse_port`` lets
    other serving processes bind the same port. Serve it with :func:`serve_http`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # other serving processes share the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def shown_host(host: str, port: int) -> str:
    """``host:port`` as a browser would name it (``localhost`` for every interface)."""
    shown = "localhost" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
    return f"{shown}:{port}" if ":" not in shown else f"[{shown}]:{port}"


def serve_http(
    app: HttpApp,
    sock: socket.socket,
    host: str,
    *,
    name: str,
    what: str,
    workers: int = WORKERS,
    queue: int = QUEUE,
    grace_s: float = 10.0,
    tls: ssl.SSLContext | None = None,
) -> HttpServer:
    """Serve ``app`` on ``sock`` (from :func:`bind` on ``host``) in a thread of its own:
    ``workers`` threads call it, ``queue`` more requests may wait for them (503 beyond);
    :meth:`HttpServer.stop` drains for ``grace_s``. With ``tls``
    (:meth:`sealmark.server.tls.ServerCertificates.https_context`) it speaks HTTPS only.
    ``name`` prefixes its log events (``<name>.access`` …), ``what`` names it in errors.
    The socket is closed when the server does not start."""
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start/stop chatter
    face = _Face(app, workers, queue, name)
    try:
        running = HttpServer(sock, face, host, grace_s=grace_s, tls=tls, what=what)
    except BaseException:
        face.close(wait=False)
        sock.close()
        raise
    log.info(f"{name}.started", url=running.url)
    return running
