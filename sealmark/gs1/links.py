"""The links a brand registers for a product, and the GS1 link types they may carry.

A link (GS1-Conformant Resolver 1.2, RFC 9264 target attributes) is a target URL, a GS1 link
type, a human-readable title and optionally a language (``hreflang``, BCP 47), a context and
a media type. The link types are the GS1 Web Vocabulary's (version 1.16: every
``rdfs:subPropertyOf gs1:linkType``), named by their short name (``pip``) and written as a
CURIE (``gs1:pip``) or a URI (``https://gs1.org/voc/pip``, or the ``ref.gs1.org`` and
``www.gs1.org`` forms GS1 declares equivalent).

:func:`checked_link` is the one validation every registered link passes; it raises
InvalidArgument naming the field. Pure: the standard library and langcodes (the IANA
language subtag registry, as data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import langcodes

from sealmark.errors import InvalidArgument

GS1_VOC = "https://gs1.org/voc/"
GS1_PREFIX = "gs1:"
VOC_NAMESPACES = (
    "https://gs1.org/voc/",
    "https://ref.gs1.org/voc/",
    "https://www.gs1.org/voc/",
    "http://gs1.org/voc/",
)
# Short name → English label, as the GS1 Web Vocabulary 1.16 defines them
# (tests/reference/gs1-resolver/linktypes-v1.16.json is the copy this table is checked against).
LINK_TYPES: dict[str, str] = {
    "activityIdeas": "Activity Ideas",
    "allergenInfo": "Allergen information",
    "appDownload": "App download",
    "backgroundInfo": "Background Information",
    "brandHomepageClinical": "Information for professionals about this brand",
    "brandHomepagePatient": "Information for patients about this brand",
    "careersInfo": "Careers information",
    "certificationInfo": "Certification Information",
    "consumerHandlingStorageInfo": "Consumer handling and storage information",
    "defaultLink": "Default link",
    "defaultLinkMulti": "Default linkMulti",
    "dpp": "Digital Product Passport",
    "eifu": "Electronic Instructions For Use",
    "epcis": "EPC Information Services (EPCIS) repository",
    "epil": "Electronic Patient Information Leaflet",
    "eventsInfo": "Events information",
    "faqs": "Frequently Asked Questions",
    "handledBy": "Handled by",
    "hasRetailers": "Has Retailers",
    "homepage": "Organisation Information Page",
    "ingredientsInfo": "Ingredients information",
    "instructions": "Instructions",
    "jws": "JSON Web Signature",
    "leaveReview": "Leave a review",
    "locationInfo": "Location information",
    "logisticsInfo": "Logistics information",
    "loyaltyProgram": "Loyalty program",
    "masterData": "Master data",
    "menuInfo": "Menu information",
    "nutritionalInfo": "Nutritional Information",
    "openingHoursInfo": "Opening hours information",
    "paymentLink": "Make Payment",
    "pip": "Product Information Page",
    "productSustainabilityInfo": "Sustainability and recycling (deprecated)",
    "promotion": "Promotion",
    "purchaseSuppliesOrAccessories": "Purchase supplies or accessories",
    "quickStartGuide": "Quick start guide",
    "recallStatus": "Recall status",
    "recipeInfo": "Recipe website",
    "registerProduct": "Register purchase",
    "registryEntry": "Entry in a register",
    "relatedImage": "Related image",
    "relatedVideo": "Related  video",
    "reportFound": "Report  found",
    "review": "Reviews",
    "safetyInfo": "Safety information",
    "scheduleTime": "Scheduling/Reservation",
    "serviceInfo": "Service information",
    "smartLabel": "SmartLabel",
    "smpc": "Summary Product Characteristics (SmPC)",
    "socialMedia": "Social media",
    "statisticInfo": "Statistics",
    "subscribe": "Subscribe",
    "support": "Support",
    "sustainabilityInfo": "Sustainability and recycling",
    "traceability": "Traceability information",
    "tutorial": "Tutorial",
    "userAgreement": "Sign waiver/agreement/document",
    "verificationService": "Verification Service",
    "whatsInTheBox": "What's in the box?",
}
DEPRECATED = {"productSustainabilityInfo": "sustainabilityInfo"}
# Link types only the resolver itself sets (the vocabulary restricts the first three to
# resolvers; the verification page is the resolver's own service for a serialised code).
RESOLVER_ONLY = frozenset({"defaultLink", "defaultLinkMulti", "handledBy", "verificationService"})
# The two linkType values that ask for the linkset rather than a link ("all" is deprecated
# since GS1-Conformant Resolver 1.0 but still answered).
LINKSET_VALUES = frozenset({"linkset", "all"})

MAX_LINKS = 100  # per product
MAX_HREF = 1024
MAX_TITLE = 200
MAX_LANG = 35
_CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")
_LANG_SYNTAX = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
_HOST = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
# What a registered URL may hold: printable ASCII, no space, no quote or angle bracket (the
# URL goes into HTTP Link headers and pages), no backslash.
_URL_CHARS = re.compile(r"[!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+")


@dataclass(frozen=True)
class ProductLink:
    """One registered link. ``link_type`` is the short name (``pip``); ``lang`` is a BCP 47
    tag or "" (for every language); ``context`` and ``media_type`` "" when not given."""

    link_type: str
    href: str
    title: str
    lang: str = ""
    context: str = ""
    media_type: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What tells two links of a product apart (the stored row's key after the GTIN)."""
        return (self.link_type, self.lang, self.context, self.href)

    @property
    def curie(self) -> str:
        return GS1_PREFIX + self.link_type


