"""A throwaway PKI for the TLS benchmarks: a CA, a server certificate for 127.0.0.1 and a
client certificate, written to a directory. BENCHMARK ONLY: the keys are unencrypted and the
CA lives for a day."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from sealmark_app.pki import CLIENT_AUTH, SERVER_AUTH, PrivateCA, common_name, write_file


@dataclass(frozen=True)
class BenchPki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def write_bench_pki(directory: Path) -> BenchPki:
    """Make the CA and both certificates, write them under ``directory``."""
    ca = PrivateCA("Sealmark bench CA", valid=timedelta(days=1))
    server = ca.issue(
        common_name("bench server"),
        usages=[SERVER_AUTH],
        sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client = ca.issue(
        common_name("bench client"),
        usages=[CLIENT_AUTH],
        sans=[x509.DNSName("bench-client.invalid")],
    )
    return BenchPki(
        write_file(directory / "ca.pem", ca.pem, 0o644),
        *server.write(directory, "server"),
        *client.write(directory, "client"),
    )
