"""The resolver's rules (GS1-Conformant Resolver 1.2), pure: what a request asks for, which
registered links answer it, and the linkset (RFC 9264 JSON, ``application/linkset+json``).

Every identified entity (the serialised item, its lot, its product) has exactly one default
link, and ours is the resolver's own page: the verification page for a serialised item, the
lot or product page otherwise. So a request without a ``linkType`` is answered in place (no
redirect), and the brand's registered links (GS1 Web Vocabulary link types) are reached by
``linkType`` (a 307 redirect to the one best link, 300 when several fit equally) or listed in
the linkset. Links are registered per product (GTIN); a lot or serial request walks up to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sealmark.gs1.links import (
    GS1_PREFIX,
    LINK_TYPES,
    LINKSET_VALUES,
    ProductLink,
    link_type_name,
    voc_uri,
)

LINKSET_TYPE = "application/linkset+json"
LINKSET_CONTEXT = "https://ref.gs1.org/standards/resolver/linkset-context"
# Link types the resolver answers with its own page (the default link, and the verification
# service of a serialised item).
OWN_TYPES = frozenset({"defaultLink", "defaultLinkMulti", "verificationService"})


class Ask(Enum):
    """What the ``linkType`` of a request asks for."""

    DEFAULT = "default"  # no linkType, or gs1:defaultLink: the resolver's own page
    LINKSET = "linkset"  # linkType=linkset (or the deprecated all)
    TYPE = "type"  # one GS1 link type
    UNKNOWN = "unknown"  # a value that names no GS1 link type: 404


@dataclass(frozen=True)
class LinkTypeAsk:
    ask: Ask
    name: str = ""  # the short name for TYPE (and the raw value for UNKNOWN)


def read_link_type(raw: str | None) -> LinkTypeAsk:
    """The request's ``linkType`` value (percent-decoded), None when absent."""
    if raw is None or raw == "":
        return LinkTypeAsk(Ask.DEFAULT)
    if raw in LINKSET_VALUES:
        return LinkTypeAsk(Ask.LINKSET)
    name = link_type_name(raw)
    if name is None:
        return LinkTypeAsk(Ask.UNKNOWN, raw[:100])
    if name in ("defaultLink", "defaultLinkMulti"):
        return LinkTypeAsk(Ask.DEFAULT)
    return LinkTypeAsk(Ask.TYPE, name)


