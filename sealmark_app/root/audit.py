"""How the Audit is built from the process container: PostgreSQL and Redis adapters, then the
use cases over them, then the gRPC binding."""

from __future__ import annotations

from audit import grpc_service
from audit.export import Exporter
from audit.postgres import PostgresAuditStorage
from audit.postgres_export import PostgresExportStorage
from audit.postgres_tlog import PostgresTlogStorage
from audit.redis_wake import RedisAlertWake
from audit.reports import Reporter
from audit.transparency import TransparencyLog
from audit.usecases import Auditor
from sealmark.server.app import ServiceBinding
from sealmark_app.root.container import Container

__all__ = [
    "build_auditor",
    "build_exporter",
    "build_reporter",
    "build_transparency_log",
    "service_binding",
]


def build_auditor(container: Container) -> Auditor:
    """Alerts, Trace and Recall over PostgreSQL, woken by the verifier's Redis stream."""
    return Auditor(
        PostgresAuditStorage(container.database), RedisAlertWake(container.redis), container.clock
    )


def build_reporter(container: Container, auditor: Auditor | None = None) -> Reporter:
    return Reporter(
        PostgresAuditStorage(container.database),
        container.clock,
        auditor or build_auditor(container),
    )


def build_exporter(container: Container) -> Exporter:
    return Exporter(PostgresExportStorage(container.database), container.clock.now)


def build_transparency_log(container: Container) -> TransparencyLog:
    """The log signs with a key sealed under the key passphrase (the pepper when none is set),
    read only when a key is first created or unsealed."""

    def passphrase() -> bytes:
        secrets = container.secrets
        return secrets.key_passphrase or secrets.pepper

    return TransparencyLog(
        PostgresTlogStorage(container.database),
        container.clock,
        passphrase,
        container.settings.tlog_origin,
    )


def service_binding(container: Container) -> ServiceBinding:
    auditor = build_auditor(container)
    return grpc_service.binding(
        auditor,
        build_transparency_log(container),
        build_reporter(container, auditor),
        build_exporter(container),
    )
