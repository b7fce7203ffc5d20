"""Bad input to the GS1 module: refused, with the caller's field name and a useful reason."""

from __future__ import annotations

from datetime import date

import pytest

from sealmark.errors import InvalidArgument
from sealmark.gs1 import (
    GS1Code,
    build_digital_link,
    build_element_string,
    build_hri,
    check_digit,
    format_yymmdd,
    make_sscc,
    normalize_gtin,
    parse_digital_link,
    parse_element_string,
    parse_hri,
    parse_yymmdd,
    validate_cset82,
)
from sealmark.gs1.digital_link import KEY_QUALIFIERS, PRIMARY_KEYS, QUALIFIERS

TODAY = date(2026, 11, 22)
GTIN = "09520123456788"
DL = f"https://a/01/{GTIN}"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("09520123456789", "wrong check digit: should be 8, not 9"),
        ("09520123456", "want 8/12/13/14 digits, got 11"),
        ("0952O123456788", "digits only"),
        ("", "digits only"),
        ("٠٩٥٢٠١٢٣٤٥٦٧٨٨", "digits only"),  # Arabic-Indic digits are str.isdigit()
    ],
)
def test_bad_gtins_name_the_field(value: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_gtin(value, field="IssueRequest.gtin")
    assert caught.value.field == "IssueRequest.gtin"
    assert reason in caught.value.reason


def test_other_bad_keys() -> None:
    with pytest.raises(InvalidArgument, match="data: "):
        check_digit("12a")
    with pytest.raises(InvalidArgument, match="serial_reference"):
        make_sscc(0, "9520123", 10**9)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("261100", date(2026, 11, 30)),
        ("240200", date(2024, 2, 29)),
        ("250200", date(2025, 2, 28)),
        ("991231", date(1999, 12, 31)),
        ("760101", date(2076, 1, 1)),
        ("771231", date(1977, 12, 31)),
    ],
)
def test_gs1_century_window_and_day_00(value: str, expected: date) -> None:
    assert parse_yymmdd(value, "expiry", today=TODAY) == expected