def accept_languages(header: str) -> list[str]:
    """The languages of an Accept-Language header, most preferred first (q 0 dropped, ``*``
    ignored), lower case."""
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(header[:1024].split(",")):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag and tag != "*" and q > 0.0 and len(tag) <= 35:
            ranked.append((-q, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def accept_media_types(header: str) -> list[str]:
    """The concrete media types an Accept header names with q > 0 (no wildcards)."""
    kinds: list[str] = []
    for item in header[:1024].split(","):
        kind, _, params = item.strip().partition(";")
        kind = kind.strip().lower()
        refused = any(
            p.strip().lower().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000")
            for p in params.split(";")
        )
        if kind and "*" not in kind and not refused:
            kinds.append(kind)
    return kinds


def _lang_fits(asked: str, offered: str) -> bool:
    """``en-GB`` asked fits a link in ``en`` and ``en`` fits ``en-GB`` (RFC 4647 lookup in
    both directions, by whole subtags)."""
    offered = offered.lower()
    return asked == offered or offered.startswith(asked + "-") or asked.startswith(offered + "-")


def select(
    links: Sequence[ProductLink],
    link_type: str,
    *,
    languages: Sequence[str] = (),
    context: str = "",
    media_types: Sequence[str] = (),
) -> list[ProductLink]:
    """The links of ``link_type`` that best fit the request: narrowed by context (those with
    the asked one, else those without any, if there are such), then by the first asked
    language some link has (else the language-neutral links, else all), then by media type
    (when the request names one a link has). Empty: no link of that type. One: redirect to
    it. More: 300 Multiple Choices, they fit equally."""
    candidates = [link for link in links if link.link_type == link_type]
    if not candidates:
        return []
    narrowed = [link for link in candidates if link.context == context] if context else []
    if not narrowed:  # none for the asked context: a link meant for no context fits best
        narrowed = [link for link in candidates if not link.context]
    candidates = narrowed or candidates
    for asked in languages:
        fits = [link for link in candidates if link.lang and _lang_fits(asked, link.lang)]
        if fits:
            candidates = fits
            break
    else:
        neutral = [link for link in candidates if not link.lang]
        candidates = neutral or candidates
    if len(candidates) > 1 and media_types:
        typed = [link for link in candidates if link.media_type in media_types]
        candidates = typed or candidates
    return candidates


def redirect_target(href: str, query: str) -> str:
    """The link's URL with the request's query passed on (the resolver standard's default),
    less ``linkType``; ``query`` is the raw query string of the request."""
    items = [
        item for item in query.split("&") if item and item.partition("=")[0] not in ("linkType", "")
    ]
    if not items:
        return href
    base, _, fragment = href.partition("#")
    joined = base + ("&" if "?" in base else "?") + "&".join(items)
    return joined + (f"#{fragment}" if fragment else "")


@dataclass
class Anchor:
    """One identified entity of a linkset: its Digital Link (no query), a description, and
    its links by link type short name, each as RFC 9264 target objects."""

    uri: str
    description: str
    links: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, link_type: str, target: dict[str, Any]) -> None:
        self.links.setdefault(link_type, []).append(target)


def target_object(link: ProductLink) -> dict[str, Any]:
    """A registered link as a linkset target object (href, title, type, hreflang, context)."""
    target: dict[str, Any] = {"href": link.href, "title": link.title}
    if link.media_type:
        target["type"] = link.media_type
    if link.lang:
        target["hreflang"] = [link.lang]
    if link.context:
        target["context"] = [link.context]
    return target


def product_anchor(uri: str, description: str, links: Sequence[ProductLink]) -> Anchor:
    """The product's anchor: its default link (the product page, ``uri`` itself, title only
    as the standard wants) and the brand's links in registration order."""
    anchor = Anchor(uri, description)
    anchor.add("defaultLink", {"href": uri, "title": description})
    for link in links:
        anchor.add(link.link_type, target_object(link))
    return anchor


def linkset(anchors: Sequence[Anchor]) -> dict[str, Any]:
    """The RFC 9264 JSON linkset, most granular anchor first; link relation types are the
    GS1 vocabulary's URIs (``https://gs1.org/voc/pip``)."""
    out: list[dict[str, Any]] = []
    for anchor in anchors:
        entry: dict[str, Any] = {"anchor": anchor.uri, "description": anchor.description}
        entry["itemDescription"] = anchor.description  # read by resolvers of the 1.0 era
        for name, targets in anchor.links.items():
            entry[voc_uri(name)] = targets
        out.append(entry)
    return {"linkset": out}


def link_header(linkset_uri: str, default_href: str) -> str:
    """The ``Link`` header of a resolver answer: where the linkset is, and the default link
    (by its URI relation type: CURIE relations in a Link header are the deprecated form)."""
    return (
        f'<{linkset_uri}>; rel="linkset"; type="{LINKSET_TYPE}", '
        f'<{default_href}>; rel="{voc_uri("defaultLink")}"'
    )


def context_header() -> str:
    """The ``Link`` header of a linkset answer: the JSON-LD context that makes it JSON-LD."""
    return (
        f'<{LINKSET_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context";'
        ' type="application/ld+json"'
    )


def link_types_offered(links: Sequence[ProductLink]) -> list[str]:
    """The CURIEs of the link types among ``links``, in the vocabulary's order."""
    present = {link.link_type for link in links}
    return [GS1_PREFIX + name for name in LINK_TYPES if name in present]
