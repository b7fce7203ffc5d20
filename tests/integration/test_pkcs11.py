"""The PKCS#11 signer against a real SoftHSM2 token created for this module.

SoftHSM reads SOFTHSM2_CONF once, when the module is first initialised in the process, so one
token is created per test module and the variable is set before anything loads the module.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pkcs11 import Attribute, KeyType, ObjectClass

from sealmark.crypto.pkcs11 import (
    Pkcs11Config,
    Pkcs11Signer,
    find_softhsm_module,
    generate_key,
    public_key,
)
from sealmark.crypto.signature import canonical_bytes
from sealmark.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable

pytestmark = pytest.mark.integration

TOKEN = "sealmark-test"
USER_PIN = "user-1234"
SO_PIN = "so-123456"


@dataclass(frozen=True)
class Hsm:
    config: Pkcs11Config
    label: str  # an Ed25519 key generated once for the module
    public: bytes


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    module = find_softhsm_module()
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        pytest.fail(
            "SoftHSM2 is not installed: run `apt-get install softhsm2` "
            "(or scripts/ensure-softhsm.sh)",
            pytrace=False,
        )
    root = tmp_path_factory.mktemp("softhsm")
    tokens = root / "tokens"
    tokens.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        init = [util, "--init-token", "--free", "--label", TOKEN]
        subprocess.run(
            [*init, "--so-pin", SO_PIN, "--pin", USER_PIN],
            check=True,
            capture_output=True,
        )
        config = Pkcs11Config(module_path=module, token_label=TOKEN, pin=USER_PIN)
        label = "code-signing-k1"
        public = generate_key(config, label)
        yield Hsm(config, label, public)


def _message(serial: str) -> bytes:
    return canonical_bytes("09506000134352", serial, "LOT7", "271231", "k1")


def test_generated_key_signs_canonical_bytes_verifiably(hsm: Hsm) -> None:
    assert len(hsm.public) == 32
    assert public_key(hsm.config, hsm.label) == hsm.public
    message = _message("SN0001")

    with Pkcs11Signer(hsm.config, hsm.label, "k1") as signer:
        assert signer.key_id == "k1"
        signature = signer.sign(message)

    assert len(signature) == 64
    Ed25519PublicKey.from_public_bytes(hsm.public).verify(signature, message)


def test_private_key_is_sensitive_unextractable_and_sign_only(hsm: Hsm) -> None:
    token = pkcs11.lib(hsm.config.module_path).get_token(token_label=TOKEN)
    with token.open(user_pin=USER_PIN) as session:
        key = session.get_key(ObjectClass.PRIVATE_KEY, KeyType.EC_EDWARDS, label=hsm.label)
        assert key[Attribute.TOKEN] is True
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        assert key[Attribute.SIGN] is True
        for capability in (Attribute.DECRYPT, Attribute.UNWRAP, Attribute.DERIVE):
            assert key[capability] is False
        with pytest.raises(pkcs11.AttributeSensitive):
            key[Attribute.VALUE]


def test_one_signer_shared_by_four_threads(hsm: Hsm) -> None:
    messages = [_message(f"SN{i:04d}") for i in range(200)]
    verifier = Ed25519PublicKey.from_public_bytes(hsm.public)

    with (
        Pkcs11Signer(hsm.config, hsm.label, "k1") as signer,
        ThreadPoolExecutor(max_workers=4) as pool,
    ):
        signatures = list(pool.map(signer.sign, messages))

    assert len(signatures) == len(messages)
    for message, signature in zip(messages, signatures, strict=True):
        verifier.verify(signature, message)


def test_signers_and_key_generation_share_one_login(hsm: Hsm) -> None:
    second = generate_key(hsm.config, "code-signing-k2")
    with (
        Pkcs11Signer(hsm.config, hsm.label, "k1") as one,
        Pkcs11Signer(hsm.config, "code-signing-k2", "k2") as two,
    ):
        message = _message("SN0002")
        Ed25519PublicKey.from_public_bytes(hsm.public).verify(one.sign(message), message)
        two.close()  # closing one signer must not log the other out
        Ed25519PublicKey.from_public_bytes(hsm.public).verify(one.sign(message), message)
    assert public_key(hsm.config, "code-signing-k2") == second


def test_wrong_pin_is_failed_precondition(hsm: Hsm) -> None:
    wrong = replace(hsm.config, pin="not-the-pin")
    with pytest.raises(FailedPrecondition, match="PIN rejected") as caught:
        Pkcs11Signer(wrong, hsm.label, "k1")
    assert "not-the-pin" not in str(caught.value)
    with pytest.raises(FailedPrecondition):
        public_key(wrong, hsm.label)


def test_wrong_pin_while_logged_in_is_failed_precondition(hsm: Hsm) -> None:
    wrong = replace(hsm.config, pin="not-the-pin")
    with Pkcs11Signer(hsm.config, hsm.label, "k1"), pytest.raises(FailedPrecondition):
        Pkcs11Signer(wrong, hsm.label, "k1")


def test_missing_label_is_not_found(hsm: Hsm) -> None:
    with pytest.raises(NotFound, match="no-such-key"):
        Pkcs11Signer(hsm.config, "no-such-key", "k9")
    with pytest.raises(NotFound):
        public_key(hsm.config, "no-such-key")


def test_duplicate_label_is_already_exists(hsm: Hsm) -> None:
    with pytest.raises(AlreadyExists):
        generate_key(hsm.config, hsm.label)


def test_missing_module_is_unavailable(hsm: Hsm, tmp_path: Path) -> None:
    gone = replace(hsm.config, module_path=str(tmp_path / "libnothere.so"))
    with pytest.raises(Unavailable):
        Pkcs11Signer(gone, hsm.label, "k1")
    with pytest.raises(Unavailable):
        generate_key(gone, "k3")


def test_missing_token_is_unavailable(hsm: Hsm) -> None:
    with pytest.raises(Unavailable, match="no-such-token"):
        Pkcs11Signer(replace(hsm.config, token_label="no-such-token"), hsm.label, "k1")


def test_closed_signer_refuses_to_sign(hsm: Hsm) -> None:
    signer = Pkcs11Signer(hsm.config, hsm.label, "k1")
    signer.close()
    signer.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        signer.sign(b"x")


def test_repr_never_shows_the_pin(hsm: Hsm) -> None:
    assert USER_PIN not in repr(hsm.config)
    assert "redacted" in repr(hsm.config)
    with Pkcs11Signer(hsm.config, hsm.label, "k1") as signer:
        assert USER_PIN not in repr(signer)
