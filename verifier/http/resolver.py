"""The GS1-Conformant resolver on the consumer page (GS1-Conformant Resolver 1.2, GS1 Digital
Link URI Syntax 1.2, RFC 9264): the linkset, ``linkType`` selection, the product, lot and SSCC
pages, and the ``Link`` header every Digital Link answer carries.

A serialised item's link without a ``linkType`` (or with ``gs1:defaultLink`` or
``gs1:verificationService``) is the verification page, answered by
:class:`verifier.http.app.VerifyApp` itself; this module answers everything else:

- ``?linkType=linkset`` (or the deprecated ``all``), or ``Accept: application/linkset+json``:
  the linkset (200, ``application/linkset+json``; ``application/json`` when only that is
  accepted), with a Link header to its JSON-LD context;
- ``?linkType=gs1:…`` of a registered link: 307 to it (the request's query passed on, less
  ``linkType``), 300 with the choices when several fit equally (language, context, media
  type), 404 when the product has none of that type;
- a ``linkType`` that names no GS1 link type: 404 with a readable page or JSON error;
- ``/01/{gtin}`` and ``/01/{gtin}/10/{lot}``: the product or lot page (HTML, or JSON when
  asked), 404 for a GTIN nobody registered; ``/00/{sscc}``: a logistic unit's page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote

from sealmark.errors import InvalidArgument, Unavailable
from sealmark.gs1.digital_link import build_digital_link, parse_digital_link
from sealmark.gs1.links import GS1_PREFIX, GS1_VOC, ProductLink
from verifier import messages
from verifier.http.pages import Pages, json_response
from verifier.http.requests import Request, RequestView, Response
from verifier.linkset import (
    LINKSET_TYPE,
    Anchor,
    Ask,
    accept_languages,
    accept_media_types,
    context_header,
    link_header,
    linkset,
    product_anchor,
    read_link_type,
    redirect_target,
    select,
    target_object,
)
from verifier.ports import CatalogEntry
from verifier.resolver import ProductView
from verifier.resolver_messages import TEXTS


class ResolverPort(Protocol):
    """What this face needs of :class:`verifier.resolver.Resolver`."""

    def entry(self, gtin: str) -> CatalogEntry | None: ...

    def links(self, gtin: str) -> list[ProductLink] | None: ...

    def view(self, gtin: str, lot: str | None) -> ProductView | None: ...

    def sscc_brand(self, sscc: str) -> str | None: ...


def wants_linkset(accept: str) -> bool:
    """True when the Accept header names the linkset media type (with q > 0)."""
    return "linkset" in accept and LINKSET_TYPE in accept_media_types(accept)


def link_type_param(raw_query: str) -> str | None:
    """The percent-decoded ``linkType`` of a raw query (the first one), None when absent."""
    for item in raw_query.split("&"):
        key, sep, value = item.partition("=")
        if key == "linkType":
            try:
                return unquote(value, errors="strict") if sep else ""
            except UnicodeDecodeError:
                return "\ufffd"  # names no link type: answered 404 like any unknown one
    return None


class _Link:
    """Where one answer is: its key pairs (no query), the resolver's stem and the request."""

    def __init__(self, pairs: list[tuple[str, str]], stem: str, payload: str) -> None:
        self.pairs = pairs
        self.primary, self.key = pairs[0]
        values = dict(pairs)
        self.serial = values.get("21") if self.primary == "01" else None
        self.lot = values.get("10") if self.primary == "01" else None
        self.stem = stem
        self.payload = payload  # the request URI, less our own lang parameter

    def uri(self, pairs: Sequence[tuple[str, str]]) -> str:
        return build_digital_link(pairs, self.stem, "link")

    @property
    def path_pairs(self) -> list[tuple[str, str]]:
        qualifiers = {"01": ("22", "10", "21", "235")}.get(self.primary, ())
        return [(ai, v) for ai, v in self.pairs if ai == self.primary or ai in qualifiers]

    @property
    def anchor(self) -> str:
        return self.uri(self.path_pairs)

    @property
    def default_href(self) -> str:
        """The default link of the request's entity: this page (a serialised item's with the
        query that makes it verifiable, less ``linkType``)."""
        if self.serial is None:
            return self.anchor
        base, _, query = self.payload.partition("?")
        return redirect_target(base, query)


