"""Secrets sealed at rest (sealmark/crypto/sealing.py)."""

from __future__ import annotations

import pytest

from sealmark.crypto.sealing import PREFIX, SecretBox
from sealmark.errors import FailedPrecondition

SECRET = "whsec_0123456789abcdefghijklmnopqrstuv"


def test_a_sealed_secret_opens_and_does_not_show() -> None:
    box = SecretBox(b"passphrase-0123", "webhook endpoint secret")
    sealed = box.seal(SECRET)
    assert sealed.startswith(PREFIX) and SECRET not in sealed
    assert box.seal(SECRET) != sealed  # a fresh nonce each time
    assert box.open(sealed) == SECRET


@pytest.mark.parametrize(
    "other",
    [
        SecretBox(b"another-passphrase", "webhook endpoint secret"),  # passphrase changed
        SecretBox(b"passphrase-0123", "something else"),  # sealed for another purpose
    ],
)
def test_it_opens_only_in_its_own_box(other: SecretBox) -> None:
    sealed = SecretBox(b"passphrase-0123", "webhook endpoint secret").seal(SECRET)
    with pytest.raises(FailedPrecondition) as caught:
        other.open(sealed)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("value", ["", SECRET, PREFIX + "!!!", PREFIX + "AAAA"])
def test_what_it_did_not_seal_is_refused(value: str) -> None:
    with pytest.raises(FailedPrecondition):
        SecretBox(b"passphrase-0123", "p").open(value)
