"""Canonical forms the CBV 2.0 event hash (§8.9) writes values in: identifiers, timestamps
and numbers. Each function returns None when its input is not of its kind, so the caller can
keep the value as it is.

Identifiers become *constrained canonical GS1 Digital Link URIs*: host ``id.gs1.org``, no
query, AI numbers instead of short names, GTINs as 14 digits, and only the finest
identification level (a serial wins over a lot; a CPV is dropped). EPC pure-identity URNs
(all TDS 2.x schemes), the class URN ``lgtin`` and ID-pattern URNs (a pattern stands for the
class it fixes) are converted. Values inside a Digital Link are percent-encoded one way
only, so a URN and a Digital Link of the same key give the same string.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote

from sealmark.gs1.checkdigit import check_digit

GS1_HOST = "https://id.gs1.org/"


def canonical_time(text: str) -> str | None:
    """``text`` (an xsd:dateTimeStamp) in UTC with milliseconds and ``Z``; None if it is not
    one. A 4th fractional digit of 5..9 rounds up, carrying into the seconds."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        return None
    base, fraction, zone = match.groups()
    if zone == "Z" and fraction is not None and len(fraction) == 3:
        return match.group(0)  # already canonical: the common case, kept cheap
    try:
        moment = datetime.fromisoformat(base + ("+00:00" if zone.upper() == "Z" else zone))
    except ValueError:
        return None
    fraction = fraction or ""
    millis = int(fraction[:3].ljust(3, "0"))
    if len(fraction) > 3 and fraction[3] >= "5":
        millis += 1
    moment = (moment + timedelta(milliseconds=millis)).astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def canonical_number(value: object) -> str | None:
    """A JSON number or decimal string without exponent, ``+`` or trailing zeros (``1.50``
    → ``1.5``, ``600.0`` → ``600``); None if ``value`` is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    text = str(value).strip()
    if isinstance(value, str) and not _DECIMAL.fullmatch(text):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    result = format(number.normalize(), "f")
    return "0" if result == "-0" else result


def canonical_id(uri: str) -> str | None:
    """The constrained canonical Digital Link URI of an EPC URN or of a Digital Link URI on
    any host; None when ``uri`` is neither, or is malformed."""
    if _CANONICAL.fullmatch(uri):
        return uri  # the common case, kept cheap
    try:
        if uri.startswith("urn:epc:"):
            return _from_urn(uri)
        return _from_digital_link(uri)
    except (ValueError, IndexError):
        return None


_TIME = re.compile(r"(\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# Characters a canonical Digital Link value keeps as they are: CSET 82 minus those that GS1
# Digital Link and the EPC Tag Data Standard escape. Everything else is %XX (upper case).
_SAFE = frozenset(string.ascii_letters + string.digits + "'-.;=_")
_CANONICAL = re.compile(r"https://id\.gs1\.org/(00/\d{18}|01/\d{14}(/21/[A-Za-z0-9'.;=_-]+)?)")
CANONICAL_ID = _CANONICAL
"""Matches an SSCC or (serialised) GTIN already in constrained canonical Digital Link form."""


def _encode(text: str, *, optional: bool = False) -> str:
    if not text and not optional:
        raise ValueError("empty identifier component")
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def _part(text: str, *, optional: bool = False) -> str:
    """A URN component (its own %XX escapes undone) in canonical Digital Link form."""
    return _encode(unquote(text), optional=optional)


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _digits(text: str, width: int | None = None) -> str:
    """``text`` if it is ASCII digits (exactly ``width`` when given, else possibly none);
    raises ValueError otherwise."""
    if (width is not None and len(text) != width) or (text and not _is_digits(text)):
        raise ValueError(text)
    return text


def _checked(digits: str, width: int) -> str:
    return _digits(digits, width) + str(check_digit(digits))


def _gtin(prefix: str, reference: str) -> str:
    # EPC URNs move the indicator digit of a GTIN in front of the item reference.
    return _checked(reference[:1] + prefix + reference[1:], 13)


def _sgln(cp: str, p: list[str]) -> str:
    gln = _checked(cp + p[0], 12)
    return f"414/{gln}" if p[1] == "0" else f"414/{gln}/254/{_part(p[1])}"


_Build = Callable[[str, list[str]], str]
# scheme → (number of '.'-separated parts after the company prefix, Digital Link path)
_ID_URNS: dict[str, tuple[int, _Build]] = {
    "sgtin": (2, lambda cp, p: f"01/{_gtin(cp, p[0])}/21/{_part(p[1])}"),
    "sscc": (1, lambda cp, p: f"00/{_checked(p[0][:1] + cp + p[0][1:], 17)}"),
    "sgln": (2, _sgln),
    "pgln": (1, lambda cp, p: f"417/{_checked(cp + p[0], 12)}"),
    "grai": (2, lambda cp, p: f"8003/{_checked('0' + cp + p[0], 13)}{_part(p[1], optional=True)}"),
    "giai": (1, lambda cp, p: f"8004/{_part(cp + p[0])}"),
    "gsrn": (1, lambda cp, p: f"8018/{_checked(cp + p[0], 17)}"),
    "gsrnp": (1, lambda cp, p: f"8017/{_checked(cp + p[0], 17)}"),
    "gdti": (2, lambda cp, p: f"253/{_checked(cp + p[0], 12)}{_part(p[1], optional=True)}"),
    "sgcn": (2, lambda cp, p: f"255/{_checked(cp + p[0], 12)}{_digits(p[1])}"),
    "cpi": (2, lambda cp, p: f"8010/{_part(cp + p[0])}/8011/{_digits(p[1])}"),
    "ginc": (1, lambda cp, p: f"401/{_part(cp + p[0])}"),
    "gsin": (1, lambda cp, p: f"402/{_checked(cp + p[0], 16)}"),
    "itip": (4, lambda cp, p: f"8006/{_gtin(cp, p[0])}{_digits(p[1] + p[2], 4)}/21/{_part(p[3])}"),
    "upui": (2, lambda cp, p: f"01/{_gtin(cp, p[0])}/235/{_part(p[1])}"),
}
_CLASS_URNS: dict[str, tuple[int, _Build]] = {
    "lgtin": (2, lambda cp, p: f"01/{_gtin(cp, p[0])}/10/{_part(p[1])}"),
}
# A pattern's last part is ``*``; it stands for the key without its serial.
_PATTERN_URNS: dict[str, tuple[int, _Build]] = {
    "sgtin": (2, lambda cp, p: f"01/{_gtin(cp, p[0])}"),
    "upui": (2, lambda cp, p: f"01/{_gtin(cp, p[0])}"),
    "grai": (2, lambda cp, p: f"8003/{_checked('0' + cp + p[0], 13)}"),
    "gdti": (2, lambda cp, p: f"253/{_checked(cp + p[0], 12)}"),
    "sgcn": (2, lambda cp, p: f"255/{_checked(cp + p[0], 12)}"),
    "cpi": (2, lambda cp, p: f"8010/{_part(cp + p[0])}"),
    "itip": (4, lambda cp, p: f"8006/{_gtin(cp, p[0])}{_digits(p[1] + p[2], 4)}"),
}
_URN_TABLES = {"id": _ID_URNS, "class": _CLASS_URNS, "idpat": _PATTERN_URNS}
_URN = re.compile(r"urn:epc:(id|class|idpat):([a-z]+):(\d{6,12})\.(.*)")


def _from_urn(urn: str) -> str | None:
    match = _URN.fullmatch(urn)
    if match is None:
        return None
    form, scheme, prefix, rest = match.groups()
    if scheme not in _URN_TABLES[form]:
        return None
    count, build = _URN_TABLES[form][scheme]
    parts = rest.split(".", count - 1)  # a serial may itself contain dots
    if len(parts) != count or (form == "idpat" and parts[-1] != "*"):
        return None
    return GS1_HOST + build(prefix, parts)


_NAMES = {"gtin": "01", "itip": "8006", "cpid": "8010", "gln": "414", "party": "417"}
_NAMES |= {"gsrnp": "8017", "gsrn": "8018", "gcn": "255", "sscc": "00", "gdti": "253"}
_NAMES |= {"ginc": "401", "gsin": "402", "grai": "8003", "giai": "8004"}
_NAMES |= {"cpv": "22", "lot": "10", "ser": "21"}
# Primary key → (digits its value starts with, whether that is all of it, its qualifiers
# finest first). Only the finest qualifier present is kept; a CPV (22) never is.
_KEYS: dict[str, tuple[int, bool, tuple[str, ...]]] = {
    "00": (18, True, ()),
    "01": (14, True, ("21", "235", "10", "22")),
    "253": (13, False, ()),
    "255": (13, False, ()),
    "401": (4, False, ()),
    "402": (17, True, ()),
    "414": (13, True, ("254",)),
    "417": (13, True, ()),
    "8003": (14, False, ()),
    "8004": (4, False, ()),
    "8006": (18, True, ("21", "10", "22")),
    "8010": (4, False, ("8011",)),
    "8017": (18, True, ()),
    "8018": (18, True, ()),
}
_HTTP = re.compile(r"https?://[^/?#]+(/[^?#]*)", re.IGNORECASE)


def _from_digital_link(uri: str) -> str | None:
    match = _HTTP.match(uri)
    if match is None:
        return None
    segments = [unquote(s) for s in match.group(1).split("/") if s]
    names = [_NAMES.get(s, s) for s in segments]  # meaningful at key positions only
    # The key is the first known AI followed by a value that starts with digits; anything
    # before it is the resolver's own path prefix.
    start = next(
        (i for i, s in enumerate(names[:-1]) if s in _KEYS and _is_digits(segments[i + 1][:4])),
        None,
    )
    if start is None or (len(segments) - start) % 2:
        return None
    key, value = names[start], segments[start + 1]
    width, fixed, qualifiers = _KEYS[key]
    pairs = dict(zip(names[start + 2 :: 2], segments[start + 3 :: 2], strict=True))
    if not set(pairs) <= set(qualifiers):
        return None
    if key == "01" and len(value) in (8, 12, 13):
        value = value.zfill(14)  # GTIN-8/12/13 are written as GTIN-14
    if not _is_digits(value[:width]) or len(value) < width or (fixed and len(value) != width):
        return None
    finest = next((ai for ai in qualifiers if ai in pairs and ai != "22"), None)
    tail = f"/{finest}/{_encode(pairs[finest])}" if finest else ""
    return f"{GS1_HOST}{key}/{_encode(value)}{tail}"
