"""Code signatures: Ed25519 over a canonical byte string, carried in AI 8030.

Canonical bytes (ASCII, fields joined by LF, which no GS1 CSET 82 value can contain)::

    b"sealmark-code-v1\\n" + gtin14 + b"\\n" + serial + b"\\n" + lot + b"\\n" + expiry_yymmdd
      + b"\\n" + key_id

``lot`` and ``expiry`` are empty strings when absent. AI 8030 carries ``key_id`` (2 base64url
characters) followed by the 64-byte signature in unpadded base64url (86 characters): 88 of the
90 characters AI 8030 allows. Anyone with the tenant's public key set can check a code offline
with nothing but an Ed25519 implementation.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from sealmark.errors import InvalidArgument

DOMAIN = b"sealmark-code-v1"
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{2}$")
SIGNATURE_CHARS = 86


def canonical_bytes(gtin: str, serial: str, lot: str, expiry_yymmdd: str, key_id: str) -> bytes:
    head, tail = canonical_parts(gtin, lot, expiry_yymmdd, key_id)
    return head + serial.encode("ascii") + tail


def canonical_parts(gtin: str, lot: str, expiry_yymmdd: str, key_id: str) -> tuple[bytes, bytes]:
    """What the canonical bytes of every code of one batch share, before and after the serial
    (``head + serial + tail``): built once per batch instead of once per code."""
    head = b"\n".join((DOMAIN, gtin.encode("ascii"))) + b"\n"
    tail = b"\n" + b"\n".join(v.encode("ascii") for v in (lot, expiry_yymmdd, key_id))
    return head, tail


def encode_ai8030(key_id: str, signature: bytes) -> str:
    return ai8030_encoder(key_id)(signature)


def ai8030_encoder(key_id: str) -> Callable[[bytes], str]:
    """``encode(signature) -> AI 8030 value`` for one key id, checked once."""
    if not KEY_ID.match(key_id):
        raise ValueError("want a 2-character key id")

    def encode(signature: bytes) -> str:
        if len(signature) != 64:
            raise ValueError("want a 64-byte Ed25519 signature")
        return key_id + base64.urlsafe_b64encode(signature)[:SIGNATURE_CHARS].decode("ascii")

    return encode


def decode_ai8030(value: str, field: str = "8030") -> tuple[str, bytes]:
    """Split an AI 8030 value into (key id, signature). Raises InvalidArgument."""
    if len(value) != 2 + SIGNATURE_CHARS or not KEY_ID.match(value[:2]):
        raise InvalidArgument(field, "not a Sealmark signature (key id + 86 base64url characters)")
    try:
        signature = base64.urlsafe_b64decode(value[2:] + "==")
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(field, "signature is not base64url") from exc
    return value[:2], signature


def verify(public_key: bytes | VerifyKey, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` under the key (raw
    32 bytes, or a key loaded once with :func:`load_key`, which saves the load).

    Verification goes through libsodium (PyNaCl): 65 - 98 µs against 172 µs for OpenSSL
    through ``cryptography`` on this project's machine, and it is on every consumer scan.
    libsodium also refuses non-canonical signatures and small-order keys."""
    try:
        key = public_key if isinstance(public_key, VerifyKey) else load_key(public_key)
        key.verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def load_key(public_key: bytes) -> VerifyKey:
    """A raw 32-byte Ed25519 public key, loaded for :func:`verify` (ValueError if malformed)."""
    return VerifyKey(public_key)
