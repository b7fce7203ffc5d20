"""Brands' covert-mark keys: one per tenant, derived, never stored, logged or returned.

``key(tenant) = HMAC-SHA-256(HMAC-SHA-256(pepper, "sealmark-covert-derive-v1"), tenant_id)``:
the server's secret pepper (``SEALMARK_SECRET_PEPPER``) under a label of its own, so a covert
key says nothing about PINs or another tenant's key. Rotating the pepper changes every brand's
covert key, as it changes every PIN: labels printed before read ABSENT afterwards.
"""

from __future__ import annotations

import hashlib
import hmac


class CovertKeys:
    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ValueError("the pepper must be at least 16 bytes")
        master = hmac.new(pepper, b"sealmark-covert-derive-v1", hashlib.sha256).digest()
        self._mac = hmac.new(master, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "CovertKeys(<redacted>)"

    def for_tenant(self, tenant_id: str) -> bytes:
        """The tenant's 32-byte covert key. ValueError for an empty tenant id."""
        if not tenant_id:
            raise ValueError("a covert key needs a tenant id")
        mac = self._mac.copy()
        mac.update(tenant_id.encode("utf-8"))
        return mac.digest()
