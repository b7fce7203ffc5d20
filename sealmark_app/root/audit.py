"""How the Audit is built from the process container: PostgreSQL and Redis adapters, then the
use cases over them, then the gRPC binding."""

from __future__ import annotations

import hashlib
import hmac

import structlog

from audit import grpc_service
from audit.dashboard import Dashboard
from audit.dispatch import Dispatcher, DispatchLoop, DispatchPolicy
from audit.export import Exporter
from audit.http import DashboardApp, SessionSeal, start_dashboard
from audit.http_webhooks import HttpSender
from audit.postgres import PostgresAuditStorage
from audit.postgres_export import PostgresExportStorage
from audit.postgres_tlog import PostgresTlogStorage
from audit.postgres_webhooks import PostgresWebhookStorage
from audit.redis_wake import RedisAlertWake
from audit.reports import Reporter
from audit.transparency import TransparencyLog
from audit.usecases import Auditor
from audit.webhooks import Webhooks
from sealmark.crypto.sealing import SecretBox
from sealmark.server.app import ServiceBinding
from sealmark.server.http_server import HttpServer
from sealmark.server.tls import ServerCertificates
from sealmark.tenancy.usecases import principal_of_token
from sealmark_app.root.container import Container

log = structlog.get_logger("sealmark_app.root.audit")

__all__ = [
    "build_auditor",
    "build_dashboard_app",
    "build_dispatcher",
    "build_exporter",
    "build_reporter",
    "build_transparency_log",
    "build_webhooks",
    "service_binding",
    "start_dashboard_page",
    "start_dispatch",
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


def webhook_secrets(container: Container) -> SecretBox:
    """Endpoint secrets are sealed at rest under the key passphrase (the pepper when none is
    set, as for the transparency log's key); one box per process."""
    box = container.shared.get("webhook_secrets")
    if box is None:
        secrets = container.secrets
        box = container.shared["webhook_secrets"] = SecretBox(
            secrets.key_passphrase or secrets.pepper, "webhook endpoint secret"
        )
    assert isinstance(box, SecretBox)
    return box


def build_webhooks(container: Container) -> Webhooks:
    return Webhooks(
        PostgresWebhookStorage(container.database),
        container.clock,
        container.random_bytes,
        webhook_secrets(container).seal,
        allow_private=container.settings.webhook_allow_private,
    )


def build_dispatcher(container: Container) -> Dispatcher:
    settings = container.settings
    return Dispatcher(
        PostgresWebhookStorage(container.database),
        HttpSender(allow_private=settings.webhook_allow_private),
        container.clock,
        DispatchPolicy(
            max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_s,
            backoff_cap_s=settings.webhook_backoff_max_s,
            timeout_s=settings.webhook_timeout_s,
        ),
        webhook_secrets(container).open,
    )


def start_dispatch(container: Container) -> DispatchLoop | None:
    """The webhook dispatcher's thread, stopped with the container; None when
    SEALMARK_WEBHOOK_DISPATCH is off. Every serving process may run one: claims are leased."""
    settings = container.settings
    if not settings.webhook_dispatch:
        return None
    if settings.webhook_allow_private:
        log.warning("webhooks.private_targets_allowed", note="dev/test only")
    loop = DispatchLoop(build_dispatcher(container), settings.webhook_poll_s).start()
    container.closers.append(loop.stop)
    return loop


def service_binding(container: Container) -> ServiceBinding:
    auditor = build_auditor(container)
    return grpc_service.binding(
        auditor,
        build_transparency_log(container),
        build_reporter(container, auditor),
        build_exporter(container),
        build_webhooks(container),
    )


def session_key(pepper: bytes) -> bytes:
    """The dashboard's session-signing key: derived from the pepper (a domain-separated
    HMAC), so every serving process of one deployment opens the others' sessions, and a
    deployment's sessions mean nothing to another."""
    return hmac.new(pepper, b"sealmark/dashboard-session-key/v1", hashlib.sha256).digest()


def build_dashboard_app(container: Container) -> DashboardApp:
    """The dashboard's pages over the Audit's PostgreSQL adapter, signing in with the
    process's token checks."""
    dashboard = Dashboard(PostgresAuditStorage(container.database), container.clock)
    return DashboardApp(
        dashboard,
        authenticate=container.authenticator,
        token_principal=lambda token_id: principal_of_token(container.uow, token_id),
        seal=SessionSeal(session_key(container.secrets.pepper), container.clock.now),
        now=container.clock.now,
    )


def start_dashboard_page(
    container: Container,
    *,
    reuse_port: bool = False,
    certs: ServerCertificates | None = None,
) -> HttpServer:
    """The brand dashboard on ``dashboard_http_host:dashboard_http_port``; with ``certs`` (the
    process's server certificate) HTTPS only (``sealmark serve`` refuses plaintext off
    loopback before anything starts, unless explicitly allowed). On stop it drains for at most
    half the shutdown grace period."""
    settings = container.settings
    return start_dashboard(
        build_dashboard_app(container),
        settings.dashboard_http_host,
        settings.dashboard_http_port,
        reuse_port=reuse_port,
        grace_s=settings.shutdown_grace_s / 2,
        tls=certs.https_context() if certs is not None else None,
    )
