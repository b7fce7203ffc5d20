"""Signing keys: Ed25519 private keys either kept encrypted at rest (PKCS#8, passphrase from
configuration) and decrypted once per process, or generated inside a PKCS#11 token that never
lets them out (:mod:`sealmark.crypto.pkcs11`). Either way the issuer holds a :class:`Signer`.

:class:`KeyVault` is the one place that knows both: it creates new keys with the configured
backend and opens a signer for a stored key of either backend, so a tenant that moves to an
HSM keeps resuming requests that were signed with its older software key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealmark.errors import FailedPrecondition

if TYPE_CHECKING:
    from sealmark.crypto.pkcs11 import Pkcs11Config

Backend = Literal["software", "pkcs11"]


class Signer(Protocol):
    key_id: str

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""


@dataclass(frozen=True)
class SealedKey:
    """A key as stored: public bytes and where the private key is. ``software``: the
    encrypted PKCS#8 PEM; ``pkcs11``: the label of the private key in the token."""

    key_id: str
    public_key: bytes
    private_key_pem: bytes | None = None
    backend: Backend = "software"
    token_label: str | None = None


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
    return SoftwareSigner(key.key_id, unseal_private(key, passphrase))


def unseal_private(key: SealedKey, passphrase: bytes) -> Ed25519PrivateKey:
    """The private key of a stored software key (for signers other than the issuer's, such as
    the transparency log's note signer). Raises FailedPrecondition as :func:`unseal`."""
    if key.private_key_pem is None:
        raise FailedPrecondition(f"signing key {key.key_id} has no encrypted private key")
    try:
        private = serialization.load_pem_private_key(key.private_key_pem, passphrase)
    except (ValueError, TypeError) as exc:
        raise FailedPrecondition(
            f"signing key {key.key_id} cannot be decrypted: wrong SEALMARK_KEY_PASSPHRASE?"
        ) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise FailedPrecondition(f"signing key {key.key_id} is not an Ed25519 key")
    return private


class KeyVault:
    """Creates signing keys with the configured backend and opens signers for stored keys.

    ``passphrase`` encrypts software keys (None: software keys cannot be created or opened);
    ``pkcs11`` names the token (None: PKCS#11 keys cannot be created or opened). Each missing
    piece is a FailedPrecondition that says which setting to provide.
    """

    def __init__(
        self, backend: Backend, passphrase: bytes | None, pkcs11: Pkcs11Config | None = None
    ) -> None:
        self.backend = backend
        self._passphrase = passphrase
        self._pkcs11 = pkcs11

    def create(self, tenant_id: str, key_id: str) -> SealedKey:
        """A new Ed25519 key. In a token it is labelled ``sealmark/<tenant>/<key id>/<random>``
        so that a key left behind by a rotation that failed to commit never blocks the next."""
        if self.backend == "software":
            return generate_sealed_key(key_id, self._need_passphrase(key_id))
        from sealmark.crypto import pkcs11

        label = f"sealmark/{tenant_id}/{key_id}/{secrets.token_hex(4)}"
        public = pkcs11.generate_key(self._need_pkcs11(key_id), label)
        return SealedKey(key_id, public, backend="pkcs11", token_label=label)

    def signer(self, key: SealedKey) -> Signer:
        """The signer of a stored key; raises FailedPrecondition when it cannot be opened."""
        if key.backend == "software":
            return unseal(key, self._need_passphrase(key.key_id))
        from sealmark.crypto import pkcs11

        if key.token_label is None:
            raise FailedPrecondition(f"signing key {key.key_id} has no PKCS#11 label")
        signer = pkcs11.Pkcs11Signer(self._need_pkcs11(key.key_id), key.token_label, key.key_id)
        if pkcs11.public_key(self._need_pkcs11(key.key_id), key.token_label) != key.public_key:
            signer.close()
            raise FailedPrecondition(
                f"signing key {key.key_id}: the token's key {key.token_label!r} does not match"
                " the stored public key"
            )
        return signer

    def _need_passphrase(self, key_id: str) -> bytes:
        if self._passphrase is None:
            raise FailedPrecondition(
                f"signing key {key_id} is a software key: set SEALMARK_KEY_PASSPHRASE"
            )
        return self._passphrase

    def _need_pkcs11(self, key_id: str) -> Pkcs11Config:
        if self._pkcs11 is None:
            raise FailedPrecondition(
                f"signing key {key_id} is in a PKCS#11 token: set SEALMARK_PKCS11_MODULE,"
                " SEALMARK_PKCS11_TOKEN and SEALMARK_PKCS11_PIN"
            )
        return self._pkcs11
