"""Every case of shared/reference/gs1-vectors.json, one test each."""

from __future__ import annotations

from typing import Any

import pytest

from sealmark.errors import InvalidArgument
from sealmark.gs1 import (
    GS,
    build_digital_link,
    check_digit,
    digital_link_to_epc_urn,
    epc_urn_to_pairs,
    normalize_gtin,
    parse_digital_link,
    parse_element_string,
    parse_hri,
    validate_sscc,
)
from tests.reference import gs1_vectors

V = gs1_vectors()


def _fnc1_pairs(element_string: str) -> list[tuple[str, str]]:
    return parse_element_string(element_string)


@pytest.mark.parametrize("gtin", V["check_digits"]["valid_gtin"])
def test_valid_gtins(gtin: str) -> None:
    assert normalize_gtin(gtin) == gtin.zfill(14)


@pytest.mark.parametrize("sscc", V["check_digits"]["valid_sscc"])
def test_valid_ssccs(sscc: str) -> None:
    assert validate_sscc(sscc) == sscc


@pytest.mark.parametrize("case", V["check_digits"]["invalid"], ids=lambda c: c["why"])
def test_invalid_keys(case: dict[str, str]) -> None:
    validate = validate_sscc if case["kind"] == "sscc" else normalize_gtin
    with pytest.raises(InvalidArgument) as caught:
        validate(case["value"])
    assert caught.value.field in ("sscc", "gtin")


@pytest.mark.parametrize("case", V["check_digits"]["compute"], ids=lambda c: c["data"])
def test_compute_check_digit(case: dict[str, Any]) -> None:
    assert check_digit(case["data"]) == case["check"]


@pytest.mark.parametrize("case", V["element_strings"], ids=lambda c: repr(c["input"]))
def test_element_strings(case: dict[str, Any]) -> None:
    assert [list(p) for p in parse_element_string(case["input"])] == case["ais"]


@pytest.mark.parametrize("case", V["element_string_errors"], ids=lambda c: c["why"])
def test_element_string_errors(case: dict[str, str]) -> None:
    parse = parse_hri if case["input"].startswith("(") else parse_element_string
    with pytest.raises(InvalidArgument):
        parse(case["input"])


@pytest.mark.parametrize("case", V["digital_link_parse"], ids=lambda c: c["uri"])
def test_digital_link_parse(case: dict[str, str]) -> None:
    assert parse_digital_link(case["uri"]) == _fnc1_pairs(case["element_string"])


@pytest.mark.parametrize("case", V["digital_link_reject"], ids=lambda c: c["why"])
def test_digital_link_reject(case: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_digital_link(case["uri"])
    assert caught.value.field == "digital_link"


@pytest.mark.parametrize("case", V["digital_link_generate"], ids=lambda c: c["uri"])
def test_digital_link_generate(case: dict[str, str]) -> None:
    pairs = parse_hri(case["element_string"])
    assert build_digital_link(pairs, case["stem"]) == case["uri"]


@pytest.mark.parametrize("case", V["epc_urn_to_digital_link"], ids=lambda c: c["urn"])
def test_epc_urn_to_digital_link(case: dict[str, str]) -> None:
    pairs = epc_urn_to_pairs(case["urn"])
    assert build_digital_link(pairs, "https://id.gs1.org") == case["uri"]
    assert parse_digital_link(case["uri"]) == pairs


@pytest.mark.parametrize("case", V["digital_link_to_epc_urn"], ids=lambda c: c["uri"])
def test_digital_link_to_epc_urn(case: dict[str, Any]) -> None:
    assert digital_link_to_epc_urn(case["uri"], case["company_prefix_length"]) == case["urn"]
    assert epc_urn_to_pairs(case["urn"]) == parse_digital_link(case["uri"])


def test_vectors_use_gs_as_scanned() -> None:
    assert any(GS in case["input"] for case in V["element_strings"])