@pytest.mark.parametrize("value", ["261301", "260231", "250229", "2611", "26113a", "", "261132"])
def test_bad_dates_name_the_field(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_yymmdd(value, "IssueCodesRequest.expiry", today=TODAY)
    assert caught.value.field == "IssueCodesRequest.expiry"


def test_dates_outside_the_window_cannot_be_written() -> None:
    with pytest.raises(InvalidArgument, match="expiry: 2077-01-01 is outside"):
        format_yymmdd(date(2077, 1, 1), "expiry", today=TODAY)


@pytest.mark.parametrize("value", ["a b", "lot#1", "€", "x" * 21, "", "a$", "a@b"])
def test_cset82_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_cset82(value, "lot")
    assert caught.value.field == "lot"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gtin": "09520123456789", "serial": "1"}, "gtin"),
        ({"gtin": GTIN, "serial": "a b"}, "serial"),
        ({"gtin": GTIN, "serial": "0" * 21}, "serial"),
        ({"gtin": GTIN, "serial": "1", "lot": ""}, "lot"),
        ({"gtin": GTIN, "serial": "1", "signature": "a+b/="}, "signature"),
    ],
)
def test_code_fields_are_named(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        GS1Code(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_serials_stay_strings() -> None:
    code = GS1Code(GTIN, "000123", lot="0007")
    assert code.to_hri() == f"(01){GTIN}(10)0007(21)000123"
    back = GS1Code.from_element_string(code.to_element_string(), today=TODAY)
    assert (back.serial, back.lot) == ("000123", "0007")


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        ([], "at least one AI"),
        ([("01", GTIN), ("01", GTIN)], "(01) appears more than once"),
        ([("9", "x")], "(9) is not a GS1 application identifier"),
        ([("991", "x")], "(991) is not a GS1"),
        ([("17", "261301")], "month 13"),
        ([("8030", "ab=")], "not base64url"),
        ([("10", "x" * 21)], "want 1..20"),
        ([("3103", "12a456")], "does not match"),
    ],
)
def test_generation_refuses_bad_pairs(pairs: list[tuple[str, str]], reason: str) -> None:
    for build in (build_element_string, build_hri):
        with pytest.raises(InvalidArgument) as caught:
            build(pairs, field="Label.data")
        assert caught.value.field == "Label.data"
        assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "empty"),
        ("\x1d\x1d", "empty"),
        ("01", "Failed"),
        (f"01{GTIN}\x1d\x1d10A", "two separators"),
        (f"01{GTIN}10A B", "' ' at position 19"),
        (f"01{GTIN}10A\x1d10B", "(10) appears more than once"),
        (f"]Q101{GTIN}", "carries no element string"),
        ("'; DROP TABLE codes; --", "' ' at position 2"),
        ("01" + GTIN[:-1] + "9", "should be 8"),
        ("x" * 600, "at most 512"),
    ],
)
def test_hostile_element_strings(payload: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_element_string(payload, "VerifyRequest.payload")
    assert caught.value.field == "VerifyRequest.payload"
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "text", ["01)x", f" (01){GTIN}", f"(01){GTIN}(10)", f"(01){GTIN}(10)A B", f"(01){GTIN}(zz)1"]
)
def test_bad_hri(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_hri(text)
    assert caught.value.field == "hri"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        (f"{DL}/21/%zz", "malformed percent"),
        (f"{DL}/21/A%", "malformed percent"),
        (f"{DL}/21/%FF", "not UTF-8"),
        ("ftp://a/01/09520123456788", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("https://a/01/09520123456789/21/1", "should be 8"),
        (f"{DL}/21/" + "x" * 3000, "at most 2048"),
        ("https://a/no/key/here", "no (01) GTIN"),
        ("https:///01/09520123456788", "no host"),
        (f"{DL}/21/a%20b", "not in GS1 CSET 82"),
        (f"{DL}/21/a b", "not URI text"),
        (f"{DL}/21/1/10/A", "(10) is not a path qualifier of (01) here"),
        (f"{DL}/21/1/21/2", "(21) is not a path qualifier"),
        (f"{DL}/", "empty path segment"),
        (f"{DL}?01={GTIN}", "(01) is a primary key"),
        (f"{DL}?21=1", "must be a path segment"),
        (f"{DL}?17=261130&17=261130", "(17) appears more than once"),
        (f"{DL}?9999=x", "(9999) is not a GS1 application identifier"),
        (f"{DL}?17=261301", "month 13"),
        (f"{DL}?99=a+b", "write %2B"),
        (f"{DL}?17", "(17) has an empty value"),
        ("https://a/00/106141412345678908/21/1", "not a path qualifier of (00)"),
        ("https://a/01/123", "GTIN is 3 characters, want 14"),
    ],
)
def test_hostile_digital_links(uri: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_digital_link(uri, "VerifyRequest.uri")
    assert caught.value.field == "VerifyRequest.uri"
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("uri", "pairs"),
    [
        (f"HTTPS://A/01/{GTIN}", [("01", GTIN)]),
        (f"https://a/01/01/{GTIN}/21/00", [("01", GTIN), ("21", "00")]),
        (f"https://a/x/00/01/{GTIN}/10/01", [("01", GTIN), ("10", "01")]),
        ("https://a/01/9501101531000", [("01", "09501101531000")]),
        (
            f"{DL}/21/a+b?linkType=gs1:pip&&17=261100#top",
            [("01", GTIN), ("21", "a+b"), ("17", "261100")],
        ),
        (f"{DL}/21/%2B?99=%2B", [("01", GTIN), ("21", "+"), ("99", "+")]),
    ],
)
def test_digital_links_accepted(uri: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_digital_link(uri) == pairs


@pytest.mark.parametrize(
    ("stem", "pairs", "reason"),
    [
        ("https://a/", [("01", GTIN)], "stem"),
        ("https://a?x=1", [("01", GTIN)], "stem"),
        ("https://a", [("10", "A")], "exactly one primary key"),
        ("https://a", [("01", GTIN), ("00", "106141412345678908")], "exactly one primary key"),
    ],
)
def test_digital_link_generation_refuses(
    stem: str, pairs: list[tuple[str, str]], reason: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        build_digital_link(pairs, stem)
    assert reason in str(caught.value)


def test_digital_link_generation_encodes_reserved_characters() -> None:
    uri = build_digital_link([("01", GTIN), ("21", "a/b+c-d"), ("99", "x&y=z+")], "https://a")
    assert uri == f"https://a/01/{GTIN}/21/a%2Fb%2Bc-d?99=x%26y%3Dz%2B"


def test_code_needs_gtin_and_serial() -> None:
    with pytest.raises(InvalidArgument, match="payload: a serialised item needs"):
        GS1Code.from_scan("https://a/00/106141412345678908", today=TODAY)
    with pytest.raises(InvalidArgument, match="payload: not a GS1"):
        GS1Code.from_scan("]Q1hello", today=TODAY)


SSCC = "106141412345678908"


def test_each_key_has_its_own_qualifiers() -> None:
    assert QUALIFIERS["01"] == ("22", "10", "21", "235")
    assert KEY_QUALIFIERS["00"] == ()
    assert KEY_QUALIFIERS["414"] == (("254",), ("7040",))
    assert set(PRIMARY_KEYS) <= set(KEY_QUALIFIERS)


@pytest.mark.parametrize(
    ("uri", "pairs"),
    [
        # (10) and (21) qualify a GTIN only: on an SSCC link they are data attributes.
        (f"https://a/00/{SSCC}?10=ABC", [("00", SSCC), ("10", "ABC")]),
        (f"https://a/00/{SSCC}?21=1&17=261130", [("00", SSCC), ("21", "1"), ("17", "261130")]),
        (f"{DL}/235/TPX1", [("01", GTIN), ("235", "TPX1")]),
    ],
)
def test_qualifiers_belong_to_their_key(uri: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_digital_link(uri) == pairs
    assert build_digital_link(pairs, "https://a") == uri


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        (f"{DL}?10=A", "key qualifier (10) of (01) must be a path segment"),
        (f"{DL}?235=A", "key qualifier (235) of (01)"),
        (f"{DL}/21/1/235/X", "(235) is not a path qualifier of (01)"),
        (f"{DL}/235/X/21/1", "(21) is not a path qualifier of (01)"),
        (f"https://a/00/{SSCC}/10/A", "(10) is not a path qualifier of (00)"),
        (f"https://a/00/{SSCC}?01={GTIN}", "(01) is a primary key"),
        (f"{DL}?414=9520123456788", "(414) is a primary key"),
        (f"{DL}/21/1?8200=https%3A%2F%2Fx", "(8200) is not a Digital Link data attribute"),
    ],
)
def test_only_data_attributes_in_the_query(uri: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_digital_link(uri, "VerifyRequest.uri")
    assert caught.value.field == "VerifyRequest.uri"
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        ([("01", GTIN), ("21", "1"), ("8200", "https://x")], "(8200) is not a Digital Link"),
        ([("01", GTIN), ("414", "9520123456788")], "(414) is a primary key"),
        ([("01", GTIN), ("10", "A"), ("235", "X")], "one chain only"),
    ],
)
def test_builder_writes_only_attributes_in_the_query(
    pairs: list[tuple[str, str]], reason: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        build_digital_link(pairs, "https://a", field="Label.data")
    assert caught.value.field == "Label.data"
    assert reason in caught.value.reason


@pytest.mark.parametrize("padded", ["abcdef==", "abcdef%3D%3D", "abcdefg="])
def test_padded_digsig_is_the_same_signature(padded: str) -> None:
    pairs = parse_digital_link(f"{DL}/21/1?8030={padded}")
    assert pairs[-1] == ("8030", padded.split("=")[0].split("%")[0])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abcde=", "malformed base64url padding"),
        ("abcd=", "malformed base64url padding"),
        ("ab===", "malformed base64url padding"),
        ("===", "malformed base64url padding"),
        ("ab=c", "not base64url"),
    ],
)
def test_bad_digsig_padding_is_refused(value: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_digital_link(f"{DL}/21/1?8030={value}", "VerifyRequest.uri")
    assert caught.value.field == "VerifyRequest.uri"
    assert reason in caught.value.reason


def test_malformed_harvest_date_is_not_split() -> None:
    # Eight digits then "ABC": biip alone would read (7007) 230101 and then (21) ABC.
    with pytest.raises(InvalidArgument) as caught:
        parse_element_string(f"^01{GTIN}700723010121ABC")
    assert "(7007) '230101' runs into (21) without a separator" in caught.value.reason
    with pytest.raises(InvalidArgument, match="does not match"):
        parse_digital_link(f"{DL}/21/1?7007=23010121")


@pytest.mark.parametrize(
    ("payload", "pairs"),
    [
        (f"^01{GTIN}7007230101^21ABC", [("01", GTIN), ("7007", "230101"), ("21", "ABC")]),
        (f"^01{GTIN}700723010123013121A", [("01", GTIN), ("7007", "230101230131"), ("21", "A")]),
        (f"^01{GTIN}10{'L' * 20}21A", [("01", GTIN), ("10", "L" * 20), ("21", "A")]),
    ],
)
def test_values_end_at_separator_or_maximum(payload: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_element_string(payload) == pairs


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("[fe80::1%25eth0]", "IPv6 zone id"),
        ("[fe80::1%25eth0]:443", "IPv6 zone id"),
        ("[zz::g]", "malformed IPv6 address"),
        ("a]", "malformed IP literal"),
    ],
)
def test_ip_literal_hosts(host: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_digital_link(f"https://{host}/01/{GTIN}", "VerifyRequest.uri")
    assert caught.value.field == "VerifyRequest.uri"
    assert reason in caught.value.reason
    assert parse_digital_link(f"https://[fe80::1]:8443/01/{GTIN}") == [("01", GTIN)]
