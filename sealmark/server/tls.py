"""TLS for the gRPC port: the server's certificate files, checked at start-up and re-read
without a restart, and the rule that plaintext stays on loopback.

gRPC's own TLS (BoringSSL inside grpcio) does the handshake; it speaks TLS 1.2 and 1.3 only
(its floor, which the Python API does not let anyone lower). With a client CA, every client
must present a certificate that chains to it (gRPC Python can require client certificates or
not ask for them, nothing in between); what a certificate stands for is decided per call by
the interceptor (:mod:`sealmark.tenancy.certs`).

Reload: gRPC asks :meth:`ServerCertificates.fetch` before every new handshake. It compares the
files' stat stamps with the ones last loaded and re-reads them when they changed (a Kubernetes
secret update, certbot, a hand copy), or when SIGHUP asked for it. A new set that does not
load (a half-written file, a key that does not match) is logged and ignored: the server keeps
the set it has. Open connections, and the streams on them, keep the certificate they began
with; only new connections see the new one.

Errors never carry key material: a file is named by its setting and path only.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import ssl
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
import structlog
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from sealmark.errors import InvalidArgument
from sealmark.settings import Settings
from sealmark.tenancy.certs import CertIdentity

log = structlog.get_logger("sealmark.tls")

CERT_SETTING = "SEALMARK_TLS_CERT_FILE"
KEY_SETTING = "SEALMARK_TLS_KEY_FILE"
CLIENT_CA_SETTING = "SEALMARK_TLS_CLIENT_CA_FILE"


@dataclass(frozen=True)
class TlsFiles:
    """Where the server's PEM files are. ``client_ca`` set = clients must present a
    certificate chaining to it (mutual TLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def server_certificates(settings: Settings) -> ServerCertificates | None:
    """The certificates the settings name, loaded and checked; None for plaintext.

    Raises InvalidArgument naming the setting and the path of a file that does not load."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return ServerCertificates(
        TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    )


@dataclass(frozen=True, repr=False)
class PemSet:
    """The loaded, checked contents of :class:`TlsFiles`. ``repr`` shows no key."""

    cert_chain: bytes
    key: bytes
    client_ca: bytes | None
    not_after: datetime
    subject: str

    def __repr__(self) -> str:
        return f"PemSet(subject={self.subject!r}, not_after={self.not_after.isoformat()})"

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.key, self.cert_chain)], root_certificates=self.client_ca
        )


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(setting, f"cannot read {path}: {exc.strerror or exc}") from None


def _certificates(setting: str, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise InvalidArgument(setting, f"{path} holds no PEM certificate")
    return certs


def load_pem_set(files: TlsFiles) -> PemSet:
    """Read and check the files: the certificate chain parses, the key parses (unencrypted
    PEM), the key belongs to the chain's first certificate, the client CA parses.

    Raises InvalidArgument naming the setting and the path, never the contents."""
    chain_pem = _read(CERT_SETTING, files.cert)
    chain = _certificates(CERT_SETTING, files.cert, chain_pem)
    key_pem = _read(KEY_SETTING, files.key)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The library's message may quote what it found; ours names only the file.
        raise InvalidArgument(
            KEY_SETTING, f"{files.key} holds no unencrypted PEM private key"
        ) from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        raise InvalidArgument(
            KEY_SETTING, f"the key in {files.key} does not match the certificate in {files.cert}"
        )
    ca_pem = None
    if files.client_ca is not None:
        ca_pem = _read(CLIENT_CA_SETTING, files.client_ca)
        _certificates(CLIENT_CA_SETTING, files.client_ca, ca_pem)
    return PemSet(
        chain_pem, key_pem, ca_pem, chain[0].not_valid_after_utc, chain[0].subject.rfc4514_string()
    )


def _stamp(files: TlsFiles) -> tuple[tuple[int, int, int, int] | None, ...]:
    """What tells a changed file: inode, device, size, modification time (stat follows
    symlinks, so a Kubernetes secret's atomic symlink swap shows)."""
    stamps: list[tuple[int, int, int, int] | None] = []
    for path in (files.cert, files.key, files.client_ca):
        if path is None:
            stamps.append(None)
            continue
        try:
            st = os.stat(path)
        except OSError:
            stamps.append(None)
            continue
        stamps.append((st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns))
    return tuple(stamps)


class ServerCertificates:
    """The server's certificate set, re-read when its files change or on :meth:`reload`.
    Thread-safe: gRPC calls :meth:`fetch` from its own threads."""

    def __init__(self, files: TlsFiles, *, now: datetime | None = None) -> None:
        """Load the files once. Raises InvalidArgument (see :func:`load_pem_set`)."""
        self.files = files
        self._lock = threading.Lock()
        self._loaded_stamp = _stamp(files)
        self._current = load_pem_set(files)
        self._pending: PemSet | None = None
        self._https: list[ssl.SSLContext] = []
        self.reloads = 0
        _warn_if_expiring(self._current, now or datetime.now(UTC))

    @property
    def mutual(self) -> bool:
        return self.files.client_ca is not None

    @property
    def current(self) -> PemSet:
        with self._lock:
            return self._pending or self._current

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``add_secure_port`` that consult :meth:`fetch` on every handshake."""
        return grpc.dynamic_ssl_server_credentials(
            self._current.configuration(),
            self.fetch,
            require_client_authentication=self.mutual,
        )

    def https_context(self) -> ssl.SSLContext:
        """A TLS 1.2+ server context for the HTTP face with the current certificate. It asks
        for no client certificate (the consumer page is public: phones have none) and takes
        every later reload (SIGHUP, or a change gRPC's handshakes noticed)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with self._lock:
            _load_chain(context, self._pending or self._current)
            self._https.append(context)
        return context

    def reload(self) -> bool:
        """Re-read the files now (SIGHUP); the next handshake uses them. Returns False, and
        keeps the current set, when they do not load."""
        with self._lock:
            return self._load_locked(forced=True)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate-configuration fetcher: a new configuration, or None to keep the
        current one. Never raises (gRPC would only log it)."""
        try:
            with self._lock:
                if self._pending is None and _stamp(self.files) != self._loaded_stamp:
                    self._load_locked(forced=False)
                pending, self._pending = self._pending, None
                if pending is None:
                    return None
                self._current = pending
                return pending.configuration()
        except Exception:  # a fetcher that raises would leave gRPC's handshake in limbo
            log.exception("tls.fetch_failed")
            return None

    def _load_locked(self, *, forced: bool) -> bool:
        stamp = _stamp(self.files)
        # Remembered even when loading fails: a half-written set is retried once it changes
        # again, not on every handshake in between.
        self._loaded_stamp = stamp
        try:
            loaded = load_pem_set(self.files)
        except InvalidArgument as exc:
            log.warning("tls.reload_refused", error=str(exc), keeping=repr(self._current))
            return False
        self._pending = loaded
        for context in self._https:
            _load_chain(context, loaded)
        self.reloads += 1
        log.info(
            "tls.reloaded",
            trigger="signal" if forced else "file change",
            subject=loaded.subject,
            not_after=loaded.not_after.isoformat(),
        )
        return True


def _load_chain(context: ssl.SSLContext, pems: PemSet) -> None:
    """Put the checked PEM set into ``context``. The ssl module reads only files: the set goes
    through a private temporary directory that is removed at once."""
    with tempfile.TemporaryDirectory(prefix="sealmark-tls-") as directory:
        chain, key = Path(directory) / "chain.pem", Path(directory) / "key.pem"
        chain.write_bytes(pems.cert_chain)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pems.key)
        context.load_cert_chain(chain, key)


def _warn_if_expiring(pems: PemSet, now: datetime) -> None:
    left = pems.not_after - now
    if left.total_seconds() <= 0:
        log.warning("tls.cert_expired", subject=pems.subject, not_after=pems.not_after.isoformat())
    elif left.days < 14:
        log.warning("tls.cert_expiring", subject=pems.subject, days_left=left.days)


def reload_on_sighup(certs: ServerCertificates) -> None:
    """SIGHUP re-reads the certificate files (main thread only)."""

    def handle(_signum: int, _frame: FrameType | None) -> None:
        certs.reload()

    signal.signal(signal.SIGHUP, handle)


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``; any other name counts as not loopback
    (it could resolve anywhere)."""
    bare = host.strip("[]")
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def check_plaintext_binding(
    host: str,
    *,
    allow_insecure: bool,
    setting: str = "SEALMARK_GRPC_HOST",
    what: str = "gRPC",
    event: str = "grpc.insecure",
) -> None:
    """Refuse plaintext ``what`` off loopback unless ``allow_insecure`` says so (then warn).

    Raises InvalidArgument naming ``setting``."""
    if is_loopback(host):
        return
    if not allow_insecure:
        raise InvalidArgument(
            setting,
            f"{host or '(all interfaces)'} is not a loopback address, and plaintext {what} there"
            " is open to the network: set SEALMARK_TLS_CERT_FILE and SEALMARK_TLS_KEY_FILE, or"
            " SEALMARK_ALLOW_INSECURE=true to serve plaintext anyway (unsafe)",
        )
    log.warning(event, host=host, note=f"plaintext {what} off loopback (allow_insecure)")


_SAN_PROPERTIES = (
    ("peer_dns", "DNS"),
    ("peer_uri", "URI"),
    ("peer_email", "email"),
    ("peer_ip", "IP"),
)


def peer_identity(auth_context: Any) -> CertIdentity | None:
    """The verified client certificate of a call, from ``ServicerContext.auth_context()``:
    its subject (RFC 4514, as OpenSSL prints it) and typed SANs. None without one."""
    subjects = auth_context.get("x509_subject") if auth_context else None
    if not subjects:
        return None
    sans = tuple(
        f"{prefix}:{value.decode('utf-8', 'replace')}"
        for prop, prefix in _SAN_PROPERTIES
        for value in auth_context.get(prop, ())
    )
    return CertIdentity(subjects[0].decode("utf-8", "replace"), sans)
