"""The dashboard on the shared server loop (:mod:`sealmark.server.http_server`: uvicorn and
httptools, its limits, the bounded thread pool, the drain and the access lines)."""

from __future__ import annotations

import ssl

from audit.http.app import DashboardApp
from sealmark.server.http_server import HttpServer, bind, serve_http

WORKERS = 8  # auditors, not phones: a few at a time
QUEUE = 64


def start_dashboard(
    app: DashboardApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    reuse_port: bool = False,
    grace_s: float = 10.0,
    tls: ssl.SSLContext | None = None,
) -> HttpServer:
    """Serve ``app`` on ``host:port`` (0 = any free port) in a thread of its own; with
    ``tls`` (:meth:`sealmark.server.tls.ServerCertificates.https_context`) HTTPS only.
    :meth:`HttpServer.stop` drains for ``grace_s``."""
    return serve_http(
        app,
        bind(host, port, reuse_port),
        host,
        name="dashboard_http",
        what="the dashboard",
        workers=WORKERS,
        queue=QUEUE,
        grace_s=grace_s,
        tls=tls,
    )
