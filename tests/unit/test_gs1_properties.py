"""Round trips and bad input for the GS1 module."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealmark.errors import InvalidArgument
from sealmark.gs1 import (
    CSET82,
    GS1Code,
    build_element_string,
    check_digit,
    classify_scan,
    epc_urn_to_pairs,
    make_sscc,
    parse_digital_link,
    parse_element_string,
    parse_yymmdd,
    sgtin_urn,
    validate_cset82,
    validate_sscc,
)
from sealmark.gs1.symbology import ScanKind

TODAY = date(2026, 11, 22)
cset = st.text(alphabet=sorted(CSET82), min_size=1, max_size=20)
gtins = st.from_regex(r"\A[0-9]{13}\Z").map(lambda d: d + str(check_digit(d)))
dates = st.dates(min_value=date(1980, 1, 1), max_value=date(2075, 12, 31))


@given(gtin=gtins, serial=cset, lot=cset, expiry=dates)
def test_code_round_trips_through_all_three_forms(
    gtin: str, serial: str, lot: str, expiry: date
) -> None:
    code = GS1Code(gtin, serial, lot, expiry, signature="A" * 86)
    printed_forms = [
        code.to_element_string(),
        "]d2" + code.to_element_string(),
        code.to_digital_link("id.example.com"),
    ]
    if "(" not in serial + lot:  # HRI is display text: a '(' in a value is ambiguous there
        printed_forms.append(code.to_hri())
    for printed in printed_forms:
        back = GS1Code.from_scan(printed, today=TODAY)
        assert (back.gtin, back.serial, back.lot, back.expiry) == (gtin, serial, lot, expiry)
    assert GS1Code.from_scan(code.to_digital_link("id.example.com"), today=TODAY) == code


@given(gtin=gtins, serial=cset)
def test_sgtin_urn_round_trip(gtin: str, serial: str) -> None:
    assert epc_urn_to_pairs(sgtin_urn(gtin, serial, 7)) == [("01", gtin), ("21", serial)]


@given(ext=st.integers(0, 9), ref=st.integers(0, 10**9 - 1))
def test_made_ssccs_validate(ext: int, ref: int) -> None:
    sscc = make_sscc(ext, "9520123", ref)
    assert len(sscc) == 18 and validate_sscc(sscc) == sscc


def test_fnc1_only_after_variable_length_values() -> None:
    assert (
        build_element_string(
            [("01", "09520123456788"), ("10", "L1"), ("17", "261130"), ("21", "S1")]
        )
        == "0109520123456788"
        "10L1\x1d"
        "17261130"
        "21S1"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("261100", date(2026, 11, 30)),
        ("240200", date(2024, 2, 29)),
        ("991231", date(1999, 12, 31)),
        ("750101", date(2075, 1, 1)),
        ("761231", date(2076, 12, 31)),
        ("771231", date(1977, 12, 31)),
    ],
)
def test_gs1_dates(value: str, expected: date) -> None:
    assert parse_yymmdd(value, "expiry", today=TODAY) == expected


@pytest.mark.parametrize("value", ["261301", "260231", "2611", "26113a", ""])
def test_bad_dates_name_the_field(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_yymmdd(value, "IssueCodesRequest.expiry", today=TODAY)
    assert caught.value.field == "IssueCodesRequest.expiry"


@pytest.mark.parametrize("value", ["a b", "lot#1", "€", "x" * 21, "", "<script>"[:0] + "a$"])
def test_cset82_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_cset82(value, "lot")
    assert caught.value.field == "lot"


@pytest.mark.parametrize(
    "uri",
    [
        "https://a/01/09520123456788/21/%zz",
        "https://a/01/09520123456788/21/A%",
        "ftp://a/01/09520123456788",
        "https://a/01/09520123456789/21/1",
        "https://a/01/09520123456788/21/" + "x" * 3000,
        "https://a/no/key/here",
        "https://a/01/09520123456788/21/a%20b",
        "javascript:alert(1)",
    ],
)
def test_hostile_digital_links_are_invalid(uri: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_digital_link(uri)


@pytest.mark.parametrize(
    "payload", ["", "\x1d\x1d", "01", "0109520123456788\x1d" * 100, "'; DROP TABLE codes; --"]
)
def test_hostile_element_strings_are_invalid(payload: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_element_string(payload)


def test_classify_scan() -> None:
    assert classify_scan("]Q1https://x/01/1").kind is ScanKind.DIGITAL_LINK
    assert classify_scan("]d2010952").kind is ScanKind.ELEMENT_STRING
    assert classify_scan("(01)0952").kind is ScanKind.HRI
    assert classify_scan("hello").kind is ScanKind.UNKNOWN
