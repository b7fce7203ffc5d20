"""The brand registers the pictures of its consumer page: its logo (for the whole tenant or
one product) and a product's image. The use case checks the caller owns the product (by its
company prefixes first, so another brand's GTIN is PermissionDenied whether or not it is
registered), checks and re-encodes the picture (:mod:`issuer.domain.media`) and stores it
through :class:`issuer.ports.ProductMediaStorage`. The Verifier reads the same rows through
its own port and serves them at ``/media/{sha256}.{ext}``."""

from __future__ import annotations

from issuer.domain.media import (
    MediaKind,
    StoredMedia,
    checked_alt,
    checked_kind,
    checked_media,
    digest,
)
from issuer.ports import ProductMediaStorage
from sealmark.clock import Clock
from sealmark.storage.ports import UnitOfWorkFactory
from sealmark.tenancy import usecases
from sealmark.tenancy.model import Principal


class ProductMediaRegistry:
    def __init__(
        self, storage: ProductMediaStorage, tenancy: UnitOfWorkFactory, clock: Clock
    ) -> None:
        self._storage = storage
        self._tenancy = tenancy
        self._clock = clock

    def set_media(
        self,
        principal: Principal,
        gtin: str,
        kind: str,
        content: bytes,
        alt: str = "",
        *,
        message: str = "SetProductMediaRequest",
    ) -> StoredMedia:
        """Store (or replace) the picture. InvalidArgument naming the field for a bad kind,
        alt text or picture; PermissionDenied / NotFound for a GTIN that is not the caller's
        product. Setting the same picture again changes nothing but ``updated_at``."""
        # The picture first: what a caller sends as content is the hostile part, and a
        # refusal of it names that field whatever else is wrong.
        body, media_type, width, height = checked_media(content, f"{message}.content")
        owner_gtin = self._owned(principal, gtin, f"{message}.gtin")
        media_kind = checked_kind(kind, owner_gtin, f"{message}.kind")
        text = checked_alt(alt, f"{message}.alt")
        media = StoredMedia(
            tenant_id=principal.tenant_id,
            gtin=owner_gtin,
            kind=media_kind,
            sha256=digest(body),
            media_type=media_type,
            width=width,
            height=height,
            body=body,
            alt=text,
            updated_at=self._clock.now(),
        )
        self._storage.put_media(media)
        return media

    def remove_media(
        self,
        principal: Principal,
        gtin: str,
        kind: str,
        *,
        message: str = "SetProductMediaRequest",
    ) -> bool:
        """Take the picture off the page; False when there was none."""
        owner_gtin = self._owned(principal, gtin, f"{message}.gtin")
        media_kind = checked_kind(kind, owner_gtin, f"{message}.kind")
        return self._storage.remove_media(principal.tenant_id, owner_gtin, media_kind)

    def media(self, principal: Principal, gtin: str, *, field: str) -> list[StoredMedia]:
        """The pictures registered for the product (gtin "": the tenant's own logo)."""
        owner_gtin = self._owned(principal, gtin, field)
        return self._storage.media(principal.tenant_id, owner_gtin)

    def _owned(self, principal: Principal, gtin: str, field: str) -> str:
        if not gtin:
            return ""
        return usecases.product_for(self._tenancy, principal, gtin, field=field).gtin


__all__ = ["MediaKind", "ProductMediaRegistry"]
