"""The pictures on the consumer page, over HTTP: ``GET /media/{sha256}.{ext}`` and the facts
the verdict page needs to show a logo and a product image.

The URL names the bytes (their SHA-256), so an answer never changes: it is cached for a
year (``immutable``), revalidated by its ETag, and sent with ``nosniff`` (the type is the one
the Issuer found by decoding the picture, never guessed by a browser). The page's own CSP
(``img-src 'self' data:``, :func:`verifier.http.pages.secure`) lets it show these and no
picture from elsewhere."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any, Protocol

from verifier import messages
from verifier.domain import Verification
from verifier.http.requests import Request, RequestView, Response
from verifier.media import EXTENSIONS, ShownMedia, path_of
from verifier.ports import MediaBlob, MediaRef

MEDIA_PREFIX = "/media/"
MEDIA_CACHE = "public, max-age=31536000, immutable"
_PATH = re.compile(r"/media/([0-9a-f]{64})\.(png|jpg|webp)")


class MediaPort(Protocol):
    """What the page needs of :class:`verifier.media.PageMedia`."""

    def shown(self, tenant_id: str, gtin: str) -> ShownMedia: ...

    def blob(self, sha256: str) -> MediaBlob | None: ...


def media_response(media: MediaPort, request: Request, view: RequestView) -> Response | None:
    """The picture at ``view.path``; None when there is none (the caller answers 404).
    Raises Unavailable when the store cannot be reached."""
    match = _PATH.fullmatch(view.path)
    if match is None:
        return None
    blob = media.blob(match.group(1))
    if blob is None or EXTENSIONS.get(blob.media_type) != match.group(2):
        return None
    etag = f'"{blob.sha256}"'
    headers = [
        ("Cache-Control", MEDIA_CACHE),
        ("ETag", etag),
        ("Cross-Origin-Resource-Policy", "same-site"),
    ]
    asked = request.headers.get("If-None-Match", "")
    if etag in (tag.strip() for tag in asked.split(",")) or asked.strip() == "*":
        return Response(HTTPStatus.NOT_MODIFIED, b"", blob.media_type, headers)
    body = b"" if request.method == "HEAD" else blob.body
    return Response(HTTPStatus.OK, body, blob.media_type, headers)


def media_facts(media: MediaPort | None, verification: Verification, locale: str) -> dict[str, Any]:
    """``logo`` and ``image`` for the verdict page: dicts of src, width, height and alt, or
    None. Only a code the brand issued shows the brand's pictures: a counterfeit's page
    must not look like the brand's."""
    product = verification.product
    if media is None or product is None or not verification.tenant_id:
        return {"logo": None, "image": None}
    shown = media.shown(verification.tenant_id, product.gtin)
    logo_alt = messages.media_alt("logo", product.brand or product.name, locale)
    image_alt = messages.media_alt("image", product.name or product.brand, locale)
    return {
        "logo": _picture(shown.logo, logo_alt),
        "image": _picture(shown.image, image_alt),
    }


def media_json(media: MediaPort | None, verification: Verification) -> dict[str, str] | None:
    product = verification.product
    if media is None or product is None or not verification.tenant_id:
        return None
    shown = media.shown(verification.tenant_id, product.gtin)
    found = {"logo": shown.logo, "image": shown.image}
    return {kind: path_of(ref) for kind, ref in found.items() if ref is not None}


def _picture(ref: MediaRef | None, alt: str) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"src": path_of(ref), "width": ref.width, "height": ref.height, "alt": ref.alt or alt}
