"""GS1 Digital Link URIs (GS1 Digital Link URI Syntax 1.2), both directions.

``https://{host}[/prefix]/01/{gtin14}[/22/{cpv}][/10/{lot}][/21/{serial}]?17=YYMMDD&8030=…``
or ``…/00/{sscc}``: key qualifiers are path segments in the order of :data:`KEY_QUALIFIERS`
(22 → 10 → 21 for a GTIN, none for an SSCC), never query parameters; only data attributes
go in the query (no key, no qualifier of the link's key, nothing in :data:`NOT_ATTRIBUTES`).
Everything outside ``A-Za-z0-9-._~`` is percent-encoded, so ``+`` is written ``%2B``:
literal in a path, a space in a query.

The parser is ours rather than biip's: biip takes the first key-like segment of a path prefix
as the key, keeps the last of repeated query keys, drops empty values and unknown AIs without
a word and decodes malformed percent-escapes, all of which a verifier must refuse. biip's AI
table still checks every value, through :func:`sealmark.gs1.ai.validate_value`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import quote, unquote

from sealmark.errors import InvalidArgument
from sealmark.gs1.ai import unpad_digsig, validate_pairs
from sealmark.gs1.checkdigit import normalize_gtin
from sealmark.gs1.cset import first_outside

Pairs = list[tuple[str, str]]
# Every GS1 Digital Link primary key and the key qualifiers it takes, in path order, as the
# GS1 Barcode Syntax Dictionary's ``dlpkey`` entries list them (GS1 Digital Link URI Syntax
# 1.2). A key may have alternative chains: (01) takes (22) → (10) → (21), or (235) alone.
# Qualifiers belong to their key only: (10) is a qualifier of (01) but an ordinary data
# attribute of an (00) SSCC link, (21) likewise.
KEY_QUALIFIERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "01": (("22", "10", "21"), ("235",)),
    "00": (),
    "253": (),
    "255": (),
    "401": (),
    "402": (),
    "414": (("254",), ("7040",)),
    "415": (("8020",),),
    "417": (("7040",),),
    "8003": (),
    "8004": (("7040",),),
    "8006": (("22", "10", "21"),),
    "8010": (("8011",),),
    "8013": (),
    "8017": (("8019",),),
    "8018": (("8019",),),
}
# AIs that are neither keys nor qualifiers but are still no data attributes: the Syntax
# Dictionary flags them as not valid in a Digital Link URI. (8200) PRODUCT URL is the URL an
# element string points at; in a Digital Link the URI itself is that URL.
NOT_ATTRIBUTES = frozenset({"8200"})
# The keys Sealmark reads and writes: a link on any other key is not one of our codes.
PRIMARY_KEYS = ("01", "00")
QUALIFIERS: dict[str, tuple[str, ...]] = {
    key: tuple(q for chain in chains for q in chain) for key, chains in KEY_QUALIFIERS.items()
}
MAX_URI_LENGTH = 2048
# Lower or upper case only, as GS1's syntax engine: upper case suits QR alphanumeric mode.
_SCHEME = re.compile(r"(?:https?|HTTPS?)://")
_STEM = re.compile(r"(?:https?|HTTPS?)://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%-]+)*")
_URI_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
_IP_LITERAL = re.compile(r"\[([^\[\]]+)\](?::[0-9]{0,5})?")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


def encode_component(value: str) -> str:
    """Percent-encode everything outside ``A-Za-z0-9-._~`` (UTF-8, upper-case hex)."""
    if _UNRESERVED.fullmatch(value):
        return value  # most serials: an EPCIS export writes millions of them
    return quote(value, safe="")


def build_digital_link(
    pairs: Sequence[tuple[str, str]], stem: str, field: str = "digital_link"
) -> str:
    """The Digital Link URI for ``pairs`` under ``stem`` (``https://host[/prefix]``).

    The primary key ((01) GTIN-14 or (00) SSCC) and its qualifiers go in the path in the
    standard order; every other pair goes in the query in the order given, so the same
    pairs always give the same URI. Raises InvalidArgument naming ``stem`` for a malformed
    stem, or ``field`` for no or two primary keys, unknown or repeated AIs, invalid values.
    """
    if not _STEM.fullmatch(stem):
        raise InvalidArgument(
            "stem", f"{stem[:60]!r}: want https://host[/prefix] without a trailing slash"
        )
    validate_pairs(pairs, field)
    values = dict(pairs)
    primaries = [ai for ai in PRIMARY_KEYS if ai in values]
    if len(primaries) != 1:
        raise InvalidArgument(field, "want exactly one primary key: (01) GTIN or (00) SSCC")
    primary = primaries[0]
    present = [chain for chain in KEY_QUALIFIERS[primary] if any(q in values for q in chain)]
    if len(present) > 1:
        raise InvalidArgument(
            field, f"({primary}) takes the qualifiers of one chain only: {_chains(primary)}"
        )
    path_keys = [primary, *(q for chain in present for q in chain if q in values)]
    for ai, _ in pairs:
        if ai not in path_keys:
            _check_attribute(ai, primary, field)
    path = "".join(f"/{ai}/{encode_component(values[ai])}" for ai in path_keys)
    query = "&".join(
        f"{ai}={encode_component(value)}" for ai, value in pairs if ai not in path_keys
    )
    return stem + path + (f"?{query}" if query else "")


def parse_digital_link(uri: str, field: str = "digital_link") -> Pairs:
    """The AI pairs of a Digital Link URI: primary key, its qualifiers in path order, then
    the query's AIs in query order.

    Accepts any host and a path prefix before the key. A GTIN-8/12/13 key is padded to 14
    digits. Query parameters that are not numeric (``linkType``, tracking tags) are not GS1
    data and are ignored; the fragment is ignored. Raises InvalidArgument naming ``field``:
    scheme other than http/https in lower or upper case, characters a URI cannot hold,
    malformed percent-encoding, an empty path segment, no key, a qualifier that does not
    belong to the key or is out of order, a qualifier or key in the query, an unknown AI,
    an AI twice, an empty value, any invalid value (check digit, CSET 82, length, date).
    """
    if len(uri) > MAX_URI_LENGTH:
        raise InvalidArgument(field, f"{len(uri)} characters, want at most {MAX_URI_LENGTH}")
    scheme = _SCHEME.match(uri)
    if scheme is None:
        raise InvalidArgument(field, "want an http:// or https:// URI (lower or upper case)")
    bad = first_outside(uri, _URI_CHARS)
    if bad is not None:
        raise InvalidArgument(field, f"character {uri[bad]!r} at position {bad} is not URI text")
    if _BAD_PERCENT.search(uri):
        raise InvalidArgument(field, "malformed percent-encoding: want % and two hex digits")
    rest = uri[scheme.end() :].partition("#")[0]
    host_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    if host_end == 0:
        raise InvalidArgument(field, "no host")
    _check_host(rest[:host_end], field)
    path, _, query = rest[host_end:].partition("?")
    pairs = _path_pairs(path, field)
    pairs += _query_pairs(query, pairs[0][0], field)
    validate_pairs(pairs, field)
    return pairs


def _check_host(authority: str, field: str) -> None:
    """Refuse an IP literal that is not a plain IPv6 address: a zone id (``%25eth0``, RFC
    6874) names an interface of the scanning device and has no place in a printed link."""
    host = authority.rpartition("@")[2]
    if "[" not in host and "]" not in host:
        return
    literal = _IP_LITERAL.fullmatch(host)
    if literal is None:
        raise InvalidArgument(field, "malformed IP literal in the host: want [IPv6 address]")
    if "%" in literal.group(1):
        raise InvalidArgument(field, "IPv6 zone id in the host: a link cannot name an interface")
    try:
        ipaddress.IPv6Address(literal.group(1))
    except ValueError as exc:
        raise InvalidArgument(field, "malformed IPv6 address in the host") from exc


def _path_pairs(path: str, field: str) -> Pairs:
    segments = path.split("/")[1:]
    if "" in segments:
        raise InvalidArgument(field, "empty path segment")
    # The key is the rightmost key-like segment an even number of segments from the end:
    # everything before it is the resolver's prefix (which may itself contain "01").
    keys = range(len(segments) - 2, -1, -2)
    start = next((i for i in keys if segments[i] in PRIMARY_KEYS), None)
    if start is None:
        raise InvalidArgument(field, "no (01) GTIN or (00) SSCC key in the path")
    primary = segments[start]
    value = _decode(segments[start + 1], field, primary, plus_is_space=False)
    if primary == "01" and len(value) in (8, 12, 13):
        value = normalize_gtin(value, field)
    pairs = [(primary, value)]
    chains = KEY_QUALIFIERS[primary]
    chain: tuple[str, ...] | None = None
    position = 0
    for index in range(start + 2, len(segments), 2):
        key = segments[index]
        if chain is None:  # the first qualifier picks the chain
            chain = next((c for c in chains if key in c), ())
            position = 0
        if key not in chain[position:]:
            allowed = chain[position:] if index > start + 2 else QUALIFIERS[primary]
            want = " → ".join(allowed) or "none"
            raise InvalidArgument(
                field, f"({key}) is not a path qualifier of ({primary}) here; want {want}"
            )
        position = chain.index(key) + 1
        pairs.append((key, _decode(segments[index + 1], field, key, plus_is_space=False)))
    return pairs


def _query_pairs(query: str, primary: str, field: str) -> Pairs:
    pairs: Pairs = []
    for item in query.split("&"):
        key, _, raw = item.partition("=")
        if not key.isascii() or not key.isdigit():
            continue  # not GS1 data (linkType, tracking tags, an empty "&&")
        _check_attribute(key, primary, field)
        if not raw:
            raise InvalidArgument(field, f"({key}) has an empty value")
        value = _decode(raw, field, key, plus_is_space=True)
        pairs.append((key, unpad_digsig(value, field) if key == "8030" else value))
    return pairs


def _check_attribute(ai: str, primary: str, field: str) -> None:
    """Refuse ``ai`` in the query of a ``primary`` link unless it is a data attribute."""
    if ai in KEY_QUALIFIERS:
        raise InvalidArgument(field, f"({ai}) is a primary key: it belongs in the path")
    if ai in QUALIFIERS[primary]:
        raise InvalidArgument(
            field,
            f"key qualifier ({ai}) of ({primary}) must be a path segment, not a query parameter",
        )
    if ai in NOT_ATTRIBUTES:
        raise InvalidArgument(
            field, f"({ai}) is not a Digital Link data attribute: it cannot go in the query"
        )


def _chains(primary: str) -> str:
    return " or ".join(" → ".join(chain) for chain in KEY_QUALIFIERS[primary])


def _decode(raw: str, field: str, ai: str, *, plus_is_space: bool) -> str:
    if plus_is_space and "+" in raw:
        # In a query '+' is a space, which no GS1 value may hold: the sender meant %2B.
        raise InvalidArgument(
            field, f"({ai}) '+' in a query means a space, not in CSET 82; write %2B"
        )
    try:
        value = unquote(raw, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(field, f"({ai}) percent-encoding is not UTF-8") from exc
    if not value:
        raise InvalidArgument(field, f"({ai}) has an empty value")
    return value
