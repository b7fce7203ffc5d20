"""EPC pure-identity URNs (GS1 EPC Tag Data Standard §6) ⇄ GS1 keys.

URNs need the company-prefix length, which the GTIN or SSCC alone does not tell: we keep
GTIN/SSCC keys internally and derive URNs on output, with the length from the tenant.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from sealmark.errors import InvalidArgument
from sealmark.gs1.checkdigit import check_digit, normalize_gtin, validate_sscc
from sealmark.gs1.cset import validate_cset82
from sealmark.gs1.digital_link import parse_digital_link

# TDS §6.2 / table A-1: these serial characters are percent-escaped in a URN.
_ESCAPE = {c: f"%{ord(c):02X}" for c in '%"&/<>?'}
_URN = re.compile(r"^urn:epc:(id|class):(sgtin|sscc|lgtin):(\d+)\.(\d+)(?:\.(.+))?$")


def _escape(value: str) -> str:
    return "".join(_ESCAPE.get(c, c) for c in value)


def _check_cp_length(length: int, key_length: int) -> None:
    if not 6 <= length <= 12 or length >= key_length:
        raise InvalidArgument("company_prefix_length", f"{length}, want 6..12")


def sgtin_urn(gtin: str, serial: str, company_prefix_length: int) -> str:
    """``urn:epc:id:sgtin:CompanyPrefix.IndicatorItemRef.Serial``."""
    gtin14 = normalize_gtin(gtin)
    validate_cset82(serial, "serial")
    _check_cp_length(company_prefix_length, 13)
    prefix = gtin14[1 : 1 + company_prefix_length]
    item = gtin14[0] + gtin14[1 + company_prefix_length : 13]
    return f"urn:epc:id:sgtin:{prefix}.{item}.{_escape(serial)}"


def sscc_urn(sscc: str, company_prefix_length: int) -> str:
    """``urn:epc:id:sscc:CompanyPrefix.ExtensionSerialRef``."""
    validate_sscc(sscc)
    _check_cp_length(company_prefix_length, 17)
    prefix = sscc[1 : 1 + company_prefix_length]
    return f"urn:epc:id:sscc:{prefix}.{sscc[0]}{sscc[1 + company_prefix_length : 17]}"


def epc_urn_to_pairs(urn: str, field: str = "urn") -> list[tuple[str, str]]:
    """The GS1 AI pairs an SGTIN, SSCC or LGTIN-class URN stands for."""
    match = _URN.match(urn)
    if match is None:
        raise InvalidArgument(field, f"{urn[:60]!r} is not an sgtin, sscc or lgtin EPC URN")
    form, scheme, prefix, reference, tail = match.groups()
    if (form == "class") != (scheme == "lgtin"):
        raise InvalidArgument(field, f"{scheme} is not an urn:epc:{form} scheme")
    if scheme == "sscc":
        if tail is not None or len(prefix) + len(reference) != 17:
            raise InvalidArgument(field, "SSCC URN needs 17 digits of prefix and reference")
        data = reference[0] + prefix + reference[1:]
        return [("00", data + str(check_digit(data)))]
    if len(prefix) + len(reference) != 13 or tail is None:
        raise InvalidArgument(field, "SGTIN/LGTIN URN needs 13 digits and a serial or lot")
    data = reference[0] + prefix + reference[1:]
    gtin = data + str(check_digit(data))
    value = validate_cset82(unquote(tail), field)
    return [("01", gtin), ("10" if scheme == "lgtin" else "21", value)]


def digital_link_to_epc_urn(uri: str, company_prefix_length: int) -> str:
    """The SGTIN or SSCC URN of a Digital Link URI."""
    pairs = dict(parse_digital_link(uri))
    if "00" in pairs:
        return sscc_urn(pairs["00"], company_prefix_length)
    if "21" not in pairs:
        raise InvalidArgument("digital_link", "an SGTIN URN needs a serial (21)")
    return sgtin_urn(pairs["01"], pairs["21"], company_prefix_length)
