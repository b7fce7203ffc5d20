"""Compact codes: a truncated HMAC-SHA-256 in place of an Ed25519 signature, checked online.

For labels too small for a 64-byte signature. A MAC is not a public-key signature: nobody but
the Verifier (which holds the secret) can check it, so a compact code is verified online only
and never appears in the published key set. Keys, all HKDF-SHA-256 (``cryptography``)::

    brand master key = HKDF(SEALMARK_MAC_SECRET, salt=SALT,
                            info=b"sealmark-mac-brand-v1\\n" + tenant_id + b"\\n" + key_id)
    product key      = HKDF(brand master key, salt=SALT,
                            info=b"sealmark-mac-product-v1\\n" + gtin14)
    tag              = HMAC-SHA-256(product key,
                            b"sealmark-code-mac-v1\\n" + gtin14 + b"\\n" + serial + b"\\n" + key_id)
                       truncated to its first MAC_BITS / 8 bytes

``key_id`` is the tenant's key generation (the id of its active signing key when the code was
minted): rotating the keys rotates the MAC keys too, and old codes keep verifying because
every key is derived, never stored. A leaked product key exposes one product of one
generation, not the brand.

Carrier: AI (92), GS1 "company internal information" (X..90). AI (8030) is the GS1 *digital
signature* (DigSig, an ISO/IEC 20248 public-key application that any holder of the brand's
certificate may check), and a MAC is not one: writing it there would tell third-party readers
to check something they cannot. The value is the 2-character key id followed by the 64-bit tag
as 20 decimal digits (zero-padded): a GS1 DataMatrix packs two digits in one codeword, so 20
digits cost 10 codewords where 11 base64url characters cost 11 (see docs/issuer.md, "Compact
MAC profile", for the symbol sizes this buys).

Guessing: a forger who knows an issued serial but not the key succeeds with probability
``GUESS_PROBABILITY`` = 2^-64 per attempt, and every attempt is an online verification that
meets the per-client rate limit and the guessing alert.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealmark.errors import InvalidArgument

MAC_AI = "92"
MAC_BITS = 64
MAC_BYTES = MAC_BITS // 8
MAC_DIGITS = len(str(2**MAC_BITS - 1))  # 20
GUESS_PROBABILITY = 2.0**-MAC_BITS
SALT = b"sealmark-mac-v1"
MIN_SECRET_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{2}$")
_VALUE = re.compile(rf"^([A-Za-z0-9_-]{{2}})([0-9]{{{MAC_DIGITS}}})$")
_MAX_CACHED = 4096


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=info).derive(key)


def brand_master_key(secret: bytes, tenant_id: str, key_id: str) -> bytes:
    """The brand's master key of generation ``key_id``, derived from the server secret."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the MAC secret must be at least {MIN_SECRET_BYTES} bytes")
    _check_key_id(key_id)
    return _hkdf(secret, b"sealmark-mac-brand-v1\n" + f"{tenant_id}\n{key_id}".encode("ascii"))


def product_key(brand_master: bytes, gtin: str) -> bytes:
    """The MAC key of one product (GTIN-14) under a brand master key."""
    return _hkdf(brand_master, b"sealmark-mac-product-v1\n" + gtin.encode("ascii"))


def code_tag(key: bytes, gtin: str, serial: str, key_id: str) -> bytes:
    """The truncated tag (``MAC_BYTES`` bytes) of one code under its product key."""
    message = f"sealmark-code-mac-v1\n{gtin}\n{serial}\n{key_id}".encode("ascii")
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def encode_mac(key_id: str, tag: bytes) -> str:
    """The AI (92) value: key id + the tag as ``MAC_DIGITS`` decimal digits."""
    _check_key_id(key_id)
    if len(tag) != MAC_BYTES:
        raise ValueError(f"want a {MAC_BYTES}-byte tag")
    return key_id + str(int.from_bytes(tag, "big")).zfill(MAC_DIGITS)


def decode_mac(value: str, field: str = "(92)") -> tuple[str, bytes]:
    """Split an AI (92) value into (key id, tag). Raises InvalidArgument naming ``field``."""
    match = _VALUE.match(value)
    number = int(match.group(2)) if match else 2**MAC_BITS
    if match is None or number >= 2**MAC_BITS:
        raise InvalidArgument(
            field, f"not a Sealmark MAC (key id + {MAC_DIGITS} digits below 2^{MAC_BITS})"
        )
    return match.group(1), number.to_bytes(MAC_BYTES, "big")


def _check_key_id(key_id: str) -> None:
    if not _KEY_ID.match(key_id):
        raise ValueError("want a 2-character key id")


class MacScheme:
    """Derives and checks compact codes' MACs from the server secret (never logged, never
    returned: its ``repr`` is redacted). Product keys are derived once and cached."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the MAC secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._keys: dict[tuple[str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MacScheme(<redacted>)"

    def encoder(self, tenant_id: str, key_id: str, gtin: str) -> Callable[[str], str]:
        """``encode(serial) -> AI (92) value`` for the codes of one product and key id."""
        prepared = hmac.new(self._key(tenant_id, key_id, gtin), digestmod=hashlib.sha256)
        head = f"sealmark-code-mac-v1\n{gtin}\n".encode("ascii")
        tail = f"\n{key_id}".encode("ascii")

        def encode(serial: str) -> str:
            mac = prepared.copy()
            mac.update(head + serial.encode("ascii") + tail)
            return encode_mac(key_id, mac.digest()[:MAC_BYTES])

        return encode

    def matches(self, tenant_id: str, gtin: str, serial: str, key_id: str, tag: bytes) -> bool:
        """True when ``tag`` is the code's MAC; compared in constant time."""
        expected = code_tag(self._key(tenant_id, key_id, gtin), gtin, serial, key_id)
        return hmac.compare_digest(expected, tag)

    def _key(self, tenant_id: str, key_id: str, gtin: str) -> bytes:
        cache_key = (tenant_id, key_id, gtin)
        with self._lock:
            key = self._keys.get(cache_key)
        if key is None:
            key = product_key(brand_master_key(self._secret, tenant_id, key_id), gtin)
            with self._lock:
                if len(self._keys) >= _MAX_CACHED:
                    self._keys.clear()
                self._keys[cache_key] = key
        return key