def link_type_name(text: str) -> str | None:
    """The short name of a link type given as a CURIE (``gs1:pip``) or a GS1 vocabulary URI;
    None when it names no GS1 link type (an unknown name, another vocabulary)."""
    name: str | None = None
    if text.startswith(GS1_PREFIX):
        name = text[len(GS1_PREFIX) :]
    else:
        for namespace in VOC_NAMESPACES:
            if text.startswith(namespace):
                name = text[len(namespace) :]
                break
    return name if name is not None and name in LINK_TYPES else None


def voc_uri(name: str) -> str:
    return GS1_VOC + name


def checked_lang(tag: str, field: str) -> str:
    """``tag`` as a well-formed, valid BCP 47 tag in its canonical case (``zh-CN``), or ""
    for ""; InvalidArgument naming ``field`` otherwise."""
    if not tag:
        return ""
    if len(tag) > MAX_LANG or not _LANG_SYNTAX.fullmatch(tag):
        raise InvalidArgument(field, "want a BCP 47 language tag such as en, zh-CN or de-CH")
    if not langcodes.tag_is_valid(tag):
        raise InvalidArgument(field, f"{tag!r} is not a registered BCP 47 language tag")
    return str(langcodes.standardize_tag(tag))


def checked_link(link: ProductLink, field: str) -> ProductLink:
    """The link with its link type as a short name and its language tag canonical. Raises
    InvalidArgument naming ``field``.``link_type`` / ``href`` / ``title`` / ``lang`` /
    ``context`` / ``media_type``."""
    name = link_type_name(link.link_type) or (
        link.link_type if link.link_type in LINK_TYPES else None
    )
    if name is None:
        raise InvalidArgument(
            f"{field}.link_type",
            "want a GS1 Web Vocabulary link type such as gs1:pip (see https://gs1.org/voc/)",
        )
    if name in DEPRECATED:
        raise InvalidArgument(
            f"{field}.link_type", f"gs1:{name} is deprecated: use gs1:{DEPRECATED[name]}"
        )
    if name in RESOLVER_ONLY:
        raise InvalidArgument(
            f"{field}.link_type", f"gs1:{name} is set by the resolver, not registered"
        )
    title = link.title.strip()
    if not title:
        raise InvalidArgument(f"{field}.title", "required: a human-readable title")
    if len(title) > MAX_TITLE:
        raise InvalidArgument(
            f"{field}.title", f"{len(title)} characters, want at most {MAX_TITLE}"
        )
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in title):
        raise InvalidArgument(f"{field}.title", "control characters are not allowed")
    context = link.context
    if context and not _CONTEXT.fullmatch(context):
        raise InvalidArgument(
            f"{field}.context", "want 1..64 of A-Z a-z 0-9 _ . - (a letter or digit first)"
        )
    media_type = link.media_type.lower()
    if media_type and not _MEDIA_TYPE.fullmatch(media_type):
        raise InvalidArgument(f"{field}.media_type", "want a media type such as text/html")
    return ProductLink(
        link_type=name,
        href=checked_href(link.href, f"{field}.href"),
        title=title,
        lang=checked_lang(link.lang, f"{field}.lang"),
        context=context,
        media_type=media_type,
    )


def checked_href(href: str, field: str) -> str:
    """An absolute https URL with a DNS host name, at most :data:`MAX_HREF` characters of
    printable ASCII (percent-encode the rest), no user name or password."""
    if not href:
        raise InvalidArgument(field, "required: the target URL")
    if len(href) > MAX_HREF:
        raise InvalidArgument(field, f"{len(href)} characters, want at most {MAX_HREF}")
    if not _URL_CHARS.fullmatch(href):
        raise InvalidArgument(
            field, "want printable ASCII without spaces, quotes or <>; percent-encode the rest"
        )
    try:
        parts = urlsplit(href)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgument(field, "not a well-formed URL") from exc
    if parts.scheme != "https":
        raise InvalidArgument(field, "want an https:// URL: consumers follow it from a phone")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument(field, "a user name or password has no place in a public link")
    host = parts.hostname or ""
    if not _HOST.fullmatch(host) or host.replace(".", "").isdigit():
        raise InvalidArgument(field, "want a DNS host name (example.com), not an address")
    if port == 0:
        raise InvalidArgument(field, "port 0 is not a port")
    return href


def checked_links(links: list[ProductLink], field: str) -> list[ProductLink]:
    """Every link checked (:func:`checked_link`, ``field[i]``), at most :data:`MAX_LINKS`,
    no two with the same (link type, language, context, URL)."""
    if len(links) > MAX_LINKS:
        raise InvalidArgument(field, f"{len(links)} links, want at most {MAX_LINKS} per product")
    out: list[ProductLink] = []
    seen: set[tuple[str, str, str, str]] = set()
    for index, link in enumerate(links):
        checked = checked_link(link, f"{field}[{index}]")
        if checked.key in seen:
            raise InvalidArgument(
                f"{field}[{index}]", "the same link type, language, context and URL twice"
            )
        seen.add(checked.key)
        out.append(checked)
    return out
