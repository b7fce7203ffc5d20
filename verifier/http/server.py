"""The consumer page on the shared server loop (:mod:`sealmark.server.http_server`: uvicorn
and httptools, the limits, the bounded thread pool, the drain and the access lines), answering
through a :class:`VerifyApp`."""

from __future__ import annotations

import ssl

from sealmark.clock import Clock
from sealmark.server.http_server import QUEUE, WORKERS, HttpServer, bind, serve_http, shown_host
from verifier.http.app import ImagePort, VerifierPort, VerifyApp
from verifier.http.media import MediaPort
from verifier.http.requests import HOST
from verifier.http.resolver import ResolverPort

VerifyHttp = HttpServer  # a running consumer page: ``port``, ``url`` and ``stop``


def start_http(
    verifier: VerifierPort,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
    trust_proxy: bool = False,
    reuse_port: bool = False,
    images: ImagePort | None = None,
    media: MediaPort | None = None,
    resolver: ResolverPort | None = None,
    workers: int = WORKERS,
    queue: int = QUEUE,
    grace_s: float = 10.0,
    tls: ssl.SSLContext | None = None,
) -> tuple[HttpServer, int]:
    """Start the HTTP face on ``host:port`` (0 = any free port) in a thread of its own;
    ``reuse_port`` lets other serving processes bind the same port; with ``images`` it also
    serves the /scan upload page, with ``media`` the brands' pictures (/media/…), with
    ``resolver`` the GS1 resolver's answers (linkset, link types, product and lot pages:
    verifier.http.resolver). ``workers`` threads call the use case, ``queue`` more requests
    may wait for them (503 beyond); :meth:`HttpServer.stop` drains for ``grace_s``.
    With ``tls`` (:meth:`sealmark.server.tls.ServerCertificates.https_context`) it speaks
    HTTPS only. Returns the running face and the port it bound."""
    sock = bind(host, port, reuse_port)
    bound = sock.getsockname()[1]
    shown = shown_host(host, bound)
    fallback = shown if HOST.fullmatch(shown) else f"localhost:{bound}"
    app = VerifyApp(
        verifier,
        fallback_host=fallback,
        clock=clock,
        trust_proxy=trust_proxy,
        images=images,
        media=media,
        resolver=resolver,
    )
    running = serve_http(
        app,
        sock,
        host,
        name="verify_http",
        what="the consumer page",
        workers=workers,
        queue=queue,
        grace_s=grace_s,
        tls=tls,
    )
    return running, running.port
