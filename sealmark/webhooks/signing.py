"""The signature header of a webhook delivery, in the manner of Stripe's.

``Sealmark-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256>`` where the MAC is over
``<t>.`` followed by the exact body bytes, keyed with the endpoint's secret. While a rotated
secret is still honoured, a second ``v1=`` carries the MAC under the previous secret, so a
receiver may switch at its own pace. The timestamp is signed, so a receiver that refuses
old timestamps (:data:`TOLERANCE_S`) refuses replays."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "Sealmark-Signature"
EVENT_ID_HEADER = "Sealmark-Event-Id"
EVENT_TYPE_HEADER = "Sealmark-Event-Type"
ATTEMPT_HEADER = "Sealmark-Delivery-Attempt"
TOLERANCE_S = 300


class SignatureError(ValueError):
    """The header is missing, malformed, too old, or no signature in it matches."""


def mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The header value: the timestamp and one ``v1`` per secret (current first)."""
    if not secrets:
        raise ValueError("at least one secret")
    return ",".join([f"t={timestamp}", *(f"v1={mac(s, timestamp, body)}" for s in secrets)])


def verify(header: str, body: bytes, secret: str, now: int, tolerance_s: int = TOLERANCE_S) -> int:
    """Check a received header against ``secret``; return its timestamp. SignatureError when
    it is malformed, older (or newer) than ``tolerance_s`` from ``now``, or unmatched."""
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed signature header")
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                raise SignatureError("malformed timestamp")
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        raise SignatureError("signature header needs t= and v1=")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance")
    expected = mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, m) for m in macs):
        raise SignatureError("no signature matches")
    return timestamp
