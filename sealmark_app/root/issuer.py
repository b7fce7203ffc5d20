"""How the Issuer is built from the process container: its PostgreSQL storage, the key vault,
the minting workers and the MAC scheme, then the use cases and the gRPC binding."""

from __future__ import annotations

from issuer import grpc_service
from issuer.lines import LineReports
from issuer.links import ProductLinks
from issuer.media import ProductMediaRegistry
from issuer.minting import MintWorkers
from issuer.postgres import PostgresIssuerStorage
from issuer.postgres_media import PostgresProductMedia
from issuer.usecases import Issuer
from sealmark.crypto.keys import KeyVault
from sealmark.crypto.mac import MacScheme
from sealmark.crypto.pins import PinScheme
from sealmark.server.app import ServiceBinding
from sealmark.settings import Settings
from sealmark_app.root.container import Container

__all__ = [
    "build_issuer",
    "build_line_reports",
    "build_media_registry",
    "build_product_links",
    "service_binding",
]


def build_issuer(container: Container) -> Issuer:
    """Raises InvalidArgument naming the missing secret when none is configured."""
    return Issuer(
        PostgresIssuerStorage(container.database),
        container.uow,
        container.clock,
        container.random_bytes,
        PinScheme(container.secrets.pepper),
        key_vault(container.settings, container.secrets.key_passphrase),
        container.settings.guess_bound,
        workers=mint_workers(container),
        macs=mac_scheme(container.secrets.mac_secret),
    )


def build_line_reports(container: Container) -> LineReports:
    return LineReports(PostgresIssuerStorage(container.database), container.clock)


def build_product_links(container: Container) -> ProductLinks:
    return ProductLinks(PostgresIssuerStorage(container.database), container.clock)


def service_binding(container: Container) -> ServiceBinding:
    return grpc_service.binding(
        build_issuer(container),
        build_line_reports(container),
        container.uow,
        container.settings.guess_bound,
        build_media_registry(container),
        build_product_links(container),
    )


def build_media_registry(container: Container) -> ProductMediaRegistry:
    """The consumer page's pictures (logo, product image), on PostgreSQL."""
    return ProductMediaRegistry(
        PostgresProductMedia(container.database), container.uow, container.clock
    )


def mac_scheme(secret: bytes | None) -> MacScheme | None:
    """The MACs of compact-profile codes (None without SEALMARK_MAC_SECRET)."""
    return MacScheme(secret) if secret is not None else None


def mint_workers(container: Container) -> MintWorkers | None:
    """Worker processes for minting with software keys (SEALMARK_MINT_PROCESSES; 0 = none)."""
    processes = container.settings.mint_processes
    passphrase = container.secrets.key_passphrase
    if processes == 0 or passphrase is None:
        return None
    workers = MintWorkers(processes, container.secrets.pepper, passphrase)
    container.closers.append(workers.close)
    return workers


def key_vault(settings: Settings, passphrase: bytes | None) -> KeyVault:
    """The key vault the settings describe (SEALMARK_KEY_BACKEND, SEALMARK_PKCS11_*)."""
    if settings.pkcs11_module is None or settings.pkcs11_token is None:
        return KeyVault(settings.key_backend, passphrase)
    from sealmark.crypto.pkcs11 import Pkcs11Config

    pin = settings.pkcs11_pin.get_secret_value() if settings.pkcs11_pin else ""
    config = Pkcs11Config(settings.pkcs11_module, settings.pkcs11_token, pin)
    return KeyVault(settings.key_backend, passphrase, config)
