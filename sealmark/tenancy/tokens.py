"""API token format and hashing. Pure: randomness is passed in.

A token reads ``smk_<id>_<secret>``: ``id`` (12 base32 characters) finds the stored row,
``secret`` (43 base64url characters, 256 bits) is checked against its stored SHA-256. Because
the secret is 256 random bits, a plain hash is enough (no pepper or slow KDF is needed to resist
guessing); the clear secret exists only in the creation response.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from sealmark.errors import Unauthenticated

PREFIX = "smk"
_FORMAT = re.compile(r"^smk_([a-z2-7]{12})_([A-Za-z0-9_-]{43})$")

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly made token: ``value`` is shown once; only ``secret_hash`` is stored."""

    id: str
    value: str
    secret_hash: bytes


def new_token(random_bytes: RandomBytes) -> IssuedToken:
    token_id = base64.b32encode(random_bytes(10)).decode("ascii")[:12].lower()
    secret = base64.urlsafe_b64encode(random_bytes(32)).decode("ascii").rstrip("=")
    return IssuedToken(token_id, f"{PREFIX}_{token_id}_{secret}", hash_secret(secret))


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def split_token(value: str) -> tuple[str, str]:
    """Return (token id, secret). Raises Unauthenticated for anything not shaped like a token."""
    match = _FORMAT.match(value)
    if match is None:
        raise Unauthenticated("malformed bearer token")
    return match.group(1), match.group(2)


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)
