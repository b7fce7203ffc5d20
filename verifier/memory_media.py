"""An in-memory fake of :class:`verifier.ports.MediaReader`, for unit tests (same contract
as :mod:`verifier.postgres_media`, ``tests/contracts/verifier_storage.py``). Tests put the
rows the Issuer would have written with :meth:`MemoryMediaReader.put`."""

from __future__ import annotations

import threading

from verifier.ports import MediaBlob, MediaRef


class MemoryMediaReader:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str, str], tuple[MediaRef, bytes]] = {}
        self.reads = 0  # how many reads reached the store (to see a cache at work)

    def put(self, tenant_id: str, ref: MediaRef, body: bytes) -> None:
        with self._lock:
            self._rows[(tenant_id, ref.gtin, ref.kind)] = (ref, body)

    def media_refs(self, tenant_id: str, gtin: str) -> list[MediaRef]:
        with self._lock:
            self.reads += 1
            found = [
                ref
                for (t, g, _), (ref, _) in self._rows.items()
                if t == tenant_id and g in (gtin, "")
            ]
        return sorted(found, key=lambda r: (r.gtin, r.kind))

    def media_blob(self, sha256: str) -> MediaBlob | None:
        with self._lock:
            self.reads += 1
            for ref, body in self._rows.values():
                if ref.sha256 == sha256:
                    return MediaBlob(sha256, ref.media_type, body)
        return None
