"""Make the secrets deploy/compose/compose.yaml mounts: a private CA, a TLS certificate per
service (and for PostgreSQL, Redis and one CLI client), the PostgreSQL password, and
``sealmark.toml`` with the database URL, the PIN pepper and the key passphrase.

    .venv/bin/python deploy/compose/make_dev_secrets.py            # into deploy/compose/secrets/

It runs in the project's virtual environment (``make venv``): the certificates come from the
application's private CA, ``sealmark_app.pki``.

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

from sealmark_app.pki import CLIENT_AUTH, SERVER_AUTH, PrivateCA, common_name, pem_key, write_file

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
    ca = _ca(out, now, written)
    for name, extra in SERVERS.items():
        if not (out / f"{name}.crt").exists():
            _leaf(out, name, (name, *extra), ca, server=True)
            written += [f"{name}.crt", f"{name}.key"]
    if not (out / f"{CLIENT}.crt").exists():
        _leaf(out, CLIENT, (), ca, server=False)
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


def _ca(out: Path, now: dt.datetime, written: list[str]) -> PrivateCA:
    key_file, cert_file = out / "ca.key", out / "ca.crt"
    valid = dt.timedelta(days=VALID_DAYS)
    if key_file.exists() and cert_file.exists():
        try:
            return PrivateCA.load(
                key_file.read_bytes(), cert_file.read_bytes(), valid=valid, now=now
            )
        except ValueError as exc:
            raise SystemExit(f"{key_file}: {exc}") from None
    ca = PrivateCA("Sealmark dev CA", valid=valid, now=now)
    _write(key_file, pem_key(ca.key), mode=0o600)
    _write(cert_file, ca.pem)
    written += ["ca.key", "ca.crt"]
    return ca


def _leaf(out: Path, name: str, dns: Sequence[str], ca: PrivateCA, *, server: bool) -> None:
    # Servers also present their certificate as clients (Redis asks for one).
    usages = [SERVER_AUTH, CLIENT_AUTH] if server else [CLIENT_AUTH]
    sans: list[x509.GeneralName] = []
    if server:
        sans = [x509.DNSName(d) for d in dns]
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    issued = ca.issue(common_name(name), usages=usages, sans=sans)
    _write(out / f"{name}.key", issued.key_pem)
    _write(out / f"{name}.crt", issued.cert_pem)


def _write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    write_file(path, data, mode)


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
