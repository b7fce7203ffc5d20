"""The Issuer's product links on PostgreSQL (:class:`~issuer.ports.ProductLinkStore`, table
``product_links`` of migration 0022). Every statement is keyed by (tenant_id, gtin), so under
Citus each runs on one shard."""

from __future__ import annotations

from datetime import datetime

from sealmark.errors import NotFound
from sealmark.gs1.links import ProductLink
from sealmark.storage.postgres import PostgresUnitOfWork


class PgProductLinkStore:
    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self._uow = uow

    def links(self, tenant_id: str, gtin: str) -> list[ProductLink]:
        rows = self._uow.execute(
            "SELECT link_type, href, title, lang, context, media_type FROM product_links"
            " WHERE tenant_id = %s AND gtin = %s"
            " ORDER BY position, link_type, lang, context, href",
            (tenant_id, gtin),
        )
        return [ProductLink(*(str(v) for v in r)) for r in rows]

    def put_links(
        self,
        tenant_id: str,
        gtin: str,
        links: list[ProductLink],
        *,
        replace: bool,
        at: datetime,
        by: str,
    ) -> None:
        if not self._uow.execute("SELECT 1 FROM products WHERE gtin = %s", (gtin,)):
            raise NotFound(f"product {gtin} not found")
        if replace:
            kept = {link.key for link in links}
            for old in self.links(tenant_id, gtin):
                if old.key not in kept:
                    self.delete_link(tenant_id, gtin, old.key)
        last = self._uow.execute(
            "SELECT coalesce(max(position), -1) FROM product_links"
            " WHERE tenant_id = %s AND gtin = %s",
            (tenant_id, gtin),
        )[0][0]
        for offset, link in enumerate(links, start=1):
            self._uow.execute(
                "INSERT INTO product_links (tenant_id, gtin, link_type, lang, context, href,"
                " title, media_type, position, changed_at, changed_by)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, gtin, link_type, lang, context, href) DO UPDATE SET"
                " title = EXCLUDED.title, media_type = EXCLUDED.media_type,"
                " changed_at = EXCLUDED.changed_at, changed_by = EXCLUDED.changed_by",
                (
                    tenant_id,
                    gtin,
                    link.link_type,
                    link.lang,
                    link.context,
                    link.href,
                    link.title,
                    link.media_type,
                    int(last) + offset,
                    at,
                    by,
                ),
            )

    def delete_link(self, tenant_id: str, gtin: str, key: tuple[str, str, str, str]) -> bool:
        rows = self._uow.execute(
            "DELETE FROM product_links WHERE tenant_id = %s AND gtin = %s AND link_type = %s"
            " AND lang = %s AND context = %s AND href = %s RETURNING 1",
            (tenant_id, gtin, *key),
        )
        return bool(rows)
