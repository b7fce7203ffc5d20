"""Hidden PINs: derived, never stored in clear.

``pin = HMAC-SHA256(pin_key, code_key) mod 10^length`` (zero-padded), so a retried issuance can
return the same PIN without keeping it; the database keeps only
``HMAC-SHA256(hash_key, code_key ‖ LF ‖ pin)``. Both keys are derived from the secret pepper
(``SEALMARK_SECRET_PEPPER``) with distinct labels, so the hash cannot be used to derive PINs.
"""

from __future__ import annotations

import hashlib
import hmac


class PinScheme:
    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ValueError("the PIN pepper must be at least 16 bytes")
        pin_key = hmac.new(pepper, b"sealmark-pin-derive-v1", hashlib.sha256).digest()
        hash_key = hmac.new(pepper, b"sealmark-pin-hash-v1", hashlib.sha256).digest()
        # Keyed once; each use copies the prepared state (half the cost of hmac.new per code).
        self._pin_mac = hmac.new(pin_key, digestmod=hashlib.sha256)
        self._hash_mac = hmac.new(hash_key, digestmod=hashlib.sha256)

    def pin(self, code_key: str, length: int) -> str:
        mac = self._pin_mac.copy()
        mac.update(code_key.encode("ascii"))
        return str(int.from_bytes(mac.digest(), "big") % 10**length).zfill(length)

    def pin_hash(self, code_key: str, pin: str) -> bytes:
        mac = self._hash_mac.copy()
        mac.update(code_key.encode("ascii") + b"\n" + pin.encode("ascii"))
        return mac.digest()

    def matches(self, code_key: str, pin: str, stored: bytes) -> bool:
        return hmac.compare_digest(self.pin_hash(code_key, pin), stored)
