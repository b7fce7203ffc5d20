"""GS1 Digital Link URIs (GS1 Digital Link URI Syntax 1.2).

``https://{host}/01/{gtin14}[/22/{cpv}][/10/{lot}][/21/{serial}]?17=YYMMDD&8030=…``:
key qualifiers are path segments in the order 22 → 10 → 21, never query parameters; data
attributes go in the query, in the order given; everything outside ``A-Za-z0-9-._~`` is
percent-encoded (so ``+`` becomes ``%2B``: literal in a path, but a space in a query).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI

from sealmark.errors import InvalidArgument
from sealmark.gs1.ai import validate_value

Pairs = list[tuple[str, str]]
PRIMARY_KEYS = ("01", "00")
QUALIFIERS: dict[str, tuple[str, ...]] = {"01": ("22", "10", "21"), "00": ()}
_SCHEME = re.compile(r"^(https?|HTTPS?)://[^/?#\s]+")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_URI_LENGTH = 2048


def _encode(value: str) -> str:
    return quote(value, safe="")


def build_digital_link(pairs: Sequence[tuple[str, str]], stem: str) -> str:
    """The Digital Link URI for ``pairs`` under ``stem`` (``https://host[/prefix]``).

    Raises InvalidArgument when there is no primary key (01 or 00), or a value is invalid.
    """
    values = dict(pairs)
    if len(values) != len(pairs):
        raise InvalidArgument("digital_link", "an AI appears twice")
    primary = next((ai for ai in PRIMARY_KEYS if ai in values), None)
    if primary is None:
        raise InvalidArgument("digital_link", "needs a primary key: (01) GTIN or (00) SSCC")
    if not _SCHEME.match(stem) or stem.endswith("/"):
        raise InvalidArgument("stem", f"{stem!r}: want https://host without a trailing slash")
    for ai, value in pairs:
        validate_value(ai, value)
    path = [f"/{primary}/{_encode(values[primary])}"]
    path += [f"/{q}/{_encode(values[q])}" for q in QUALIFIERS[primary] if q in values]
    used = {primary, *QUALIFIERS[primary]}
    query = [f"{ai}={_encode(value)}" for ai, value in pairs if ai not in used]
    return stem + "".join(path) + (("?" + "&".join(query)) if query else "")


def parse_digital_link(uri: str, field: str = "digital_link") -> Pairs:
    """The AI pairs of a Digital Link URI, primary key first, then qualifiers, then the
    query attributes in order. Raises InvalidArgument naming ``field``."""
    if len(uri) > MAX_URI_LENGTH:
        raise InvalidArgument(field, f"{len(uri)} characters, want at most {MAX_URI_LENGTH}")
    if not _SCHEME.match(uri):
        raise InvalidArgument(field, "want an http:// or https:// URI with a host")
    if _BAD_PERCENT.search(uri):
        raise InvalidArgument(field, "malformed percent-encoding")
    _, _, rest = uri.partition("://")
    path_and_query = rest[rest.find("/") :] if "/" in rest else ""
    path, _, query = path_and_query.partition("?")
    query = query.partition("#")[0]
    segments = path.split("/")[1:]
    if "" in segments:
        raise InvalidArgument(field, "empty path segment")
    primary_at = next((i for i, s in enumerate(segments) if s in PRIMARY_KEYS), None)
    if primary_at is None:
        raise InvalidArgument(field, "no (01) GTIN or (00) SSCC in the path")
    all_qualifiers = {q for qs in QUALIFIERS.values() for q in qs} | set(PRIMARY_KEYS)
    for item in query.split("&") if query else []:
        key, equals, value = item.partition("=")
        if key in all_qualifiers:
            raise InvalidArgument(
                field, f"key qualifier ({key}) must be in the path, not the query"
            )
        if key.isdigit() and (not equals or not value):
            raise InvalidArgument(field, f"({key}) has an empty value")
    try:
        parsed = GS1DigitalLinkURI.parse(uri)
    except ParseError as exc:
        raise InvalidArgument(field, str(exc)) from exc
    pairs = [(e.ai.ai, e.value) for e in parsed.element_strings]
    for ai, value in pairs:
        validate_value(ai, value, f"{field} ({ai})")
    return pairs
