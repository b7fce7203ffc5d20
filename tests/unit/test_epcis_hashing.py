"""The CBV 2.0 event hash against the GS1 reference vectors, and its canonical forms."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealmark.epcis.canonical import canonical_id, canonical_number, canonical_time
from sealmark.epcis.events import EpcisError
from sealmark.epcis.hashing import event_hash, namespaces, prehash
from sealmark.gs1.checkdigit import check_digit
from sealmark.gs1.cset import CSET82
from sealmark.gs1.digital_link import build_digital_link
from sealmark.gs1.epc import sgtin_urn
from tests.reference import EPCIS_EVENT_HASH

VECTORS = EPCIS_EVENT_HASH
# Upstream committed this pre-hash line garbled (RalphTro/epcis-event-hash-generator 7c3574a):
# 72 stray characters are spliced into the true string, and the line does not hash to the
# file's own hash. Our pre-hash is the true one: it is a subsequence of the line and hashes
# to the expected value (test_the_garbled_vector_is_garbled_and_our_prehash_is_its_preimage).
GARBLED = ("epcisDocWithAllGS1Keys.jsonld", 0)


def _vector_files() -> list[Path]:
    files = sorted(VECTORS.glob("*.jsonld"))
    if len(files) < 5:  # never skip: missing vectors fail the collection
        raise FileNotFoundError(f"EPCIS event hash vectors missing under {VECTORS}")
    return files


def _cases() -> list[Any]:
    cases = []
    for path in _vector_files():
        document = json.loads(path.read_text(encoding="utf-8"))
        events = document["epcisBody"]["eventList"]
        prehashes = path.with_suffix(".prehashes").read_text(encoding="utf-8").splitlines()
        hashes = path.with_suffix(".hashes").read_text(encoding="utf-8").splitlines()
        assert len(events) == len(prehashes) == len(hashes), path.name
        for i, event in enumerate(events):
            cases.append((path.name, i, event, document["@context"], prehashes[i], hashes[i]))
    return cases


CASES = _cases()


def _param(case: Any) -> Any:
    marks = []
    if case[:2] == GARBLED:
        marks.append(pytest.mark.xfail(strict=True, reason="vector line garbled upstream"))
    return pytest.param(*case[2:5], id=f"{case[0]}-{case[1]}", marks=marks)


def test_every_vector_file_is_used() -> None:
    assert len(CASES) == 20
    assert {name for name, *_ in CASES} == {p.name for p in _vector_files()}


@pytest.mark.parametrize(("event", "context", "expected"), [_param(c) for c in CASES])
def test_prehash_matches_the_reference_vector(event: Any, context: Any, expected: str) -> None:
    assert prehash(event, context) == expected


@pytest.mark.parametrize(
    ("event", "context", "expected"),
    [pytest.param(c[2], c[3], c[5], id=f"{c[0]}-{c[1]}") for c in CASES],
)
def test_hash_matches_the_reference_vector(event: Any, context: Any, expected: str) -> None:
    assert event_hash(event, context) == expected


def test_the_garbled_vector_is_garbled_and_our_prehash_is_its_preimage() -> None:
    _, _, event, context, line, expected = next(c for c in CASES if c[:2] == GARBLED)
    ours = prehash(event, context)
    stray = iter(line)
    assert all(char in stray for char in ours)  # ours is a subsequence of the line
    assert len(line) - len(ours) == 72
    assert "ni:///sha-256;" + hashlib.sha256(line.encode()).hexdigest() + "?ver=CBV2.0" != expected
    assert "ni:///sha-256;" + hashlib.sha256(ours.encode()).hexdigest() + "?ver=CBV2.0" == expected


def _event(**fields: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2024-05-01T10:00:00.000+02:00",
        "eventTimeZoneOffset": "+02:00",
        "epcList": ["urn:epc:id:sgtin:4012345.012345.1", "urn:epc:id:sgtin:4012345.012345.2"],
        "action": "OBSERVE",
        "bizStep": "shipping",
    } | fields


def test_order_of_keys_and_lists_does_not_change_the_hash() -> None:
    event = _event(
        bizTransactionList=[
            {"type": "po", "bizTransaction": "urn:x:1"},
            {"bizTransaction": "urn:x:2"},
        ]
    )
    items = list(event.items())
    random.Random(7).shuffle(items)
    shuffled = dict(items) | {"epcList": event["epcList"][::-1]}
    shuffled["bizTransactionList"] = event["bizTransactionList"][::-1]
    assert event_hash(shuffled) == event_hash(event)


@pytest.mark.parametrize(
    "spelling",
    [
        "shipping",
        "urn:epcglobal:cbv:bizstep:shipping",
        "cbv:BizStep-shipping",
        " https://ref.gs1.org/cbv/BizStep-shipping ",
    ],
)
def test_every_spelling_of_a_cbv_value_hashes_alike(spelling: str) -> None:
    assert event_hash(_event(bizStep=spelling)) == event_hash(_event())


def test_any_change_changes_the_hash() -> None:
    base = event_hash(_event())
    assert event_hash(_event(action="ADD")) != base
    assert event_hash(_event(eventTime="2024-05-01T10:00:00.001+02:00")) != base
    assert event_hash(_event(epcList=["urn:epc:id:sgtin:4012345.012345.1"])) != base
    assert event_hash(_event(disposition="in_transit")) != base


def test_fields_outside_the_event_identity_do_not_count() -> None:
    extra = {"eventID": "urn:uuid:1", "recordTime": "2024-06-01T00:00:00Z", "rdfs:comment": "x"}
    assert event_hash(_event(**extra)) == event_hash(_event())


def test_ilmd_and_extensions_use_full_namespaces_and_keep_strings() -> None:
    event = _event(
        action="ADD", ilmd={"cbvmda:lotNumber": "007", "cbvmda:itemExpirationDate": "2026-05-31"}
    )
    event["ex:flag"] = True
    text = prehash(event, [{"ex": "https://ns.example.com/"}])
    assert text.endswith(
        "ilmd{urn:epcglobal:cbv:mda:}itemExpirationDate=2026-05-31"
        "{urn:epcglobal:cbv:mda:}lotNumber=007{https://ns.example.com/}flag=true"
    )


def test_an_event_without_a_type_cannot_be_hashed() -> None:
    with pytest.raises(EpcisError, match="type"):
        event_hash({"eventTime": "2024-05-01T10:00:00Z"})


def test_namespaces_merge_the_standard_prefixes_with_the_document() -> None:
    found = namespaces(
        ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"ex": "urn:ex:", "id": "@id"}]
    )
    assert (
        found["ex"] == "urn:ex:"
        and found["cbvmda"] == "urn:epcglobal:cbv:mda:"
        and "id" not in found
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-02-02T11:04:03.1415Z", "2023-02-02T11:04:03.142Z"),
        ("2023-02-02T11:04:03.14149Z", "2023-02-02T11:04:03.141Z"),
        ("2023-12-31T23:59:59.9995Z", "2024-01-01T00:00:00.000Z"),
        ("2019-10-21T00:05:00-06:00", "2019-10-21T06:05:00.000Z"),
        ("2022-02-16T20:33:31.116000-06:00", "2022-02-17T02:33:31.116Z"),
        ("2024-05-01T10:00:00.5+00:00", "2024-05-01T10:00:00.500Z"),
        ("2024-05-01 10:00:00Z", None),
        ("2024-02-30T10:00:00Z", None),
    ],
)
def test_canonical_time(text: str, expected: str | None) -> None:
    assert canonical_time(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (600, "600"),
        (12.0, "12"),
        ("1.50", "1.5"),
        ("+0.0", "0"),
        ("1e3", "1000"),
        (0.1, "0.1"),
        ("007x", None),
        ("inf", None),
        (True, None),
    ],
)
def test_canonical_number(value: object, expected: str | None) -> None:
    assert canonical_number(value) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("urn:epc:id:sgtin:0614141.107346.2017", "01/10614141073464/21/2017"),
        ("urn:epc:id:sgtin:4012345.012345.A%2FB%26C", "01/04012345123456/21/A%2FB%26C"),
        ("urn:epc:id:sscc:4012345.1112223334", "00/140123451122233341"),
        ("urn:epc:id:sgtin:4012345.012345.*", "01/04012345123456/21/%2A"),  # a serial "*"
        ("urn:epc:id:sgln:4012345.00011.0", "414/4012345000115"),
        ("urn:epc:id:sgln:0614141.07346.1234", "414/0614141073467/254/1234"),
        ("urn:epc:id:pgln:4012345.00000", "417/4012345000009"),
        ("urn:epc:class:lgtin:4012345.099988.2014-02-10", "01/04012345999884/10/2014-02-10"),
        ("urn:epc:idpat:sgtin:4012345.066666.*", "01/04012345666663"),
        (
            "https://example.com/resolver/gtin/4012345123456/lot/L1/ser/S1?17=260531",
            "01/04012345123456/21/S1",
        ),
        ("https://id.gs1.de/01/04012345123456/22/X/10/L%2F1", "01/04012345123456/10/L%2F1"),
        ("https://id.gs1.org/gtin/04012345123456/ser/gtin", "01/04012345123456/21/gtin"),
        ("https://id.gs1.org/01/09506000134352/21/a%27b", "01/09506000134352/21/a'b"),
        ("http://id.gs1.org/00/040123451111111110/", "00/040123451111111110"),
    ],
)
def test_identifiers_become_canonical_digital_links(uri: str, expected: str) -> None:
    assert canonical_id(uri) == "https://id.gs1.org/" + expected


@pytest.mark.parametrize(
    "uri",
    [
        "urn:epc:id:sgtin:4012345.01234.1",  # 12 digits, not 13
        "urn:epc:idpat:sgtin:4012345.012345.7",  # a pattern ends in *
        "urn:epc:id:foo:4012345.1",
        "https://id.gs1.org/01/123/21/1",
        "https://id.gs1.org/00/040123451111111110/21/1",  # an SSCC has no qualifiers
        "http://transaction.acme.com/po/12345678",
        "geo:47.506694,11.104301",
    ],
)
def test_other_uris_are_left_alone(uri: str) -> None:
    assert canonical_id(uri) is None


def _gtin(digits: str) -> str:
    return digits + str(check_digit(digits))


@given(
    body=st.text("0123456789", min_size=5, max_size=5),
    prefix_length=st.integers(7, 12),
    serial=st.text(sorted(CSET82), min_size=1, max_size=20),
)
def test_an_sgtin_urn_and_its_digital_link_are_the_same_identifier(
    body: str, prefix_length: int, serial: str
) -> None:
    gtin = _gtin("04012345" + body)
    urn = sgtin_urn(gtin, serial, prefix_length)
    link = build_digital_link([("01", gtin), ("21", serial)], "https://brand.example")
    assert canonical_id(urn) == canonical_id(link) is not None
