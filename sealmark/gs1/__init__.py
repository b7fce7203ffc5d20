"""GS1 identifiers: check digits, AIs, element strings and HRI, Digital Link URIs, EPC URNs,
symbology identifiers, and the :class:`GS1Code` façade. Pure: standard library, biip (a pure
parser) and :mod:`sealmark.errors` only; every bad input raises
:class:`sealmark.errors.InvalidArgument` naming the field the caller gave.

Generation is ours, so what we print is exactly what we sign. biip supplies the GS1 AI table
(which AIs exist, their formats and lengths) and splits element strings; Digital Link and
HRI parsing are ours, because a verifier must refuse what biip tolerates (see each module).
"""

from sealmark.gs1.ai import has_predefined_length, is_known_ai, validate_pairs, validate_value
from sealmark.gs1.checkdigit import (
    check_digit,
    is_valid_key,
    make_sscc,
    normalize_gtin,
    validate_sscc,
)
from sealmark.gs1.code import GS1Code
from sealmark.gs1.cset import CSET82, validate_cset82
from sealmark.gs1.dates import century_year, format_yymmdd, parse_yymmdd
from sealmark.gs1.digital_link import build_digital_link, parse_digital_link
from sealmark.gs1.element_string import (
    GS,
    build_element_string,
    build_hri,
    parse_element_string,
    parse_hri,
)
from sealmark.gs1.epc import (
    digital_link_to_epc_urn,
    epc_urn_to_digital_link,
    epc_urn_to_pairs,
    lgtin_urn,
    sgtin_urn,
    sscc_urn,
)
from sealmark.gs1.symbology import Scan, ScanKind, classify_scan, strip_symbology

__all__ = [
    "CSET82",
    "GS",
    "GS1Code",
    "Scan",
    "ScanKind",
    "build_digital_link",
    "build_element_string",
    "build_hri",
    "century_year",
    "check_digit",
    "classify_scan",
    "digital_link_to_epc_urn",
    "epc_urn_to_digital_link",
    "epc_urn_to_pairs",
    "format_yymmdd",
    "has_predefined_length",
    "is_known_ai",
    "is_valid_key",
    "lgtin_urn",
    "make_sscc",
    "normalize_gtin",
    "parse_digital_link",
    "parse_element_string",
    "parse_hri",
    "parse_yymmdd",
    "sgtin_urn",
    "sscc_urn",
    "strip_symbology",
    "validate_cset82",
    "validate_pairs",
    "validate_sscc",
    "validate_value",
]
