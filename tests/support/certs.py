"""Real X.509 certificates for the TLS tests, made when a test asks: a CA, server certificates
for 127.0.0.1 / localhost, client certificates with a subject and SANs, expired ones. Built on
the application's private CA (``sealmark_app.pki``), as the bench and the compose trial are."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from sealmark_app.pki import CLIENT_AUTH, SERVER_AUTH, Issued, PrivateCA, common_name

__all__ = ["Issued", "TestCA"]


class TestCA(PrivateCA):
    """A CA that signs server and client certificates valid for a week (or expired)."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "Sealmark Test CA") -> None:
        super().__init__(name, valid=timedelta(days=30))

    def write(self, directory: Path, stem: str = "ca") -> Path:
        path = directory / f"{stem}.pem"
        path.write_bytes(self.pem)
        return path

    def server(self, *, expired: bool = False, cn: str = "localhost") -> Issued:
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        return self._leaf(common_name(cn), sans, SERVER_AUTH, expired)

    def client(
        self,
        cn: str,
        *,
        org: str = "Acme",
        sans: list[x509.GeneralName] | None = None,
        expired: bool = False,
    ) -> Issued:
        return self._leaf(common_name(cn, org), sans or [], CLIENT_AUTH, expired)

    def _leaf(
        self,
        subject: x509.Name,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        expired: bool,
    ) -> Issued:
        start, end = (
            (self.now - timedelta(days=10), self.now - timedelta(days=1))
            if expired
            else (self.now - timedelta(hours=1), self.now + timedelta(days=7))
        )
        return self.issue(subject, usages=[usage], sans=sans, not_before=start, not_after=end)
