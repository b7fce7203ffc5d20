"""An in-memory fake of :class:`issuer.ports.ProductMediaStorage`, for unit tests; same
contract as :mod:`issuer.postgres_media` (``tests/contracts/issuer_storage.py``). Tenants
and products come from the tenancy fake (:class:`sealmark.storage.memory.MemoryStore`)."""

from __future__ import annotations

import threading

from issuer.domain.media import MediaKind, StoredMedia
from sealmark.errors import NotFound
from sealmark.storage.memory import MemoryStore


class MemoryProductMedia:
    def __init__(self, tenancy: MemoryStore) -> None:
        self._tenancy = tenancy
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str, str], StoredMedia] = {}

    def put_media(self, media: StoredMedia) -> None:
        with self._tenancy.lock:
            committed = self._tenancy.committed
            if media.gtin == "":
                known = media.tenant_id in committed.tenants
            else:
                product = committed.products.get(media.gtin)
                known = product is not None and product.tenant_id == media.tenant_id
        if not known:
            what = f"product {media.gtin}" if media.gtin else f"tenant {media.tenant_id}"
            raise NotFound(f"{what} not found")
        with self._lock:
            self._rows[(media.tenant_id, media.gtin, media.kind.value)] = media

    def media(self, tenant_id: str, gtin: str) -> list[StoredMedia]:
        with self._lock:
            found = [m for (t, g, _), m in self._rows.items() if (t, g) == (tenant_id, gtin)]
        return sorted(found, key=lambda m: m.kind.value)

    def remove_media(self, tenant_id: str, gtin: str, kind: MediaKind) -> bool:
        with self._lock:
            return self._rows.pop((tenant_id, gtin, kind.value), None) is not None

    def rows(self) -> list[StoredMedia]:
        """Every stored picture (what the Verifier's fake is fed in tests)."""
        with self._lock:
            return list(self._rows.values())
