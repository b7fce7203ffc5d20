"""A webhook receiver on a real local port, as a brand runs one: it checks the signature of
each delivery, keeps what it got, and can be down (not listening), failing (503) or slow."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sealmark.webhooks import signing


@dataclass(frozen=True)
class Received:
    event_id: str
    event_type: str
    attempt: int
    body: dict[str, Any]
    signature_ok: bool


class Receiver:
    """``start()`` listens on ``port`` (a free one the first time); ``stop()`` closes the
    socket, so senders get connection refused until ``start()`` listens on it again."""

    def __init__(self, secret: str = "") -> None:
        self.secret = secret
        self.status = 200
        self.delay_s = 0.0
        self.answer = b"ok"
        self.received: list[Received] = []
        self.hits = 0  # requests, answered or not
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.hits += 1
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                if receiver.status < 300:
                    try:
                        signing.verify(
                            self.headers.get(signing.HEADER, ""),
                            body,
                            receiver.secret,
                            int(time.time()),
                        )
                        ok = True
                    except signing.SignatureError:
                        ok = False
                    with receiver._lock:
                        receiver.received.append(
                            Received(
                                self.headers.get(signing.EVENT_ID_HEADER, ""),
                                self.headers.get(signing.EVENT_TYPE_HEADER, ""),
                                int(self.headers.get(signing.ATTEMPT_HEADER, "0")),
                                json.loads(body),
                                ok,
                            )
                        )
                self.send_response(receiver.status)
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the sender stopped reading
                    self.wfile.write(receiver.answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        with self._lock:
            return list(self.received)


def closed_port() -> int:
    """A local port nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
