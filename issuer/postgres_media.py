"""PostgreSQL adapter of :class:`issuer.ports.ProductMediaStorage` (table product_media,
migration 0023). Each method is one statement in its own transaction; driver errors become
:mod:`sealmark.errors` in :class:`sealmark.storage.postgres.PostgresUnitOfWork`."""

from __future__ import annotations

from typing import Any

import psycopg2

from issuer.domain.media import MediaKind, StoredMedia
from sealmark.errors import NotFound
from sealmark.storage.postgres import PostgresDatabase, retrying

_COLUMNS = "tenant_id, gtin, kind, sha256, media_type, width, height, body, alt, updated_at"


class PostgresProductMedia:
    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    def put_media(self, media: StoredMedia) -> None:
        # One statement: the owner check and the upsert cannot be split by another writer.
        owner = (
            "SELECT 1 FROM tenants WHERE id = %(tenant)s"
            if media.gtin == ""
            else "SELECT 1 FROM products WHERE gtin = %(gtin)s AND tenant_id = %(tenant)s"
        )
        params = {
            "tenant": media.tenant_id,
            "gtin": media.gtin,
            "kind": media.kind.value,
            "sha256": media.sha256,
            "type": media.media_type,
            "width": media.width,
            "height": media.height,
            "body": psycopg2.Binary(media.body),
            "alt": media.alt,
            "at": media.updated_at,
        }

        def put() -> list[tuple[Any, ...]]:
            with self._database.unit_of_work() as uow:
                rows = uow.execute(
                    f"INSERT INTO product_media ({_COLUMNS})"
                    " SELECT %(tenant)s, %(gtin)s, %(kind)s, %(sha256)s, %(type)s, %(width)s,"
                    " %(height)s, %(body)s, %(alt)s, %(at)s"
                    f" WHERE EXISTS ({owner})"
                    " ON CONFLICT (tenant_id, gtin, kind) DO UPDATE SET sha256 = EXCLUDED.sha256,"
                    " media_type = EXCLUDED.media_type, width = EXCLUDED.width,"
                    " height = EXCLUDED.height, body = EXCLUDED.body, alt = EXCLUDED.alt,"
                    " updated_at = EXCLUDED.updated_at"
                    " RETURNING 1",
                    params,
                )
                uow.commit()
                return rows

        if not retrying(put):
            what = f"product {media.gtin}" if media.gtin else f"tenant {media.tenant_id}"
            raise NotFound(f"{what} not found")

    def media(self, tenant_id: str, gtin: str) -> list[StoredMedia]:
        with self._database.reads() as uow:
            rows = uow.execute(
                f"SELECT {_COLUMNS} FROM product_media WHERE tenant_id = %s AND gtin = %s"
                " ORDER BY kind",
                (tenant_id, gtin),
            )
        return [_media(row) for row in rows]

    def remove_media(self, tenant_id: str, gtin: str, kind: MediaKind) -> bool:
        def remove() -> bool:
            with self._database.unit_of_work() as uow:
                rows = uow.execute(
                    "DELETE FROM product_media WHERE tenant_id = %s AND gtin = %s AND kind = %s"
                    " RETURNING 1",
                    (tenant_id, gtin, kind.value),
                )
                uow.commit()
                return bool(rows)

        return retrying(remove)


def _media(row: tuple[Any, ...]) -> StoredMedia:
    return StoredMedia(
        tenant_id=row[0],
        gtin=row[1],
        kind=MediaKind(row[2]),
        sha256=row[3],
        media_type=row[4],
        width=row[5],
        height=row[6],
        body=bytes(row[7]),
        alt=row[8],
        updated_at=row[9],
    )
