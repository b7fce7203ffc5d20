"""PostgreSQL adapter of :class:`verifier.ports.MediaReader`: reads of the product_media
table the Issuer writes (migration 0023). Reads only, each its own statement."""

from __future__ import annotations

from sealmark.storage.postgres import PostgresDatabase
from verifier.ports import MediaBlob, MediaRef


class PostgresMediaReader:
    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    def media_refs(self, tenant_id: str, gtin: str) -> list[MediaRef]:
        with self._database.reads() as uow:
            rows = uow.execute(
                "SELECT kind, gtin, sha256, media_type, width, height, alt FROM product_media"
                " WHERE tenant_id = %s AND gtin IN (%s, '') ORDER BY gtin, kind",
                (tenant_id, gtin),
            )
        return [MediaRef(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def media_blob(self, sha256: str) -> MediaBlob | None:
        with self._database.reads() as uow:
            rows = uow.execute(
                "SELECT media_type, body FROM product_media WHERE sha256 = %s LIMIT 1",
                (sha256,),
            )
        return MediaBlob(sha256, rows[0][0], bytes(rows[0][1])) if rows else None
