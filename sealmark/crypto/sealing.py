"""Secrets that Sealmark must read back in clear (a webhook endpoint's HMAC key), sealed at
rest: AES-256-GCM under a key derived with scrypt from the key passphrase (the pepper when
keys live in an HSM), so a copy of the database alone does not hold them. Sealed values are
``sb1:`` + base64url(nonce ‖ ciphertext ‖ tag); the purpose is bound as associated data, so
a value sealed for one purpose does not open for another."""

from __future__ import annotations

import base64
import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from sealmark.errors import FailedPrecondition

PREFIX = "sb1:"
_SALT = b"sealmark/secret-box/v1"


class SecretBox:
    """Seals and opens short secrets for one ``purpose``. The key is derived on first use
    (scrypt, about 50 ms) and kept for the life of the object."""

    def __init__(self, passphrase: bytes, purpose: str) -> None:
        self._passphrase = passphrase
        self._purpose = purpose.encode()

    @functools.cached_property
    def _aead(self) -> AESGCM:
        key = Scrypt(salt=_SALT, length=32, n=2**14, r=8, p=1).derive(self._passphrase)
        return AESGCM(key)

    def seal(self, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), self._purpose)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str) -> str:
        """The secret. FailedPrecondition when ``sealed`` is not a value this box sealed (the
        passphrase changed, or the value was altered); the message names no secret."""
        if not sealed.startswith(PREFIX):
            raise FailedPrecondition("not a sealed secret")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(PREFIX) :])
            return self._aead.decrypt(raw[:12], raw[12:], self._purpose).decode()
        except (InvalidTag, ValueError) as exc:
            raise FailedPrecondition(
                "a sealed secret does not open: was SEALMARK_KEY_PASSPHRASE changed?"
            ) from exc
