"""The links a brand registers for its products: what the resolver lists in a product's
linkset and where its ``?linkType=gs1:…`` redirects go (the Verifier reads them through its
own port). Writes are idempotent by the state they set: putting the same links again, or
deleting a link already gone, changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from issuer.ports import IssuerStorage
from sealmark.clock import Clock
from sealmark.errors import InvalidArgument, NotFound, PermissionDenied
from sealmark.gs1 import normalize_gtin
from sealmark.gs1.links import (
    MAX_LINKS,
    ProductLink,
    checked_href,
    checked_lang,
    checked_links,
    link_type_name,
)
from sealmark.tenancy.model import Principal


@dataclass(frozen=True)
class LinkKey:
    """Which link to delete: as registered (the link type as a CURIE or short name)."""

    link_type: str
    href: str
    lang: str = ""
    context: str = ""


class ProductLinks:
    def __init__(self, storage: IssuerStorage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    def _owned(self, principal: Principal, gtin: str, field: str) -> str:
        """The 14-digit GTIN of one of the caller's registered products."""
        gtin14 = normalize_gtin(gtin, field)
        with self._storage.transaction() as tx:
            if not tx.tenants.get(principal.tenant_id).owns_gtin(gtin14):
                raise PermissionDenied(f"GTIN {gtin14} is not under your company prefixes")
            product = tx.products.get(gtin14)  # NotFound for an unregistered GTIN
            if product.tenant_id != principal.tenant_id:
                raise NotFound(f"product {gtin14} not found")
        return gtin14

    def listed(self, principal: Principal, gtin: str) -> tuple[str, list[ProductLink]]:
        """(GTIN-14, the product's links in order)."""
        gtin14 = self._owned(principal, gtin, "ListProductLinksRequest.gtin")
        with self._storage.transaction() as tx:
            return gtin14, tx.links.links(principal.tenant_id, gtin14)

    def put(
        self, principal: Principal, gtin: str, links: list[ProductLink], *, replace: bool
    ) -> tuple[str, list[ProductLink]]:
        """Add or update ``links`` (``replace``: and drop the product's others); every link is
        checked first, so a bad one writes nothing. Returns (GTIN-14, the links now)."""
        gtin14 = self._owned(principal, gtin, "SetProductLinksRequest.gtin")
        checked = checked_links(links, "SetProductLinksRequest.links")
        if not checked and not replace:
            raise InvalidArgument("SetProductLinksRequest.links", "give at least one link")

        def attempt() -> list[ProductLink]:
            with self._storage.transaction() as tx:
                store = tx.links
                store.put_links(
                    principal.tenant_id,
                    gtin14,
                    checked,
                    replace=replace,
                    at=self._clock.now(),
                    by=principal.token_id,
                )
                now = store.links(principal.tenant_id, gtin14)
                if len(now) > MAX_LINKS:  # rolled back: the block raises before commit
                    raise InvalidArgument(
                        "SetProductLinksRequest.links",
                        f"the product would have {len(now)} links, want at most {MAX_LINKS}",
                    )
                tx.commit()
                return now

        return gtin14, self._storage.retrying(attempt)

    def delete(
        self, principal: Principal, gtin: str, key: LinkKey
    ) -> tuple[str, list[ProductLink]]:
        """Remove one link (a link already gone is no error). Returns (GTIN-14, the links
        now)."""
        gtin14 = self._owned(principal, gtin, "DeleteProductLinkRequest.gtin")
        field = "DeleteProductLinkRequest"
        name = link_type_name(key.link_type) or key.link_type
        if not name:
            raise InvalidArgument(f"{field}.link_type", "required")
        href = checked_href(key.href, f"{field}.href")
        lang = checked_lang(key.lang, f"{field}.lang")

        def attempt() -> list[ProductLink]:
            with self._storage.transaction() as tx:
                tx.links.delete_link(principal.tenant_id, gtin14, (name, lang, key.context, href))
                now = tx.links.links(principal.tenant_id, gtin14)
                tx.commit()
                return now

        return gtin14, self._storage.retrying(attempt)
