"""The resolver's use case: what the non-serialised pages and the linkset need to know of a
product, read through the :class:`~verifier.ports.ProductCatalog` port. Registered products
(who owns a GTIN, its name) change rarely and are cached per process like the verification
path's product facts; links, lot status and recalls are read when asked (a recall takes
effect at once), and never on a consumer's verification."""

from __future__ import annotations

from dataclasses import dataclass, field

from sealmark.gs1.links import ProductLink
from verifier.ports import CatalogEntry, LotStatus, ProductCatalog
from verifier.proofs import Cached


@dataclass(frozen=True)
class ProductView:
    """One product as the resolver shows it: the entry, its registered links, whether the
    whole product is recalled, and the asked lot's status (None when no lot was asked)."""

    entry: CatalogEntry
    links: list[ProductLink] = field(default_factory=list)
    product_recall: str | None = None
    lot: str | None = None
    lot_status: LotStatus | None = None


class Resolver:
    def __init__(self, catalog: ProductCatalog) -> None:
        self._catalog = catalog
        self._entries = Cached(catalog.entry)

    def entry(self, gtin: str) -> CatalogEntry | None:
        """The registered product (cached), None for a GTIN nobody registered."""
        entry: CatalogEntry | None = self._entries.get(gtin)
        return entry

    def links(self, gtin: str) -> list[ProductLink] | None:
        """The product's registered links; None for an unregistered GTIN."""
        entry = self.entry(gtin)
        return None if entry is None else self._catalog.links(entry.tenant_id, gtin)

    def view(self, gtin: str, lot: str | None) -> ProductView | None:
        """Everything the product or lot page shows; None for an unregistered GTIN."""
        entry = self.entry(gtin)
        if entry is None:
            return None
        status = None if lot is None else self._catalog.lot_status(entry.tenant_id, gtin, lot)
        recall = self._catalog.product_recall(entry.tenant_id, gtin)
        links = self._catalog.links(entry.tenant_id, gtin)
        return ProductView(entry, links, recall, lot, status)

    def sscc_brand(self, sscc: str) -> str | None:
        """The brand whose company prefix the SSCC carries (after its extension digit)."""
        found = self._catalog.brand_of_prefix(sscc[1:])
        return None if found is None else found[1]
