"""The pictures on the consumer page: which logo and product image a verdict shows, and the
bytes behind ``/media/{sha256}.{ext}``.

A product's own logo wins over its brand's (tenant-wide) one. Lookups per product are cached
for :data:`REFS_TTL_S` (a brand changing its logo sees it within that); bytes are cached by
digest for as long as they fit in :data:`BLOB_CACHE_BYTES`, since a digest's bytes never
change. A failing store is never the page's failure: the page is then shown without
pictures (the verdict matters, the logo does not)."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import structlog

from sealmark.errors import SealmarkError
from verifier.ports import MediaBlob, MediaReader, MediaRef

log = structlog.get_logger("sealmark.verifier")

REFS_TTL_S = 60.0
FAILED_TTL_S = 5.0  # after a failed lookup, the page goes without pictures this long
BLOB_CACHE_BYTES = 32 * 1024 * 1024
_REFS_KEPT = 10_000
DIGEST = re.compile(r"[0-9a-f]{64}")
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@dataclass(frozen=True)
class ShownMedia:
    logo: MediaRef | None = None
    image: MediaRef | None = None


def path_of(ref: MediaRef) -> str:
    """The picture's content-addressed URL path."""
    return f"/media/{ref.sha256}.{EXTENSIONS[ref.media_type]}"


class PageMedia:
    def __init__(self, reader: MediaReader) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._refs: OrderedDict[tuple[str, str], tuple[float, ShownMedia]] = OrderedDict()
        self._blobs: OrderedDict[str, MediaBlob] = OrderedDict()
        self._blob_bytes = 0

    def shown(self, tenant_id: str, gtin: str) -> ShownMedia:
        """The logo and image the page of this product shows (either may be None)."""
        key = (tenant_id, gtin)
        now = time.monotonic()
        with self._lock:
            hit = self._refs.get(key)
            if hit is not None and now - hit[0] <= REFS_TTL_S:
                return hit[1]
        try:
            refs = self._reader.media_refs(tenant_id, gtin)
        except SealmarkError as exc:
            log.warning("verifier.media_unavailable", error=type(exc).__name__)
            with self._lock:  # no pictures for a few seconds, not one failed read per scan
                self._refs[key] = (now - REFS_TTL_S + FAILED_TTL_S, ShownMedia())
            return ShownMedia()
        own = {r.kind: r for r in refs if r.gtin == gtin}
        brand = {r.kind: r for r in refs if r.gtin == ""}
        shown = ShownMedia(logo=own.get("logo") or brand.get("logo"), image=own.get("image"))
        with self._lock:
            self._refs[key] = (now, shown)
            self._refs.move_to_end(key)
            while len(self._refs) > _REFS_KEPT:
                self._refs.popitem(last=False)
        return shown

    def blob(self, sha256: str) -> MediaBlob | None:
        """The bytes named by ``sha256``; None for a digest no picture has (or a malformed
        one). Raises Unavailable when the store cannot be reached."""
        if not DIGEST.fullmatch(sha256):
            return None
        with self._lock:
            hit = self._blobs.get(sha256)
            if hit is not None:
                self._blobs.move_to_end(sha256)
                return hit
        found = self._reader.media_blob(sha256)
        if found is not None and len(found.body) <= BLOB_CACHE_BYTES // 8:
            with self._lock:
                if sha256 not in self._blobs:
                    self._blobs[sha256] = found
                    self._blob_bytes += len(found.body)
                while self._blob_bytes > BLOB_CACHE_BYTES:
                    _, dropped = self._blobs.popitem(last=False)
                    self._blob_bytes -= len(dropped.body)
        return found
