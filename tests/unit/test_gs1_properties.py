"""Round trips of the GS1 module on random valid data: generate, parse, get the same back."""

from __future__ import annotations

from datetime import date, timedelta
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from sealmark.gs1 import (
    CSET82,
    GS,
    GS1Code,
    build_digital_link,
    build_element_string,
    build_hri,
    check_digit,
    epc_urn_to_pairs,
    format_yymmdd,
    lgtin_urn,
    make_sscc,
    normalize_gtin,
    parse_digital_link,
    parse_element_string,
    parse_hri,
    parse_yymmdd,
    sgtin_urn,
    sscc_urn,
    validate_sscc,
)

TODAY = date(2026, 11, 22)
cset82 = st.text(alphabet=sorted(CSET82), min_size=1, max_size=20)
# HRI cannot hold a value containing "(" + digits + ")": it would read as the next AI.
hri_safe = cset82.filter(lambda v: "(" not in v)
base64url = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=1,
    max_size=90,
)
gtin14s = st.from_regex(r"\A[0-9]{13}\Z").map(lambda d: d + str(check_digit(d)))
# Any date the §7.12 window around TODAY maps back to itself.
window = st.dates(min_value=date(1977, 1, 1), max_value=date(2076, 12, 31))
stems = st.sampled_from(
    ["https://id.gs1.org", "https://example.com/01/prefix", "http://a:8080/00/01", "HTTPS://X"]
)


@given(data=st.from_regex(r"\A[0-9]{7}\Z|\A[0-9]{11,13}\Z"))
def test_any_gtin_length_normalises_to_14(data: str) -> None:
    gtin = data + str(check_digit(data))
    assert normalize_gtin(gtin) == gtin.zfill(14)
    assert check_digit(gtin.zfill(14)[:-1]) == int(gtin[-1])


@given(ext=st.integers(0, 9), ref=st.integers(0, 10**9 - 1), cp_length=st.integers(6, 12))
def test_sscc_made_validates_and_round_trips_as_urn(ext: int, ref: int, cp_length: int) -> None:
    sscc = make_sscc(ext, "9520123", ref)
    assert len(sscc) == 18 and validate_sscc(sscc) == sscc
    assert epc_urn_to_pairs(sscc_urn(sscc, cp_length)) == [("00", sscc)]


@given(value=window)
def test_dates_round_trip(value: date) -> None:
    assert parse_yymmdd(format_yymmdd(value, today=TODAY), "expiry", today=TODAY) == value


@given(value=window)
def test_day_00_is_the_last_day_of_the_month(value: date) -> None:
    text = format_yymmdd(value)[:4] + "00"
    last = parse_yymmdd(text, "expiry", today=TODAY)
    assert (last.year, last.month) == (value.year, value.month)
    assert (last + timedelta(days=1)).day == 1


@settings(deadline=None)
@given(
    gtin=gtin14s,
    lot=st.none() | cset82,
    serial=cset82,
    expiry=st.none() | window,
    production=st.none() | window,
    signature=st.none() | base64url,
    extra=st.none() | st.text(alphabet=sorted(CSET82), min_size=1, max_size=90),
    order=st.randoms(use_true_random=False),
)
def test_element_string_and_hri_round_trip(
    gtin: str,
    lot: str | None,
    serial: str,
    expiry: date | None,
    production: date | None,
    signature: str | None,
    extra: str | None,
    order: Random,
) -> None:
    pairs = [("01", gtin), ("21", serial)]
    pairs += [("10", lot)] if lot else []
    pairs += [("17", format_yymmdd(expiry))] if expiry else []
    pairs += [("11", format_yymmdd(production))] if production else []
    pairs += [("8030", signature)] if signature else []
    pairs += [("99", extra)] if extra else []
    order.shuffle(pairs)
    printed = build_element_string(pairs)
    assert parse_element_string(printed) == pairs
    assert parse_element_string("]d2" + printed) == pairs
    assert parse_element_string("^" + printed.replace(GS, "^")) == pairs
    if not any("(" in value for _, value in pairs):
        assert parse_hri(build_hri(pairs)) == pairs


@settings(deadline=None)
@given(
    gtin=gtin14s,
    cpv=st.none() | cset82,
    lot=st.none() | cset82,
    serial=st.none() | cset82,
    expiry=st.none() | window,
    signature=st.none() | base64url,
    stem=stems,
)
def test_digital_link_round_trip(
    gtin: str,
    cpv: str | None,
    lot: str | None,
    serial: str | None,
    expiry: date | None,
    signature: str | None,
    stem: str,
) -> None:
    attributes = [("17", format_yymmdd(expiry))] if expiry else []
    attributes += [("8030", signature)] if signature else []
    qualifiers = [(ai, v) for ai, v in (("22", cpv), ("10", lot), ("21", serial)) if v]
    # Given in any order, qualifiers come out in path order, attributes in given order.
    uri = build_digital_link([*attributes, *reversed(qualifiers), ("01", gtin)], stem)
    assert parse_digital_link(uri) == [("01", gtin), *qualifiers, *attributes]
    assert "+" not in uri and " " not in uri


@settings(deadline=None)
@given(gtin=gtin14s, serial=cset82, lot=cset82, expiry=window, production=window)
def test_code_round_trips_through_every_printed_form(
    gtin: str, serial: str, lot: str, expiry: date, production: date
) -> None:
    code = GS1Code(gtin, serial, lot, expiry, production, signature="A" * 86)
    dl = code.to_digital_link("id.example.com")
    assert GS1Code.from_digital_link(dl, today=TODAY) == code
    assert GS1Code.from_element_string(code.to_element_string(), today=TODAY) == code
    assert GS1Code.from_scan("]Q1" + dl, today=TODAY) == code
    assert GS1Code.from_scan("]d2" + code.to_element_string(), today=TODAY) == code
    if "(" not in serial + lot:
        from_hri = GS1Code.from_hri(code.to_hri(), today=TODAY)
        assert from_hri == GS1Code(gtin, serial, lot, expiry, production)


@given(gtin=gtin14s, serial=cset82, cp_length=st.integers(6, 12))
def test_sgtin_and_lgtin_urns_round_trip(gtin: str, serial: str, cp_length: int) -> None:
    urn = sgtin_urn(gtin, serial, cp_length)
    assert not set(urn.split(".", 2)[2]) & set('"&/<>?')
    assert epc_urn_to_pairs(urn) == [("01", gtin), ("21", serial)]
    assert epc_urn_to_pairs(lgtin_urn(gtin, serial, cp_length)) == [("01", gtin), ("10", serial)]
