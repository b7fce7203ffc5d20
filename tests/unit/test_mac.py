"""Compact codes' MACs: the key derivation and tag as named vectors, the AI (92) value, the
constant-time check, and the guess probability the docs state (2^-64 per code)."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from sealmark.crypto.mac import (
    GUESS_PROBABILITY,
    MAC_BITS,
    MAC_DIGITS,
    MacScheme,
    brand_master_key,
    code_tag,
    decode_mac,
    encode_mac,
    product_key,
)
from sealmark.errors import InvalidArgument

GTIN = "09520123456788"
SERIAL = "482910375562"

# Named vector "compact-v1/product": a fixed brand master key (bytes 0..31), GTIN, serial, key
# id "01" -> product key, 64-bit tag, AI (92) value. Any change to a label, the salt, the
# truncation or the encoding changes these and must come with a new version of the scheme.
VECTOR_MASTER = bytes(range(32))
VECTOR_PRODUCT_KEY = "72aab7d4eef6303fc76a755c2cbc8929c3101ef99ed28b27c770d725eac2b4bc"
VECTOR_TAG = "a6b2dd90a3ab3f4b"
VECTOR_AI92 = "0112011906769441472331"
# Named vector "compact-v1/brand": server secret, tenant "acme", key id "01" -> brand master
# key, and the whole chain down to the AI (92) value of the same code.
VECTOR_SECRET = b"sealmark-test-mac-secret-0123456789"
VECTOR_BRAND_MASTER = "559eb9d9ba7cbbcf1d4dc31cef1e047d2ef3cb8f9af1f835be44951db5eb3227"
VECTOR_CHAIN_AI92 = "0112448280031489861946"


def _rfc5869(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA-256 with one output block, written out from RFC 5869 (independent of
    ``cryptography``), to show the derivation is plain HKDF."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_product_vector() -> None:
    key = product_key(VECTOR_MASTER, GTIN)
    assert key.hex() == VECTOR_PRODUCT_KEY
    tag = code_tag(key, GTIN, SERIAL, "01")
    assert tag.hex() == VECTOR_TAG
    assert encode_mac("01", tag) == VECTOR_AI92


def test_brand_vector_and_the_whole_chain() -> None:
    assert brand_master_key(VECTOR_SECRET, "acme", "01").hex() == VECTOR_BRAND_MASTER
    encode = MacScheme(VECTOR_SECRET).encoder("acme", "01", GTIN)
    assert encode(SERIAL) == VECTOR_CHAIN_AI92


def test_the_derivation_is_plain_hkdf_and_hmac() -> None:
    salt = b"sealmark-mac-v1"
    brand = _rfc5869(VECTOR_SECRET, salt, b"sealmark-mac-brand-v1\nacme\n01")
    assert brand.hex() == VECTOR_BRAND_MASTER
    product = _rfc5869(VECTOR_MASTER, salt, b"sealmark-mac-product-v1\n" + GTIN.encode())
    assert product.hex() == VECTOR_PRODUCT_KEY
    message = f"sealmark-code-mac-v1\n{GTIN}\n{SERIAL}\n01".encode()
    assert hmac.new(product, message, hashlib.sha256).digest()[:8].hex() == VECTOR_TAG


def test_every_input_changes_the_mac() -> None:
    # Tags only (the key id prefix left out), so the key id case compares the tags too.
    scheme = MacScheme(VECTOR_SECRET)
    base = scheme.encoder("acme", "01", GTIN)(SERIAL)[2:]
    others = {
        scheme.encoder("acme", "01", GTIN)(SERIAL[:-1] + "3")[2:],
        scheme.encoder("acme", "01", "09520123456795")(SERIAL)[2:],
        scheme.encoder("acme", "02", GTIN)(SERIAL)[2:],
        scheme.encoder("acme-2", "01", GTIN)(SERIAL)[2:],
        MacScheme(VECTOR_SECRET + b"x").encoder("acme", "01", GTIN)(SERIAL)[2:],
    }
    assert base not in others and len(others) == 5


def test_the_value_round_trips_and_the_check_holds() -> None:
    scheme = MacScheme(VECTOR_SECRET)
    key_id, tag = decode_mac(VECTOR_CHAIN_AI92)
    assert key_id == "01" and len(tag) == MAC_BITS // 8
    assert scheme.matches("acme", GTIN, SERIAL, key_id, tag)
    flipped = bytes([tag[0] ^ 1]) + tag[1:]
    assert not scheme.matches("acme", GTIN, SERIAL, key_id, flipped)
    assert not scheme.matches("acme", GTIN, SERIAL + "0", key_id, tag)
    assert not scheme.matches("other", GTIN, SERIAL, key_id, tag)
    assert not scheme.matches("acme", GTIN, SERIAL, "02", tag)


def test_the_check_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # mac.py looks it up at each call
    key_id, tag = decode_mac(VECTOR_CHAIN_AI92)
    assert MacScheme(VECTOR_SECRET).matches("acme", GTIN, SERIAL, key_id, tag)
    assert calls == [(tag, tag)]


@pytest.mark.parametrize(
    "value",
    [
        "01",  # no tag
        "01" + "1" * (MAC_DIGITS - 1),  # a digit short
        "01" + "1" * (MAC_DIGITS + 1),  # a digit long
        "01" + "1" * (MAC_DIGITS - 1) + "A",  # not a digit
        "0!" + "1" * MAC_DIGITS,  # not a key id
        "01" + str(2**MAC_BITS),  # 20 digits, but not a 64-bit number
        "01" + "9" * MAC_DIGITS,
    ],
)
def test_malformed_values_are_refused_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_mac(value, "payload")
    assert caught.value.field == "payload"


def test_the_largest_tag_is_a_value() -> None:
    assert decode_mac("01" + str(2**MAC_BITS - 1)) == ("01", b"\xff" * 8)
    assert decode_mac("01" + "0" * MAC_DIGITS) == ("01", b"\x00" * 8)


def test_the_guess_probability_is_one_in_the_value_space() -> None:
    # The values a verifier accepts for one code are exactly the 2^64 tags (key id fixed), so a
    # guess, however chosen, is right with probability 2^-64 when the tags are uniform.
    assert MAC_BITS == 64 and MAC_DIGITS == 20
    assert GUESS_PROBABILITY == 1 / 2**64 == pytest.approx(5.42e-20, rel=1e-3)
    assert len(str(2**MAC_BITS - 1)) == MAC_DIGITS  # every tag fits the fixed width


def test_tags_are_uniform_bit_by_bit() -> None:
    # Each of the 64 bits of 8,192 tags (of random serials) is set about half the time: a
    # truncation or encoding that lost or fixed bits would shrink the space guessed from.
    scheme = MacScheme(VECTOR_SECRET)
    encode = scheme.encoder("acme", "01", GTIN)
    draw = random.Random(24)
    n = 8192
    tags = [decode_mac(encode(f"{draw.randrange(10**12):012d}"))[1] for _ in range(n)]
    assert len(set(tags)) == n  # no two alike: a birthday collision here has p ~ 2^-38
    # 6 standard deviations (sqrt(n)/2 = 45) from n/2, per bit: a false alarm ~ 1e-7 per run.
    for bit in range(MAC_BITS):
        ones = sum(int.from_bytes(t, "big") >> bit & 1 for t in tags)
        assert abs(ones - n / 2) < 6 * 45, f"bit {bit}: {ones} of {n} set"


def test_the_secret_never_shows_and_must_be_long() -> None:
    assert "sealmark-test" not in repr(MacScheme(VECTOR_SECRET))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        MacScheme(b"short")
    with pytest.raises(ValueError, match="key id"):
        encode_mac("001", b"\x00" * 8)


def test_random_guesses_are_all_refused() -> None:
    # 20,000 guessed tags for one issued code: at 2^-64 none passes (p ~ 1e-15). A check that
    # looked at fewer bits than it should (a byte, two) would let dozens through.
    scheme = MacScheme(VECTOR_SECRET)
    draw = random.Random(64)
    accepted = sum(
        scheme.matches("acme", GTIN, SERIAL, "01", draw.randbytes(8)) for _ in range(20_000)
    )
    assert accepted == 0
    assert scheme.matches("acme", GTIN, SERIAL, "01", decode_mac(VECTOR_CHAIN_AI92)[1])
