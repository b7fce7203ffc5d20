"""KeyVault: which backend creates a key and what it needs to open one (software keys here;
the PKCS#11 backend is exercised against SoftHSM2 in tests/integration and tests/e2e)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealmark.crypto.keys import KeyVault, SealedKey
from sealmark.errors import FailedPrecondition

PASSPHRASE = b"unit-test-passphrase"


def test_software_key_is_encrypted_and_signs_verifiably() -> None:
    vault = KeyVault("software", PASSPHRASE)
    sealed = vault.create("brand", "k1")
    assert sealed.backend == "software" and sealed.token_label is None
    assert sealed.private_key_pem is not None
    assert b"ENCRYPTED PRIVATE KEY" in sealed.private_key_pem
    signature = vault.signer(sealed).sign(b"message")
    Ed25519PublicKey.from_public_bytes(sealed.public_key).verify(signature, b"message")
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(sealed.public_key).verify(signature, b"other")


def test_wrong_passphrase_names_the_setting() -> None:
    sealed = KeyVault("software", PASSPHRASE).create("brand", "k1")
    with pytest.raises(FailedPrecondition, match="SEALMARK_KEY_PASSPHRASE"):
        KeyVault("software", b"another-passphrase").signer(sealed)


def test_software_key_without_passphrase_names_the_setting() -> None:
    sealed = KeyVault("software", PASSPHRASE).create("brand", "k1")
    with pytest.raises(FailedPrecondition, match="k1 is a software key: set SEALMARK_KEY_PA"):
        KeyVault("pkcs11", None).signer(sealed)


def test_token_key_without_token_configuration_names_the_settings() -> None:
    sealed = SealedKey("k2", bytes(32), backend="pkcs11", token_label="sealmark/brand/k2/00")
    with pytest.raises(FailedPrecondition, match="SEALMARK_PKCS11_MODULE"):
        KeyVault("software", PASSPHRASE).signer(sealed)
    with pytest.raises(FailedPrecondition, match="SEALMARK_PKCS11_TOKEN"):
        KeyVault("pkcs11", None).create("brand", "k3")
