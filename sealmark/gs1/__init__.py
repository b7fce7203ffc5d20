"""GS1 identifiers: check digits, AI element strings, Digital Link URIs, EPC URNs, symbology
identifiers. Pure: standard library and biip (a pure parser) only.

Parsing leans on biip (``biip.gs1_messages``, ``biip.gs1_digital_link_uris``), wrapped with the
stricter checks a verifier needs (qualifiers never in the query, no empty values, CSET 82,
well-formed percent-encoding); generation is ours, so what we print is exactly what we sign.
"""

from sealmark.gs1.checkdigit import (
    check_digit,
    is_valid_key,
    make_sscc,
    normalize_gtin,
    validate_sscc,
)
from sealmark.gs1.code import GS1Code
from sealmark.gs1.cset import CSET82, validate_cset82
from sealmark.gs1.dates import format_yymmdd, parse_yymmdd
from sealmark.gs1.digital_link import build_digital_link, parse_digital_link
from sealmark.gs1.element_string import (
    GS,
    build_element_string,
    build_hri,
    parse_element_string,
    parse_hri,
)
from sealmark.gs1.epc import digital_link_to_epc_urn, epc_urn_to_pairs, sgtin_urn, sscc_urn
from sealmark.gs1.symbology import Scan, ScanKind, classify_scan

__all__ = [
    "CSET82",
    "GS",
    "GS1Code",
    "Scan",
    "ScanKind",
    "build_digital_link",
    "build_element_string",
    "build_hri",
    "check_digit",
    "classify_scan",
    "digital_link_to_epc_urn",
    "epc_urn_to_pairs",
    "format_yymmdd",
    "is_valid_key",
    "make_sscc",
    "normalize_gtin",
    "parse_digital_link",
    "parse_element_string",
    "parse_hri",
    "parse_yymmdd",
    "sgtin_urn",
    "sscc_urn",
    "validate_cset82",
    "validate_sscc",
]
