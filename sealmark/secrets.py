"""The two secrets Sealmark needs: the PIN pepper and the signing-key passphrase.

With external servers both must be configured (SEALMARK_SECRET_PEPPER,
SEALMARK_KEY_PASSPHRASE). On the embedded default, when they are not set, DEV SECRETS are
generated once into ``<data_dir>/dev-secrets.json`` (mode 0600) and a warning is logged: a
convenience for `make run`, never for production.
"""

from __future__ import annotations

import base64
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

    def __repr__(self) -> str:
        return "Secrets(<redacted>)"


def resolve_secrets(settings: Settings) -> Secrets:
    pepper = settings.secret_pepper.get_secret_value() if settings.secret_pepper else None
    passphrase = settings.key_passphrase.get_secret_value() if settings.key_passphrase else None
    hsm = settings.key_backend == "pkcs11"
    if pepper and (passphrase or hsm):
        return Secrets(pepper.encode(), passphrase.encode() if passphrase else None)
    if not settings.embedded:
        missing = "SEALMARK_SECRET_PEPPER" if not pepper else "SEALMARK_KEY_PASSPHRASE"
        raise InvalidArgument(missing, "required when SEALMARK_DATABASE_URL is set")
    dev = _dev_secrets(settings)
    log.warning(
        "secrets.dev",
        note="DEV SECRETS from the data dir; set SEALMARK_SECRET_PEPPER"
        " and SEALMARK_KEY_PASSPHRASE in production",
    )
    return Secrets((pepper or dev["pepper"]).encode(), (passphrase or dev["passphrase"]).encode())


def _dev_secrets(settings: Settings) -> dict[str, str]:
    path = settings.data_dir / "dev-secrets.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    data = {k: base64.urlsafe_b64encode(os.urandom(32)).decode() for k in ("pepper", "passphrase")}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    return data
