"""The PostgreSQL adapter of :class:`audit.ports.TlogStorage` (tables of migration 0010)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from audit.ports import Head
from sealmark.errors import NotFound
from sealmark.storage.postgres import PostgresDatabase, PostgresUnitOfWork, StoreOpener

__all__ = ["Head", "PostgresTlogStorage", "PostgresTlogStore"]


class PostgresTlogStorage(StoreOpener["PostgresTlogStore"]):
    """:class:`audit.ports.TlogStorage` on one database."""

    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(database, lambda uow, writable: PostgresTlogStore(uow, writable))


class PostgresTlogStore:
    def __init__(self, uow: PostgresUnitOfWork, writable: bool = True) -> None:
        self._uow = uow
        self._writable = writable

    def _writes(self) -> PostgresUnitOfWork:
        if not self._writable:
            raise RuntimeError("a reads() store writes nothing: use transaction()")
        return self._uow

    def head(self, tenant_id: str, lock: bool = False) -> Head | None:
        rows = self._uow.execute(
            "SELECT tenant_id, origin, key_name, public_key, private_key_pem, size, root_hash,"
            " signed_note, updated_at FROM tlog_heads WHERE tenant_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (tenant_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return Head(r[0], r[1], r[2], bytes(r[3]), bytes(r[4]), int(r[5]), bytes(r[6]), r[7], r[8])

    def create_head(self, head: Head) -> None:
        # Two first integrations race on the insert: the loser waits on the winner's row
        # lock, then finds nothing to do (ON CONFLICT) and locks the stored row instead.
        self._writes().execute(
            "INSERT INTO tlog_heads (tenant_id, origin, key_name, public_key, private_key_pem,"
            " size, root_hash, signed_note, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant_id) DO NOTHING",
            (
                head.tenant_id,
                head.origin,
                head.key_name,
                head.public_key,
                head.private_key_pem,
                head.size,
                head.root_hash,
                head.signed_note,
                head.updated_at,
            ),
        )

    def update_head(self, head: Head) -> None:
        self._writes().execute(
            "UPDATE tlog_heads SET size = %s, root_hash = %s, signed_note = %s, updated_at = %s"
            " WHERE tenant_id = %s",
            (head.size, head.root_hash, head.signed_note, head.updated_at, head.tenant_id),
        )

    def take_queue(self, tenant_id: str) -> list[tuple[int, str, str, datetime, dict[str, Any]]]:
        """Consume the tenant's queued events: (event id, kind, request id, occurred at,
        payload), oldest first. Committed with the entries they become."""
        rows = self._writes().execute(
            "WITH taken AS (DELETE FROM tlog_queue WHERE tenant_id = %s RETURNING event_id)"
            " SELECT e.id, e.kind, coalesce(e.request_id, ''), e.occurred_at, e.payload"
            " FROM domain_events e JOIN taken t ON e.id = t.event_id"
            " WHERE e.tenant_id = %s ORDER BY e.id",
            (tenant_id, tenant_id),
        )
        return [(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def leaf_hashes(self, tenant_id: str, size: int) -> list[bytes]:
        rows = self._uow.execute(
            "SELECT leaf_hash FROM tlog_entries WHERE tenant_id = %s AND idx < %s ORDER BY idx",
            (tenant_id, size),
        )
        return [bytes(r[0]) for r in rows]

    def append(
        self,
        tenant_id: str,
        start: int,
        entries: list[tuple[str, bytes, bytes, int]],
        at: datetime,
    ) -> None:
        """Entries (kind, data, leaf hash, source event) at indices ``start``, ``start`` + 1…"""
        for offset, (kind, data, leaf, source) in enumerate(entries):
            self._writes().execute(
                "INSERT INTO tlog_entries (tenant_id, idx, kind, data, leaf_hash, source_event,"
                " integrated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (tenant_id, start + offset, kind, data, leaf, source, at),
            )

    def index_of(self, tenant_id: str, leaf: bytes) -> int | None:
        rows = self._uow.execute(
            "SELECT min(idx) FROM tlog_entries WHERE tenant_id = %s AND leaf_hash = %s",
            (tenant_id, leaf),
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def entry(self, tenant_id: str, index: int) -> bytes:
        rows = self._uow.execute(
            "SELECT data FROM tlog_entries WHERE tenant_id = %s AND idx = %s", (tenant_id, index)
        )
        if not rows:
            raise NotFound(f"no entry {index} in the log of {tenant_id}")
        return bytes(rows[0][0])

    def entries(
        self, tenant_id: str, start: int, count: int
    ) -> list[tuple[int, str, bytes, datetime]]:
        rows = self._uow.execute(
            "SELECT idx, kind, data, integrated_at FROM tlog_entries"
            " WHERE tenant_id = %s AND idx >= %s ORDER BY idx LIMIT %s",
            (tenant_id, start, count),
        )
        return [(int(r[0]), r[1], bytes(r[2]), r[3]) for r in rows]

    def batch_units(
        self, tenant_id: str, request_id: str, first: int, count: int
    ) -> list[tuple[str, str]]:
        """(code key, signature) of one issuance chunk, in serial order."""
        rows = self._uow.execute(
            "SELECT code_key, coalesce(signature, '') FROM codes WHERE tenant_id = %s"
            " AND request_id = %s AND seq >= %s AND seq < %s ORDER BY seq",
            (tenant_id, request_id, first, first + count),
        )
        return [(r[0], r[1]) for r in rows]

    def signatures(self, tenant_id: str, keys: list[str]) -> dict[str, str]:
        rows = self._uow.execute(
            "SELECT code_key, coalesce(signature, '') FROM codes"
            " WHERE tenant_id = %s AND code_key = ANY(%s)",
            (tenant_id, keys),
        )
        return {r[0]: r[1] for r in rows}

    def public_key(self, tenant_id: str, key_id: str) -> bytes | None:
        rows = self._uow.execute(
            "SELECT public_key FROM signing_keys WHERE tenant_id = %s AND key_id = %s",
            (tenant_id, key_id),
        )
        return bytes(rows[0][0]) if rows else None

    def batch_entry_of(
        self, tenant_id: str, code_key: str
    ) -> tuple[int, bytes, str, int, int] | None:
        """(entry index, entry bytes, request id, first seq, count) of the logged issuance
        chunk that holds the code; None when the code or its entry is not there."""
        # The code first (its shard), then the tenant's event and entry (the tenant's shard:
        # on Citus no join reaches both; MATERIALIZED reads the code once, on its own).
        rows = self._uow.execute(
            "WITH c AS MATERIALIZED (SELECT request_id, seq FROM codes"
            "  WHERE code_key = %(code)s AND tenant_id = %(tenant)s)"
            " SELECT t.idx, t.data, e.request_id, (e.payload ->> 'first')::bigint,"
            " (e.payload ->> 'count')::bigint"
            " FROM c JOIN domain_events e ON e.tenant_id = %(tenant)s"
            "  AND e.kind = 'codes.issued' AND e.request_id = c.request_id"
            "  AND (e.payload ->> 'first')::bigint <= c.seq"
            "  AND c.seq < (e.payload ->> 'first')::bigint + (e.payload ->> 'count')::bigint"
            " JOIN tlog_entries t ON t.tenant_id = %(tenant)s AND t.source_event = e.id",
            {"code": code_key, "tenant": tenant_id},
        )
        if not rows:
            return None
        r = rows[0]
        return int(r[0]), bytes(r[1]), str(r[2]), int(r[3]), int(r[4])
