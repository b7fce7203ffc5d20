"""Make the secrets deploy/compose/compose.yaml mounts: a private CA, a TLS certificate per
service (and for PostgreSQL, Redis and one CLI client), the PostgreSQL password, and
``sealmark.toml`` with the database URL, the PIN pepper and the key passphrase.

    .venv/bin/python deploy/compose/make_dev_secrets.py            # into deploy/compose/secrets/

FOR A TRIAL OR ONE TRUSTED HOST ONLY. The CA key stays on disk next to what it signed, and
the files are world-readable (mode 0644) inside a 0700 directory, because compose bind-mounts
file secrets with their host owner and mode, and the containers' users (sealmark 10001,
postgres and redis 999) must read them. Production: certificates from your own CA, secrets
from your secret store (see deploy/k8s/). Existing files are kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import ipaddress
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# compose service name -> the other DNS names its certificate carries: localhost, and the
# Service names of deploy/k8s (namespace sealmark), so the same files serve a trial cluster.
SERVERS: dict[str, tuple[str, ...]] = {
    **{
        name: ("localhost", f"sealmark-{name}", f"sealmark-{name}.sealmark.svc")
        for name in ("issuer", "aggregator", "verifier", "audit")
    },
    "postgres": (),
    "redis": (),
}
CLIENT = "sealmark-cli"  # a client certificate for the CLI or a line (mTLS)
VALID_DAYS = 365


def make(out: Path, *, force: bool = False, now: dt.datetime | None = None) -> list[str]:
    """Write every file that is missing (all of them with ``force``); return the names written."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    out.chmod(0o700)
    if force:
        for old in out.iterdir():
            if old.is_file():
                old.unlink()
    now = now or dt.datetime.now(dt.UTC)
    written: list[str] = []
    ca_key, ca_cert = _ca(out, now, written)
    for name, extra in SERVERS.items():
        if not (out / f"{name}.crt").exists():
            _leaf(out, name, (name, *extra), ca_key, ca_cert, now, server=True)
            written += [f"{name}.crt", f"{name}.key"]
    if not (out / f"{CLIENT}.crt").exists():
        _leaf(out, CLIENT, (), ca_key, ca_cert, now, server=False)
        written += [f"{CLIENT}.crt", f"{CLIENT}.key"]
    password_file = out / "postgres_password"
    if not password_file.exists():
        _write(password_file, secrets.token_urlsafe(24).encode())
        written.append(password_file.name)
    config = out / "sealmark.toml"
    if not config.exists():
        password = password_file.read_text().strip()
        _write(config, _config(password).encode())
        written.append(config.name)
    return written


def _config(password: str) -> str:
    pepper = base64.urlsafe_b64encode(os.urandom(32)).decode()
    passphrase = base64.urlsafe_b64encode(os.urandom(32)).decode()
    mac = base64.urlsafe_b64encode(os.urandom(32)).decode()
    dsn = (
        f"postgresql://sealmark:{password}@postgres:5432/sealmark"
        "?sslmode=verify-full&sslrootcert=/etc/sealmark/tls/ca.crt"
    )
    return (
        "# Made by deploy/compose/make_dev_secrets.py; mounted as SEALMARK_CONFIG.\n"
        f'database_url = "{dsn}"\n'
        f'secret_pepper = "{pepper}"\n'
        f'key_passphrase = "{passphrase}"\n'
        f'mac_secret = "{mac}"\n'
    )


def _ca(
    out: Path, now: dt.datetime, written: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_file, cert_file = out / "ca.key", out / "ca.crt"
    if key_file.exists() and cert_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SystemExit(f"{key_file}: want an EC private key")
        return key, x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sealmark dev CA")])
    cert = (
        _builder(name, name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write(key_file, _pem_key(key), mode=0o600)
    _write(cert_file, cert.public_bytes(serialization.Encoding.PEM))
    written += ["ca.key", "ca.crt"]
    return key, cert


def _leaf(
    out: Path,
    name: str,
    dns: Sequence[str],
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: dt.datetime,
    *,
    server: bool,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    # Servers also present their certificate as clients (Redis asks for one).
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = _builder(subject, ca_cert.subject, key.public_key(), now)
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(out / f"{name}.key", _pem_key(key))
    _write(out / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(mode)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="make the dev secrets of deploy/compose")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "secrets", help="folder"
    )
    parser.add_argument("--force", action="store_true", help="replace every existing file")
    args = parser.parse_args(argv)
    written = make(args.out, force=args.force)
    print(f"{args.out}: wrote {', '.join(written) if written else 'nothing (all present)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
