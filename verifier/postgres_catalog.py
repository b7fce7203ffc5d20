"""The resolver's catalog on PostgreSQL (port :class:`~verifier.ports.ProductCatalog`):
products and brands (0001), the links brands register (0022), lot holds (0004), recalls
(0010) and whether a lot was issued (codes, by the 0012 index). Each read commits on its own
(``PostgresDatabase.reads``); driver errors are translated in sealmark.storage.postgres."""

from __future__ import annotations

from sealmark.gs1.links import ProductLink
from sealmark.storage.postgres import PostgresDatabase
from verifier.ports import CatalogEntry, LotStatus

__all__ = ["PostgresProductCatalog"]

_MIN_PREFIX, _MAX_PREFIX = 4, 12  # tenant_prefixes.prefix is 4..12 digits


class PostgresProductCatalog:
    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._db.reads() as uow:
            return uow.execute(sql, params)

    def entry(self, gtin: str) -> CatalogEntry | None:
        rows = self._rows(
            "SELECT p.tenant_id, p.gtin, p.name, t.name FROM products p"
            " JOIN tenants t ON t.id = p.tenant_id WHERE p.gtin = %s",
            (gtin,),
        )
        if not rows:
            return None
        r = rows[0]
        return CatalogEntry(str(r[0]), str(r[1]), str(r[2]), str(r[3]))

    def links(self, tenant_id: str, gtin: str) -> list[ProductLink]:
        rows = self._rows(
            "SELECT link_type, href, title, lang, context, media_type FROM product_links"
            " WHERE tenant_id = %s AND gtin = %s"
            " ORDER BY position, link_type, lang, context, href",
            (tenant_id, gtin),
        )
        return [ProductLink(*(str(v) for v in r)) for r in rows]

    def lot_status(self, tenant_id: str, gtin: str, lot: str) -> LotStatus:
        rows = self._rows(
            "SELECT EXISTS (SELECT 1 FROM codes WHERE tenant_id = %s AND gtin = %s AND lot = %s),"
            " (SELECT r.reason FROM recalls r WHERE r.tenant_id = %s AND r.scope ->> 'gtin' = %s"
            "   AND (r.scope ->> 'kind' = 'gtin'"
            "        OR (r.scope ->> 'kind' = 'lot' AND r.scope ->> 'lot' = %s))"
            "   ORDER BY r.effective_at, r.recall_id LIMIT 1),"
            " (SELECT h.reason FROM lot_holds h WHERE h.tenant_id = %s AND h.gtin = %s"
            "   AND h.lot = %s AND h.held)",
            (tenant_id, gtin, lot, tenant_id, gtin, lot, tenant_id, gtin, lot),
        )
        issued, recall, hold = rows[0]
        return LotStatus(
            issued=bool(issued),
            recalled=recall is not None,
            recall_reason=str(recall or ""),
            held=hold is not None,
            hold_reason=str(hold or ""),
        )

    def product_recall(self, tenant_id: str, gtin: str) -> str | None:
        rows = self._rows(
            "SELECT reason FROM recalls WHERE tenant_id = %s AND scope ->> 'kind' = 'gtin'"
            " AND scope ->> 'gtin' = %s ORDER BY effective_at, recall_id LIMIT 1",
            (tenant_id, gtin),
        )
        return str(rows[0][0]) if rows else None

    def brand_of_prefix(self, digits: str) -> tuple[str, str] | None:
        candidates = [digits[:n] for n in range(_MIN_PREFIX, min(len(digits), _MAX_PREFIX) + 1)]
        if not candidates:
            return None
        rows = self._rows(
            "SELECT t.id, t.name FROM tenant_prefixes p JOIN tenants t ON t.id = p.tenant_id"
            " WHERE p.prefix = ANY(%s) ORDER BY length(p.prefix) DESC LIMIT 1",
            (candidates,),
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None
