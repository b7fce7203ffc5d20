"""The proof a code carries: the Ed25519 signature of AI (8030) under one of its brand's keys,
or, for a compact-profile product's code, the MAC of AI (92) (sealmark.crypto.mac). Checked
before the stored code is read, so a forgery never reaches the codes; the keys and the
products' profiles come from per-process caches (:class:`Cached`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sealmark.crypto.mac import MacScheme, decode_mac
from sealmark.crypto.signature import canonical_bytes, decode_ai8030, verify
from sealmark.errors import FailedPrecondition, InvalidArgument
from sealmark.gs1.code import GS1Code
from sealmark.tenancy.model import CodeProfile
from verifier.domain import Reason, reason
from verifier.ports import ProductFacts

CACHE_TTL_S = 5.0  # prefixes, keys, rules, product and brand names: a change applies within this


class Cached:
    """A value per key, reloaded after ``CACHE_TTL_S``."""

    def __init__(self, load: Callable[[str], Any]) -> None:
        self._load = load
        self._values: dict[str, tuple[float, Any]] = {}

    def get(self, key: str, *, fresh: bool = False) -> Any:
        hit = self._values.get(key)
        if hit is None or fresh or time.monotonic() - hit[0] > CACHE_TTL_S:
            hit = (time.monotonic(), self._load(key))
            self._values[key] = hit
        return hit[1]


class Proofs:
    """``keys``: tenant id → {key id: public key}; ``products``: GTIN → ProductFacts | None;
    ``macs`` None when this server has no SEALMARK_MAC_SECRET."""

    def __init__(self, keys: Cached, products: Cached, macs: MacScheme | None) -> None:
        self._keys = keys
        self._products = products
        self._macs = macs

    def check(self, tenant_id: str, code: GS1Code) -> Reason | None:
        """The signature check, or the MAC check for a compact-profile product's code. A code
        carrying an AI (8030) is always held to it (compact codes are never signed); only a
        code without one needs its product's profile, so signed scans read nothing more."""
        if code.signature is None:
            facts: ProductFacts | None = self._products.get(code.gtin)
            if facts is not None and facts.code_profile == CodeProfile.COMPACT:
                return self._mac(tenant_id, code)
        return self._signature(tenant_id, code)

    def _mac(self, tenant_id: str, code: GS1Code) -> Reason | None:
        """None when the code carries the right MAC under one of the tenant's key ids; a
        COUNTERFEIT reason when it carries a wrong one; ``no_mac`` when it carries none.
        FailedPrecondition when this server has no SEALMARK_MAC_SECRET to check it with."""
        if code.mac is None:
            return reason("no_mac", {})
        if self._macs is None:
            raise FailedPrecondition(
                "compact-profile codes cannot be checked here: set SEALMARK_MAC_SECRET on the"
                " Verifier (the Issuer's secret)"
            )
        try:
            key_id, tag = decode_mac(code.mac)
        except InvalidArgument:
            return reason("bad_mac", {})
        keys = self._keys.get(tenant_id)
        if key_id not in keys:
            keys = self._keys.get(tenant_id, fresh=True)  # a key made in the last seconds
            if key_id not in keys:
                return reason("unknown_key", {"key_id": key_id})
        if not self._macs.matches(tenant_id, code.gtin, code.serial, key_id, tag):
            return reason("bad_mac", {})
        return None

    def _signature(self, tenant_id: str, code: GS1Code) -> Reason | None:
        """None when the code carries a valid signature under one of the tenant's keys; a
        COUNTERFEIT reason when it carries a bad one; ``no_signature`` when it carries none."""
        if code.signature is None:
            return reason("no_signature", {})
        try:
            key_id, signature = decode_ai8030(code.signature)
        except InvalidArgument:
            return reason("bad_signature", {})
        keys = self._keys.get(tenant_id)
        if key_id not in keys:
            keys = self._keys.get(tenant_id, fresh=True)  # a key made in the last seconds
            if key_id not in keys:
                return reason("unknown_key", {"key_id": key_id})
        message = canonical_bytes(
            code.gtin,
            code.serial,
            code.lot or "",
            code.expiry.strftime("%y%m%d") if code.expiry else "",
            key_id,
        )
        if not verify(keys[key_id], message, signature):
            return reason("bad_signature", {})
        return None
