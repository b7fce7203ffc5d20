"""The transparency-log store of the in-memory fakes (see :mod:`audit.memory`)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from audit.memory_stores import Reads
from audit.memory_tables import Entry
from audit.ports import Head
from sealmark.errors import AlreadyExists, NotFound


class MemoryTlogStore(Reads):
    def head(self, tenant_id: str, lock: bool = False) -> Head | None:
        return self._s.heads.get(tenant_id)

    def create_head(self, head: Head) -> None:
        self._write().heads.setdefault(head.tenant_id, head)

    def update_head(self, head: Head) -> None:
        stored = self._write().heads[head.tenant_id]
        self._s.heads[head.tenant_id] = Head(
            stored.tenant_id,
            stored.origin,
            stored.key_name,
            stored.public_key,
            stored.private_key_pem,
            head.size,
            head.root_hash,
            head.signed_note,
            head.updated_at,
        )

    def take_queue(self, tenant_id: str) -> list[tuple[int, str, str, datetime, dict[str, Any]]]:
        state = self._write()
        events = {e.id: e for e in state.events}
        taken = sorted(i for i in state.queue if events[i].tenant_id == tenant_id)
        state.queue = [i for i in state.queue if i not in set(taken)]
        return [
            (
                i,
                events[i].kind,
                events[i].request_id or "",
                events[i].occurred_at,
                copy.deepcopy(events[i].payload),
            )
            for i in taken
        ]

    def _entries(self, tenant_id: str) -> list[Entry]:
        return self._s.entries.get(tenant_id, [])

    def leaf_hashes(self, tenant_id: str, size: int) -> list[bytes]:
        return [e.leaf for e in self._entries(tenant_id) if e.index < size]

    def append(
        self, tenant_id: str, start: int, entries: list[tuple[str, bytes, bytes, int]], at: datetime
    ) -> None:
        log = self._write().entries.setdefault(tenant_id, [])
        taken = {e.index for e in log}
        for offset, (kind, data, leaf, source) in enumerate(entries):
            if start + offset in taken:
                raise AlreadyExists(f"entry {start + offset} of {tenant_id} exists")
            log.append(Entry(start + offset, kind, data, leaf, source, at))
        log.sort(key=lambda e: e.index)

    def index_of(self, tenant_id: str, leaf: bytes) -> int | None:
        return min((e.index for e in self._entries(tenant_id) if e.leaf == leaf), default=None)

    def entry(self, tenant_id: str, index: int) -> bytes:
        for e in self._entries(tenant_id):
            if e.index == index:
                return bytes(e.data)
        raise NotFound(f"no entry {index} in the log of {tenant_id}")

    def entries(
        self, tenant_id: str, start: int, count: int
    ) -> list[tuple[int, str, bytes, datetime]]:
        found = [e for e in self._entries(tenant_id) if e.index >= start][:count]
        return [(e.index, e.kind, bytes(e.data), e.at) for e in found]

    def batch_units(
        self, tenant_id: str, request_id: str, first: int, count: int
    ) -> list[tuple[str, str]]:
        codes = [
            c
            for c in self._s.codes.values()
            if c.tenant_id == tenant_id
            and c.request_id == request_id
            and c.seq is not None
            and first <= c.seq < first + count
        ]
        return [(c.key, c.signature or "") for c in sorted(codes, key=lambda c: c.seq or 0)]

    def signatures(self, tenant_id: str, keys: list[str]) -> dict[str, str]:
        codes = (self._s.codes.get(k) for k in keys)
        return {c.key: c.signature or "" for c in codes if c and c.tenant_id == tenant_id}

    def public_key(self, tenant_id: str, key_id: str) -> bytes | None:
        return self._s.signing_keys.get((tenant_id, key_id))

    def batch_entry_of(
        self, tenant_id: str, code_key: str
    ) -> tuple[int, bytes, str, int, int] | None:
        c = self._s.codes.get(code_key)
        if c is None or c.tenant_id != tenant_id or c.seq is None:
            return None
        for e in self._s.events:
            first, count = int(e.payload.get("first", -1)), int(e.payload.get("count", 0))
            if (
                e.tenant_id == tenant_id
                and e.kind == "codes.issued"
                and e.request_id == c.request_id
                and first <= c.seq < first + count
            ):
                for entry in self._entries(tenant_id):
                    if entry.source == e.id:
                        return entry.index, bytes(entry.data), str(e.request_id), first, count
        return None
