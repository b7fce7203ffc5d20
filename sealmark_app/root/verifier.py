"""How the Verifier is built from the process container: its PostgreSQL and Redis adapters,
the scan log, the use cases, and its two faces (gRPC, and the HTTP consumer page) sharing one
Verifier, so they share the scan log, the caches and the rate counters."""

from __future__ import annotations

import threading

from sealmark.crypto.covert import CovertKeys
from sealmark.crypto.mac import MacScheme
from sealmark.crypto.pins import PinScheme
from sealmark.server.app import ServiceBinding
from sealmark.server.tls import ServerCertificates
from sealmark_app.root.container import Container
from verifier import grpc_service
from verifier.http import VerifyHttp, start_http
from verifier.images import ImageVerifier
from verifier.media import PageMedia
from verifier.postgres import PostgresVerifierStorage
from verifier.postgres_catalog import PostgresProductCatalog
from verifier.postgres_media import PostgresMediaReader
from verifier.redis_state import RedisGate, ScanState
from verifier.resolver import Resolver
from verifier.scanlog import ScanLog
from verifier.usecases import Verifier

__all__ = [
    "build_image_verifier",
    "build_page_media",
    "build_resolver",
    "build_verifier",
    "service_binding",
    "start_consumer_page",
]

_SHARED_LOCK = threading.Lock()


def build_verifier(container: Container) -> Verifier:
    """The process's one Verifier (built on first call, kept in ``container.shared``; its
    gRPC and HTTP faces share it), closed with the container."""
    with _SHARED_LOCK:
        verifier = container.shared.get("verifier")
        if verifier is None:
            storage = PostgresVerifierStorage(container.database)
            mac_secret = container.secrets.mac_secret
            verifier = container.shared["verifier"] = Verifier(
                storage,
                ScanState(RedisGate(container.redis)),
                ScanLog(storage),
                clock=container.clock,
                pins=PinScheme(container.secrets.pepper),
                macs=MacScheme(mac_secret) if mac_secret is not None else None,
            )
            container.closers.append(verifier.close)
    assert isinstance(verifier, Verifier)
    return verifier


def build_image_verifier(container: Container) -> ImageVerifier:
    """Verification from a photo of a label, on the process's one Verifier."""
    return ImageVerifier(build_verifier(container), CovertKeys(container.secrets.pepper))


def build_page_media(container: Container) -> PageMedia:
    """The brands' pictures for the consumer page, read from PostgreSQL."""
    return PageMedia(PostgresMediaReader(container.database))
def build_resolver(container: Container) -> Resolver:
    """The GS1 resolver's catalog reads (products, registered links, lot status)."""
    return Resolver(PostgresProductCatalog(container.database))


def service_binding(container: Container) -> ServiceBinding:
    return grpc_service.binding(build_verifier(container), build_image_verifier(container))


def start_consumer_page(
    container: Container,
    *,
    reuse_port: bool = False,
    certs: ServerCertificates | None = None,
) -> VerifyHttp:
    """The Verifier's HTTP face (consumer page, key set, resolver description, /scan) on
    ``verify_http_host:verify_http_port``, sharing the process's one Verifier with gRPC. On
    stop it drains for at most half the shutdown grace period: the gRPC streams, stopped
    after it, keep the rest. With ``certs`` (the process's server certificate) it speaks
    HTTPS only (``sealmark serve`` refuses plaintext off loopback before anything starts,
    unless behind a proxy or explicitly allowed)."""
    settings = container.settings
    page, _ = start_http(
        build_verifier(container),
        settings.verify_http_host,
        settings.verify_http_port,
        clock=container.clock,
        trust_proxy=settings.verify_http_trust_proxy,
        reuse_port=reuse_port,
        images=build_image_verifier(container),
        media=build_page_media(container),
        resolver=build_resolver(container),
        grace_s=settings.shutdown_grace_s / 2,
        tls=certs.https_context() if certs is not None else None,
    )
    return page
