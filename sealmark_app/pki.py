"""A small private CA for trials, benchmarks and tests: a self-signed CA and the server and
client certificates it signs, ECDSA P-256 (quick to make, what a modern deployment uses).

Used by the TLS benchmarks (``sealmark_app.bench.certs``), the compose trial's
``deploy/compose/make_dev_secrets.py`` and the tests' PKI (``tests/support/certs.py``), so the
three agree on what a certificate of ours carries. NOT for production: keys are written
unencrypted; a deployment brings certificates from its own CA (docs/tls.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def common_name(cn: str, org: str | None = None) -> x509.Name:
    """``O=org, CN=cn`` (or only the CN)."""
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*parts, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_file(path: Path, data: bytes, mode: int) -> Path:
    """Write ``data`` to ``path`` created with ``mode`` (never wider, even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(mode)
    return path


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return pem_key(self.key)

    def write(
        self, directory: Path, stem: str, *, cert_suffix: str = ".pem", key_mode: int = 0o600
    ) -> tuple[Path, Path]:
        """Write ``stem<cert_suffix>`` (0644) and ``stem.key`` (``key_mode``); their paths."""
        return (
            write_file(directory / f"{stem}{cert_suffix}", self.cert_pem, 0o644),
            write_file(directory / f"{stem}.key", self.key_pem, key_mode),
        )


class PrivateCA:
    """A self-signed CA valid from five minutes before ``now`` for ``valid``; what it signs is
    valid as long unless told otherwise."""

    def __init__(
        self,
        name: str = "Sealmark private CA",
        *,
        valid: timedelta = timedelta(days=30),
        now: datetime | None = None,
        issued: Issued | None = None,
    ) -> None:
        self.now = now or datetime.now(UTC)
        self.valid = valid
        if issued is None:
            key = ec.generate_private_key(ec.SECP256R1())
            subject = common_name(name)
            cert = (
                self._builder(subject, subject, key.public_key(), None, None)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(_CA_USAGE, critical=True)
                .sign(key, hashes.SHA256())
            )
            issued = Issued(cert, key)
        self.issued = issued

    @classmethod
    def load(
        cls, key_pem: bytes, cert_pem: bytes, *, valid: timedelta, now: datetime | None = None
    ) -> PrivateCA:
        """A CA from its saved key and certificate. Raises ValueError for a non-EC key."""
        key = serialization.load_pem_private_key(key_pem, None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("want an EC private key")
        cert = x509.load_pem_x509_certificate(cert_pem)
        return cls(valid=valid, now=now, issued=Issued(cert, key))

    @property
    def cert(self) -> x509.Certificate:
        return self.issued.cert

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        return self.issued.key

    @property
    def name(self) -> x509.Name:
        return self.cert.subject

    @property
    def pem(self) -> bytes:
        return self.issued.cert_pem

    def issue(
        self,
        subject: x509.Name,
        *,
        usages: Sequence[x509.ObjectIdentifier],
        sans: Sequence[x509.GeneralName] = (),
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Issued:
        """A leaf certificate for ``subject`` with these extended key usages and SANs."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(
            subject, self.name, key.public_key(), not_before, not_after
        ).add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)

    def _builder(
        self,
        subject: x509.Name,
        issuer: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        not_before: datetime | None,
        not_after: datetime | None,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or self.now - timedelta(minutes=5))
            .not_valid_after(not_after or self.now + self.valid)
        )
