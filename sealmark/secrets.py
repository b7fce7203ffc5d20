"""The secrets Sealmark needs: the PIN pepper, the signing-key passphrase and, for products
of the compact code profile, the MAC secret.

With external servers the first two must be configured (SEALMARK_SECRET_PEPPER,
SEALMARK_KEY_PASSPHRASE); SEALMARK_MAC_SECRET is needed only to issue or verify compact codes.
On the embedded default, when they are not set, DEV SECRETS are generated once into
``<data_dir>/dev-secrets.json`` (mode 0600) and a warning is logged: a convenience for
`make run`, never for production.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from dataclasses import dataclass

import structlog

from sealmark.errors import InvalidArgument
from sealmark.settings import Settings

log = structlog.get_logger("sealmark.secrets")


@dataclass(frozen=True)
class Secrets:
    pepper: bytes
    key_passphrase: bytes | None  # None: keys live in a PKCS#11 token (SEALMARK_KEY_BACKEND)
    mac_secret: bytes | None = None  # None: compact-profile codes cannot be issued or verified

    def __repr__(self) -> str:
        return "Secrets(<redacted>)"


def resolve_secrets(settings: Settings) -> Secrets:
    pepper = settings.secret_pepper.get_secret_value() if settings.secret_pepper else None
    passphrase = settings.key_passphrase.get_secret_value() if settings.key_passphrase else None
    mac = settings.mac_secret.get_secret_value() if settings.mac_secret else None
    hsm = settings.key_backend == "pkcs11"
    if pepper and (passphrase or hsm) and (mac or not settings.embedded):
        return Secrets(pepper.encode(), passphrase.encode() if passphrase else None, _encode(mac))
    if not settings.embedded:
        missing = "SEALMARK_SECRET_PEPPER" if not pepper else "SEALMARK_KEY_PASSPHRASE"
        raise InvalidArgument(missing, "required when SEALMARK_DATABASE_URL is set")
    dev = _dev_secrets(settings)
    log.warning(
        "secrets.dev",
        note="DEV SECRETS from the data dir; set SEALMARK_SECRET_PEPPER,"
        " SEALMARK_KEY_PASSPHRASE and SEALMARK_MAC_SECRET in production",
    )
    return Secrets(
        (pepper or dev["pepper"]).encode(),
        (passphrase or dev["passphrase"]).encode(),
        (mac or dev["mac"]).encode(),
    )


def _encode(value: str | None) -> bytes | None:
    return value.encode() if value else None


def _dev_secrets(settings: Settings) -> dict[str, str]:
    """The data dir's dev secrets, made on first use. Under an exclusive lock on the file, so
    that serving processes starting together agree on them; a data dir from before the MAC
    secret gets one added, and the secrets it had are kept as they were."""
    path = settings.data_dir / "dev-secrets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = handle.read()
        data: dict[str, str] = json.loads(text) if text.strip() else {}
        missing = [k for k in ("pepper", "passphrase", "mac") if k not in data]
        if missing:
            data.update({k: base64.urlsafe_b64encode(os.urandom(32)).decode() for k in missing})
            handle.seek(0)
            handle.truncate()
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
    return data
