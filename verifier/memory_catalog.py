"""The resolver's catalog in memory (port :class:`~verifier.ports.ProductCatalog`), for unit
tests: what the Issuer and the Audit write, set through the ``add_*`` / ``set_*`` methods."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sealmark.gs1.links import ProductLink
from verifier.ports import CatalogEntry, LotStatus


@dataclass
class _Data:
    entries: dict[str, CatalogEntry] = field(default_factory=dict)
    links: dict[tuple[str, str], list[ProductLink]] = field(default_factory=dict)
    lots: set[tuple[str, str, str]] = field(default_factory=set)
    holds: dict[tuple[str, str, str], str] = field(default_factory=dict)
    lot_recalls: dict[tuple[str, str, str], str] = field(default_factory=dict)
    product_recalls: dict[tuple[str, str], str] = field(default_factory=dict)
    prefixes: dict[str, str] = field(default_factory=dict)  # prefix -> tenant id
    brands: dict[str, str] = field(default_factory=dict)  # tenant id -> name


class MemoryProductCatalog:
    """Thread-safe; the first recall of a scope is kept, as in the database."""

    def __init__(self) -> None:
        self._data = _Data()
        self._lock = threading.Lock()

    # -- what other services write
    def add_tenant(self, tenant_id: str, name: str, prefixes: list[str]) -> None:
        with self._lock:
            self._data.brands[tenant_id] = name
            for prefix in prefixes:
                self._data.prefixes[prefix] = tenant_id

    def add_product(self, tenant_id: str, gtin: str, name: str) -> None:
        with self._lock:
            brand = self._data.brands.get(tenant_id, "")
            self._data.entries[gtin] = CatalogEntry(tenant_id, gtin, name, brand)

    def set_links(self, tenant_id: str, gtin: str, links: list[ProductLink]) -> None:
        with self._lock:
            self._data.links[(tenant_id, gtin)] = list(links)

    def add_lot(self, tenant_id: str, gtin: str, lot: str) -> None:
        with self._lock:
            self._data.lots.add((tenant_id, gtin, lot))

    def hold_lot(self, tenant_id: str, gtin: str, lot: str, reason: str, held: bool) -> None:
        with self._lock:
            if held:
                self._data.holds[(tenant_id, gtin, lot)] = reason
            else:
                self._data.holds.pop((tenant_id, gtin, lot), None)

    def recall_lot(self, tenant_id: str, gtin: str, lot: str, reason: str) -> None:
        with self._lock:
            self._data.lot_recalls.setdefault((tenant_id, gtin, lot), reason)

    def recall_product(self, tenant_id: str, gtin: str, reason: str) -> None:
        with self._lock:
            self._data.product_recalls.setdefault((tenant_id, gtin), reason)

    # -- the port
    def entry(self, gtin: str) -> CatalogEntry | None:
        with self._lock:
            return self._data.entries.get(gtin)

    def links(self, tenant_id: str, gtin: str) -> list[ProductLink]:
        with self._lock:
            return list(self._data.links.get((tenant_id, gtin), []))

    def lot_status(self, tenant_id: str, gtin: str, lot: str) -> LotStatus:
        with self._lock:
            key = (tenant_id, gtin, lot)
            recall = self._data.product_recalls.get((tenant_id, gtin))
            if recall is None:
                recall = self._data.lot_recalls.get(key)
            hold = self._data.holds.get(key)
            return LotStatus(
                issued=key in self._data.lots,
                recalled=recall is not None,
                recall_reason=recall or "",
                held=hold is not None,
                hold_reason=hold or "",
            )

    def product_recall(self, tenant_id: str, gtin: str) -> str | None:
        with self._lock:
            return self._data.product_recalls.get((tenant_id, gtin))

    def brand_of_prefix(self, digits: str) -> tuple[str, str] | None:
        with self._lock:
            for n in range(min(len(digits), 12), 3, -1):
                tenant_id = self._data.prefixes.get(digits[:n])
                if tenant_id is not None:
                    return tenant_id, self._data.brands.get(tenant_id, "")
            return None
