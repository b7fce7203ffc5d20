"""Signing keys: Ed25519 private keys kept encrypted at rest (PKCS#8, passphrase from
configuration), decrypted once per process into a :class:`Signer`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealmark.errors import FailedPrecondition


class Signer(Protocol):
    key_id: str

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""


@dataclass(frozen=True)
class SealedKey:
    """A key as stored: public bytes and the encrypted private key."""

    key_id: str
    public_key: bytes
    private_key_pem: bytes


class SoftwareSigner:
    def __init__(self, key_id: str, private_key: Ed25519PrivateKey) -> None:
        self.key_id = key_id
        self._sign = private_key.sign

    def sign(self, message: bytes) -> bytes:
        return self._sign(message)


def generate_sealed_key(key_id: str, passphrase: bytes) -> SealedKey:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    return SealedKey(key_id, public, pem)


def unseal(key: SealedKey, passphrase: bytes) -> SoftwareSigner:
    """Decrypt a stored key. Raises FailedPrecondition when the passphrase is wrong."""
    try:
        private = serialization.load_pem_private_key(key.private_key_pem, passphrase)
    except (ValueError, TypeError) as exc:
        raise FailedPrecondition(
            f"signing key {key.key_id} cannot be decrypted: wrong SEALMARK_KEY_PASSPHRASE?"
        ) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise FailedPrecondition(f"signing key {key.key_id} is not an Ed25519 key")
    return SoftwareSigner(key.key_id, private)
