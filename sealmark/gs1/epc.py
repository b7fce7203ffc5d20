"""EPC pure-identity URNs (GS1 EPC Tag Data Standard §6) ⇄ GS1 keys and Digital Link URIs.

``urn:epc:id:sgtin:CompanyPrefix.IndicatorItemRef.Serial``,
``urn:epc:id:sscc:CompanyPrefix.ExtensionSerialRef`` and the class URN
``urn:epc:class:lgtin:CompanyPrefix.IndicatorItemRef.Lot``. A URN needs the company-prefix
length, which the GTIN or SSCC alone does not tell: we keep GTIN/SSCC keys internally and
derive URNs on output, with the length from the tenant.
"""

from __future__ import annotations

import re

from sealmark.errors import InvalidArgument
from sealmark.gs1.ai import validate_value
from sealmark.gs1.checkdigit import check_digit, normalize_gtin, validate_sscc
from sealmark.gs1.digital_link import build_digital_link, parse_digital_link

Pairs = list[tuple[str, str]]
# TDS §6.3.1 (GS3A3 component): these CSET 82 characters are written %XX in a URN; every
# other CSET 82 character is written as itself, and no other escape is allowed.
_ESCAPED = '"%&/<>?'
_ESCAPE = {char: f"%{ord(char):02X}" for char in _ESCAPED}
_UNESCAPE = {code: char for char, code in _ESCAPE.items()}
_ESCAPE_TOKEN = re.compile(r"%[0-9A-Fa-f]{2}")
_URN = re.compile(r"urn:epc:(id|class):(sgtin|sscc|lgtin):(\d+)\.(\d+)(?:\.(.*))?")
_SCHEME_FORM = {"sgtin": "id", "sscc": "id", "lgtin": "class"}
DEFAULT_STEM = "https://id.gs1.org"


def _escape(value: str) -> str:
    return "".join(_ESCAPE.get(char, char) for char in value)


def _unescape(text: str, field: str) -> str:
    raw = _ESCAPE_TOKEN.sub("", text)
    bad = next((char for char in raw if char in _ESCAPED), None)
    if bad is not None:
        raise InvalidArgument(field, f"{bad!r} must be escaped as {_ESCAPE[bad]} in an EPC URN")

    def one(match: re.Match[str]) -> str:
        code = match.group(0).upper()
        if code not in _UNESCAPE:
            raise InvalidArgument(field, f"{match.group(0)} is not an EPC URN escape")
        return _UNESCAPE[code]

    return _ESCAPE_TOKEN.sub(one, text)


def _check_prefix_length(length: int) -> None:
    if not 6 <= length <= 12:
        raise InvalidArgument("company_prefix_length", f"{length}, want 6..12")


def _split_gtin(gtin: str, company_prefix_length: int) -> tuple[str, str]:
    gtin14 = normalize_gtin(gtin)
    _check_prefix_length(company_prefix_length)
    prefix = gtin14[1 : 1 + company_prefix_length]
    return prefix, gtin14[0] + gtin14[1 + company_prefix_length : 13]


def sgtin_urn(gtin: str, serial: str, company_prefix_length: int) -> str:
    """``urn:epc:id:sgtin:…`` for a GTIN and serial. Raises InvalidArgument naming ``gtin``,
    ``serial`` or ``company_prefix_length`` (6..12)."""
    prefix, item = _split_gtin(gtin, company_prefix_length)
    validate_value("21", serial, "serial")
    return f"urn:epc:id:sgtin:{prefix}.{item}.{_escape(serial)}"


def lgtin_urn(gtin: str, lot: str, company_prefix_length: int) -> str:
    """``urn:epc:class:lgtin:…`` for a GTIN and lot. Raises like :func:`sgtin_urn`."""
    prefix, item = _split_gtin(gtin, company_prefix_length)
    validate_value("10", lot, "lot")
    return f"urn:epc:class:lgtin:{prefix}.{item}.{_escape(lot)}"


def sscc_urn(sscc: str, company_prefix_length: int) -> str:
    """``urn:epc:id:sscc:…`` for an SSCC-18. Raises InvalidArgument naming ``sscc`` or
    ``company_prefix_length``."""
    validate_sscc(sscc)
    _check_prefix_length(company_prefix_length)
    prefix = sscc[1 : 1 + company_prefix_length]
    return f"urn:epc:id:sscc:{prefix}.{sscc[0]}{sscc[1 + company_prefix_length : 17]}"


def epc_urn_to_pairs(urn: str, field: str = "urn") -> Pairs:
    """The GS1 AI pairs an SGTIN ((01), (21)), SSCC ((00)) or LGTIN ((01), (10)) URN
    stands for. Raises InvalidArgument naming ``field``: another scheme, a company prefix
    outside 6..12 digits, wrong digit counts, an unescaped or unknown escape, a bad value."""
    match = _URN.fullmatch(urn)
    if match is None:
        raise InvalidArgument(field, f"{urn[:60]!r} is not an sgtin, sscc or lgtin EPC URN")
    form, scheme, prefix, reference, tail = match.groups()
    if _SCHEME_FORM[scheme] != form:
        raise InvalidArgument(field, f"{scheme} is a urn:epc:{_SCHEME_FORM[scheme]} scheme")
    if not 6 <= len(prefix) <= 12:
        raise InvalidArgument(field, f"company prefix {prefix!r}: want 6..12 digits")
    data = reference[:1] + prefix + reference[1:]
    if scheme == "sscc":
        if tail is not None or len(data) != 17:
            raise InvalidArgument(field, "an SSCC URN needs 17 digits of prefix and reference")
        return [("00", data + str(check_digit(data)))]
    if len(data) != 13 or tail is None:
        raise InvalidArgument(field, f"an {scheme} URN needs 13 digits and a value after them")
    ai = "10" if scheme == "lgtin" else "21"
    value = validate_value(ai, _unescape(tail, field), field)
    return [("01", data + str(check_digit(data))), (ai, value)]


def epc_urn_to_digital_link(urn: str, stem: str = DEFAULT_STEM, field: str = "urn") -> str:
    """The Digital Link URI of an SGTIN, SSCC or LGTIN URN. Raises like
    :func:`epc_urn_to_pairs` and :func:`build_digital_link`."""
    return build_digital_link(epc_urn_to_pairs(urn, field), stem, field)


def digital_link_to_epc_urn(
    uri: str, company_prefix_length: int, field: str = "digital_link"
) -> str:
    """The EPC URN of a Digital Link URI: SSCC for ``/00/``, SGTIN for a GTIN with a serial,
    LGTIN for a GTIN with a lot and no serial. Other attributes have no place in a URN and
    are dropped. Raises InvalidArgument naming ``field`` for a GTIN with neither."""
    pairs = dict(parse_digital_link(uri, field))
    if "00" in pairs:
        return sscc_urn(pairs["00"], company_prefix_length)
    if "21" in pairs:
        return sgtin_urn(pairs["01"], pairs["21"], company_prefix_length)
    if "10" in pairs:
        return lgtin_urn(pairs["01"], pairs["10"], company_prefix_length)
    raise InvalidArgument(field, "an EPC URN needs a serial (21) or a lot (10) with the GTIN")