def stem_of(view: RequestView, host: str) -> str:
    """``scheme://host[/prefix]``: the path before the Digital Link's primary key."""
    segments = view.path.split("/")[1:]
    keys = range(len(segments) - 2, -1, -2)
    start = next((i for i in keys if segments[i] in ("01", "00")), 0)
    prefix = "".join(f"/{s}" for s in segments[:start])
    return f"{view.scheme}://{host}{prefix}"


class ResolverFace:
    """The resolver's answers, rendered with the consumer page's templates."""

    def __init__(self, resolver: ResolverPort, pages: Pages, fallback_host: str) -> None:
        self._resolver = resolver
        self._pages = pages
        self._fallback_host = fallback_host

    # ------------------------------------------------------------------ entry points

    def asks_resolver(self, request: Request, view: RequestView) -> bool:
        """True when the request asks for a link type or the linkset (cheap: no parse)."""
        return "linkType=" in view.raw_query or wants_linkset(request.headers.get("Accept", ""))

    @staticmethod
    def link_header_for(payload: str) -> str:
        """The Link header of a serialised item's verification page at ``payload`` (the
        request URI less ``lang``; no parse: the page's own URI is its default link, the
        linkset is one query away). On every scan, so the common case is two slices."""
        base, _, query = payload.partition("?")
        default = payload if "linkType" not in query else redirect_target(base, query)
        return link_header(base + "?linkType=linkset", default)

    def answer(self, request: Request, view: RequestView) -> Response | None:
        """The resolver's answer, or None when it is the verification page's to give."""
        link = self._parse(view)
        if not isinstance(link, _Link):
            return link
        ask = read_link_type(link_type_param(view.raw_query))
        if ask.ask is Ask.UNKNOWN:
            return self._not_found(
                view, link, f"linkType {ask.name!r} is not a GS1 link type this resolver knows"
            )
        if ask.ask is Ask.LINKSET or (
            ask.ask is Ask.DEFAULT and wants_linkset(request.headers.get("Accept", ""))
        ):
            return self._linkset(request, view, link)
        own = ask.ask is Ask.DEFAULT or (
            ask.name == "verificationService" and link.serial is not None
        )
        if own:
            return None if link.serial is not None else self._own_page(request, view, link)
        return self._select(request, view, link, ask.name)

    def non_serialised(self, request: Request, view: RequestView) -> Response | None:
        """The page of a link without a serial ((01) with or without a lot, (00)), None when
        the link does not parse or has a serial (the caller's error stands)."""
        link = self._parse(view, quiet=True)
        if not isinstance(link, _Link) or link.serial is not None:
            return None
        return self._own_page(request, view, link)

    # -------------------------------------------------------------------- answers

    def _parse(self, view: RequestView, *, quiet: bool = False) -> _Link | Response | None:
        host = view.host(self._fallback_host)
        payload = view.payload(self._fallback_host)
        try:
            pairs = parse_digital_link(payload, "link")
            return _Link(pairs, stem_of(view, host), payload)
        except InvalidArgument as exc:
            if quiet:
                return None
            return self._pages.error(view, HTTPStatus.BAD_REQUEST, "error_bad_link", exc.message)

    def _headers(self, response: Response, link: _Link, *, cache: str = "no-store") -> Response:
        present = {name.lower() for name, _ in response.headers}
        response.headers += [
            ("Link", link_header(link.anchor + "?linkType=linkset", link.default_href)),
            ("Access-Control-Expose-Headers", "Link, Location"),
            ("Vary", "Accept, Accept-Language"),
        ]
        if "access-control-allow-origin" not in present:  # one value: "*, *" is refused
            response.headers.append(("Access-Control-Allow-Origin", "*"))
        if "cache-control" not in present:
            response.headers.append(("Cache-Control", cache))
        return response

    def _not_found(self, view: RequestView, link: _Link, detail: str) -> Response:
        response = self._pages.error(view, HTTPStatus.NOT_FOUND, "error_not_found", detail)
        return self._headers(response, link)

    def _unavailable(self, view: RequestView) -> Response:
        response = self._pages.error(view, HTTPStatus.SERVICE_UNAVAILABLE, "error_unavailable")
        response.headers.append(("Retry-After", "30"))
        return response

    def _anchors(self, link: _Link) -> tuple[list[Anchor], bool] | None:
        """The linkset's anchors, most granular first; None for an unregistered GTIN or an
        SSCC of no brand of ours. The bool: whether it is the request's own anchor that
        has registered links (so a cache may keep it a while)."""
        texts = TEXTS[messages.EN]
        if link.primary == "00":
            brand = self._resolver.sscc_brand(link.key)
            if brand is None:
                return None
            description = f"{texts['sscc_name']} {link.key} ({brand})"
            return [product_anchor(link.anchor, description, [])], False
        entry = self._resolver.entry(link.key)
        links = self._resolver.links(link.key)
        if entry is None or links is None:
            return None
        anchors: list[Anchor] = []
        if link.serial is not None:
            serialised = Anchor(link.anchor, f"{entry.name}, serial {link.serial}")
            serialised.add("defaultLink", {"href": link.default_href, "title": entry.name})
            serialised.add(
                "verificationService",
                {"href": link.default_href, "title": "Verify this item", "type": "text/html"},
            )
            anchors.append(serialised)
        if link.lot is not None:
            lot_uri = link.uri([("01", link.key), ("10", link.lot)])
            anchors.append(product_anchor(lot_uri, f"{entry.name}, lot {link.lot}", []))
        product_uri = link.uri([("01", link.key)])
        anchors.append(product_anchor(product_uri, f"{entry.name} ({entry.brand})", links))
        return anchors, bool(links)

    def _linkset(self, request: Request, view: RequestView, link: _Link) -> Response:
        try:
            found = self._anchors(link)
        except Unavailable:
            return self._unavailable(view)
        if found is None:
            return self._not_found(view, link, "no product or brand is registered for this key")
        body = linkset(found[0])
        accept = accept_media_types(request.headers.get("Accept", ""))
        plain_json = "application/json" in accept and LINKSET_TYPE not in accept
        response = json_response(HTTPStatus.OK, body, cache="no-store")
        if not plain_json:
            response.content_type = LINKSET_TYPE
        response.headers.append(("Link", context_header()))
        return self._headers(response, link)

    def _select(self, request: Request, view: RequestView, link: _Link, name: str) -> Response:
        try:
            links = [] if link.primary == "00" else self._resolver.links(link.key)
        except Unavailable:
            return self._unavailable(view)
        if links is None:
            return self._not_found(view, link, "no product is registered with this GTIN")
        chosen = select(
            links,
            name,
            languages=accept_languages(request.headers.get("Accept-Language", "")),
            context=_query_value(view.raw_query, "context"),
            media_types=accept_media_types(request.headers.get("Accept", "")),
        )
        if not chosen:
            return self._not_found(view, link, f"no gs1:{name} link is registered for this item")
        if len(chosen) == 1:
            target = redirect_target(chosen[0].href, view.raw_query)
            response = Response(HTTPStatus.TEMPORARY_REDIRECT, headers=[("Location", target)])
            return self._headers(response, link)
        if view.wants_json or wants_linkset(request.headers.get("Accept", "")):
            body = linkset([_choice_anchor(link.anchor, chosen)])
            response = json_response(HTTPStatus.MULTIPLE_CHOICES, body, cache="no-store")
        else:
            response = self._pages.page(
                HTTPStatus.MULTIPLE_CHOICES,
                "choices.html",
                view,
                {"R": TEXTS[view.locale], "links": chosen},
            )
        return self._headers(response, link)

    def _own_page(self, request: Request, view: RequestView, link: _Link) -> Response:
        try:
            facts = self._facts(view, link)
        except Unavailable:
            return self._unavailable(view)
        if facts is None:
            detail = (
                "no brand of ours uses this SSCC's company prefix"
                if link.primary == "00"
                else "no product is registered with this GTIN"
            )
            return self._not_found(view, link, detail)
        page, body = facts
        if request.method == "HEAD":
            return self._headers(Response(HTTPStatus.OK), link)
        if view.wants_json:
            response = json_response(HTTPStatus.OK, body, cache="no-store")
        else:
            response = self._pages.page(HTTPStatus.OK, "product.html", view, page)
        return self._headers(response, link)

    def _facts(
        self, view: RequestView, link: _Link
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(the page's facts, the JSON body) of a product, lot or SSCC; None when unknown."""
        texts, labels = TEXTS[view.locale], messages.labels(view.locale)
        linkset_href = link.anchor + "?linkType=linkset"
        if link.primary == "00":
            brand = self._resolver.sscc_brand(link.key)
            if brand is None:
                return None
            rows = [(texts["sscc"], link.key), (labels["brand"], brand)]
            page = _page(texts["sscc_heading"], texts["sscc_text"], "neutral", "sscc", rows, [])
            page.update(R=texts, linkset_href=linkset_href)
            sscc = {"kind": "sscc", "sscc": link.key, "brand": brand, "linkset": linkset_href}
            return page, sscc
        product = self._resolver.view(link.key, link.lot)
        if product is None:
            return None
        entry = product.entry
        rows = [(labels["name"], entry.name), (labels["brand"], entry.brand)]
        rows.append((labels["gtin"], entry.gtin))
        body: dict[str, Any] = {
            "kind": "product" if link.lot is None else "lot",
            "gtin": entry.gtin,
            "name": entry.name,
            "brand": entry.brand,
            "recalled": product.product_recall is not None,
            "links": [_link_json(item) for item in product.links],
            "linkset": linkset_href,
            "locale": view.locale,
        }
        if product.product_recall is not None:
            tone, text = "bad", texts["product_recalled"]
            body["recall_reason"] = product.product_recall
            rows.append((texts["recall_reason"], product.product_recall))
        else:
            tone, text = "neutral", texts["product_ok"]
        status = product.lot_status
        if link.lot is not None and status is not None:
            rows.insert(2, (labels["lot"], link.lot))
            if status.recalled:
                lot_state, tone, text = "recalled", "bad", texts["lot_recalled"]
                if product.product_recall is None:
                    rows.append((texts["recall_reason"], status.recall_reason))
            elif status.held:
                lot_state, tone, text = "held", "caution", texts["lot_held"]
                if status.hold_reason:
                    rows.append((texts["hold_reason"], status.hold_reason))
            elif not status.issued:
                lot_state, tone, text = "unknown", "caution", texts["lot_unknown"]
            else:
                lot_state, tone, text = "released", "neutral", texts["lot_ok"]
            body["lot"] = {
                "lot": link.lot,
                "status": lot_state,
                "recall_reason": status.recall_reason if status.recalled else None,
                "hold_reason": status.hold_reason if status.held else None,
                "message": text,
            }
        body["message"] = text
        kind = str(body["kind"])
        page = _page(entry.name, text, tone, kind, [(k, v) for k, v in rows if v], product.links)
        page.update(R=texts, linkset_href=linkset_href)
        return page, body


def _page(
    heading: str,
    text: str,
    tone: str,
    kind: str,
    rows: list[tuple[str, str]],
    links: Sequence[ProductLink],
) -> dict[str, Any]:
    return {
        "heading": heading,
        "status_text": text,
        "tone": tone,
        "kind": kind,
        "status_code": 200,
        "rows": rows,
        "links": list(links),
    }


def _link_json(link: ProductLink) -> dict[str, Any]:
    out: dict[str, Any] = {"linkType": link.curie, **target_object(link)}
    return out


def _choice_anchor(uri: str, links: Sequence[ProductLink]) -> Anchor:
    anchor = Anchor(uri, "choices")
    for link in links:
        anchor.add(link.link_type, target_object(link))
    return anchor


def _query_value(raw_query: str, name: str) -> str:
    for item in raw_query.split("&"):
        key, _, value = item.partition("=")
        if key == name:
            try:
                return unquote(value, errors="strict")[:64]
            except UnicodeDecodeError:
                return ""
    return ""


def resolver_description(root: str, *, sscc: bool) -> Mapping[str, Any]:
    """The ``/.well-known/gs1resolver`` description (GS1-Conformant Resolver 1.2 schema):
    what this resolver really answers: (01) GTIN links always, (00) SSCC links when the
    resolver's catalog is there (``sscc``)."""
    return {
        "name": "Sealmark verifier",
        "resolverRoot": root,
        "supportedLinkType": [{"namespace": GS1_VOC, "prefix": GS1_PREFIX}],
        "supportedPrimaryKeys": ["01", "00"] if sscc else ["01"],
        "linkTypeDefaultCanBeLinkset": False,
        "linkTypeDefaultCanBeAll": False,
        "supportedContextValuesEnumerated": [],
        "supportedContextValuesExternal": [],
    }
