"""Every case of tests/reference/gs1-vectors.json, one test id each.

The file is vendored in the repository (tests/reference/README.md). A missing file fails
collection with its path: these are acceptance vectors, never skipped.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sealmark.errors import InvalidArgument
from sealmark.gs1 import (
    build_digital_link,
    build_element_string,
    check_digit,
    classify_scan,
    digital_link_to_epc_urn,
    epc_urn_to_digital_link,
    epc_urn_to_pairs,
    is_valid_key,
    normalize_gtin,
    parse_digital_link,
    parse_element_string,
    parse_hri,
    strip_symbology,
    validate_sscc,
)
from sealmark.gs1.symbology import ScanKind
from tests.reference import GS1_VECTORS

VECTORS_PATH = GS1_VECTORS


def _load() -> dict[str, Any]:
    if not VECTORS_PATH.is_file():
        raise FileNotFoundError(f"GS1 reference vectors missing: {VECTORS_PATH}")
    data: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return data


V = _load()
CHECK = V["check_digits"]
# A vector's "why", and the words our error must contain to say the same thing.
REASONS = {
    "check digit should be 0": "should be 0",
    "expected 18 digits": "want 18 digits",
    "non-numeric": "digits only",
    "space is not in CSET 82": "not in GS1 CSET 82",
    "key qualifier (10) in the query": "must be a path segment",
    "(99) is not a path qualifier of (01)": "(99) is not a path qualifier of (01)",
    "empty path segment": "empty path segment",
    "empty value": "(99) has an empty value",
    "mixed-case scheme": "http:// or https://",
}


def _ids(key: str) -> Any:
    return lambda case: repr(case[key])[:80]


def test_every_section_is_exercised() -> None:
    tested = {
        "check_digits",
        "element_strings",
        "element_string_errors",
        "digital_link_parse",
        "digital_link_reject",
        "digital_link_generate",
        "epc_urn_to_digital_link",
        "digital_link_to_epc_urn",
    }
    assert set(V) - {"about", "epcis_event_hash"} == tested


@pytest.mark.parametrize("gtin", CHECK["valid_gtin"])
def test_valid_gtin(gtin: str) -> None:
    assert normalize_gtin(gtin) == gtin.zfill(14)
    assert is_valid_key(gtin)


@pytest.mark.parametrize("sscc", CHECK["valid_sscc"])
def test_valid_sscc(sscc: str) -> None:
    assert validate_sscc(sscc) == sscc
    assert check_digit(sscc[:-1]) == int(sscc[-1])


@pytest.mark.parametrize("case", CHECK["invalid"], ids=_ids("value"))
def test_invalid_key(case: dict[str, str]) -> None:
    validate = validate_sscc if case["kind"] == "sscc" else normalize_gtin
    with pytest.raises(InvalidArgument) as caught:
        validate(case["value"])
    assert caught.value.field == case["kind"]
    assert REASONS[case["why"]] in caught.value.reason


@pytest.mark.parametrize("case", CHECK["compute"], ids=_ids("data"))
def test_compute_check_digit(case: dict[str, Any]) -> None:
    assert check_digit(case["data"]) == case["check"]


@pytest.mark.parametrize("case", V["element_strings"], ids=_ids("input"))
def test_element_string(case: dict[str, Any]) -> None:
    pairs = parse_element_string(case["input"])
    assert [list(pair) for pair in pairs] == case["ais"]
    # Our generator writes exactly what was scanned: GS only where the rules need it.
    assert build_element_string(pairs) == strip_symbology(case["input"])[1]
    scan = classify_scan(case["input"])
    assert scan.kind is ScanKind.ELEMENT_STRING
    assert scan.symbology == case.get("symbology")


@pytest.mark.parametrize("case", V["element_string_errors"], ids=_ids("input"))
def test_element_string_error(case: dict[str, str]) -> None:
    hri = case["input"].startswith("(")
    parse = parse_hri if hri else parse_element_string
    with pytest.raises(InvalidArgument) as caught:
        parse(case["input"])
    assert caught.value.field == ("hri" if hri else "element_string")
    if case["why"] in REASONS:
        assert REASONS[case["why"]] in caught.value.reason


@pytest.mark.parametrize("case", V["digital_link_parse"], ids=_ids("uri"))
def test_digital_link_parse(case: dict[str, str]) -> None:
    pairs = parse_digital_link(case["uri"])
    assert pairs == parse_element_string(case["element_string"])
    assert classify_scan("]Q1" + case["uri"]).kind is ScanKind.DIGITAL_LINK
    # What we generate from the same data reads back identically.
    stem = case["uri"].split("/0", 1)[0]
    assert parse_digital_link(build_digital_link(pairs, stem)) == pairs


@pytest.mark.parametrize("case", V["digital_link_reject"], ids=_ids("uri"))
def test_digital_link_reject(case: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_digital_link(case["uri"])
    assert caught.value.field == "digital_link"
    assert REASONS[case["why"]] in caught.value.reason


@pytest.mark.parametrize("case", V["digital_link_generate"], ids=_ids("uri"))
def test_digital_link_generate(case: dict[str, str]) -> None:
    pairs = parse_hri(case["element_string"])
    assert build_digital_link(pairs, case["stem"]) == case["uri"]
    assert dict(parse_digital_link(case["uri"])) == dict(pairs)


@pytest.mark.parametrize("case", V["epc_urn_to_digital_link"], ids=_ids("urn"))
def test_epc_urn_to_digital_link(case: dict[str, str]) -> None:
    assert epc_urn_to_digital_link(case["urn"]) == case["uri"]
    assert epc_urn_to_pairs(case["urn"]) == parse_digital_link(case["uri"])
    prefix_length = len(case["urn"].rsplit(":", 1)[1].split(".")[0])
    assert digital_link_to_epc_urn(case["uri"], prefix_length) == case["urn"]


@pytest.mark.parametrize("case", V["digital_link_to_epc_urn"], ids=_ids("uri"))
def test_digital_link_to_epc_urn(case: dict[str, Any]) -> None:
    assert digital_link_to_epc_urn(case["uri"], case["company_prefix_length"]) == case["urn"]
    assert epc_urn_to_digital_link(case["urn"]) == case["uri"]
