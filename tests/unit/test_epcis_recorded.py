"""Recorded payloads as EPCIS events (sealmark.epcis.recorded), without I/O: what the caller
said lands in its EPCIS place, and the id a writer answers with is the exported eventID in
either identifier format."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sealmark.epcis.document import IdentifierFormat, Identifiers, event_json
from sealmark.epcis.recorded import (
    KINDS,
    business_event_id,
    export_events,
    location_uri,
    party_uri,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GTIN = "09520123456788"
SSCC = "sscc:095201230000000011"
WHERE = {
    "event_time": "2026-11-23T02:08:05+00:00",
    "time_zone_offset": "+08:00",
    "location": "6901234000016",
    "read_point": "line 3/camera",
}
PAYLOADS: dict[str, dict[str, Any]] = {
    "aggregation.packed": {"parent": SSCC, "children": [GTIN + "A1", GTIN + "A2"], **WHERE},
    "aggregation.unpacked": {"parent": SSCC, "children": [GTIN + "A1"], "all": False, **WHERE},
    "aggregation.reworked": {
        "parent": SSCC,
        "removed": [GTIN + "A1"],
        "added": [GTIN + "A3"],
        "content": [GTIN + "A2", GTIN + "A3"],
    },
    "codes.scrapped": {"gtin": GTIN, "serials": ["A7"], "reason": "vision: grade D"},
    "aggregation.replaced": {"old": GTIN + "A1", "new": GTIN + "A9", "parent": SSCC},
    "aggregation.sampled": {"code": GTIN + "A2", "parent": SSCC, "reason": "QA"},
    "logistics.shipped": {"codes": [SSCC], "to_party": "dc-berlin", "destination_market": "DE"},
    "logistics.received": {"codes": [SSCC], "from_party": "6901234000023"},
    "logistics.decommissioned": {"codes": [SSCC], "reason": "destroyed", "state": "destroyed"},
    "logistics.decommission_undone": {"codes": [SSCC], "restored_state": "commissioned"},
    "lot.held": {"gtin": GTIN, "lot": "L1", "reason": "QC"},
    "lot.released": {"gtin": GTIN, "lot": "L1", "reason": ""},
}
URN = Identifiers(IdentifierFormat.EPC_URN, lambda key: 7)


def test_every_exported_kind_without_lookups_is_covered_here() -> None:
    assert set(KINDS) - set(PAYLOADS) == {"codes.commissioned", "audit.recalled"}


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_the_answered_id_is_the_primary_events_id_in_both_formats(kind: str) -> None:
    mapped = export_events(kind, PAYLOADS[kind], NOW)
    assert mapped.primary is not None
    answered = business_event_id(kind, PAYLOADS[kind], NOW)
    primary = mapped.events[mapped.primary]
    assert event_json(primary, Identifiers())["eventID"] == answered
    assert event_json(primary, URN)["eventID"] == answered


def test_time_offset_and_places_are_the_callers() -> None:
    (pack,) = export_events("aggregation.packed", PAYLOADS["aggregation.packed"], NOW).events
    exported = event_json(pack, Identifiers())
    assert exported["eventTime"] == "2026-11-23T02:08:05.000Z"
    assert exported["eventTimeZoneOffset"] == "+08:00"
    assert exported["bizLocation"] == {"id": "https://id.gs1.org/414/6901234000016"}
    assert exported["readPoint"] == {
        "id": "https://ns.sealmark.example/epcis/location/line%203%2Fcamera"
    }


@pytest.mark.parametrize(
    ("given", "location", "party"),
    [
        (
            "6901234000016",
            "https://id.gs1.org/414/6901234000016",
            "https://id.gs1.org/417/6901234000016",
        ),
        ("urn:epc:id:sgln:6901234.00001.0", "urn:epc:id:sgln:6901234.00001.0", None),
        ("6901234000017", "https://ns.sealmark.example/epcis/location/6901234000017", None),
        ("dc-berlin", None, "https://ns.sealmark.example/epcis/party/dc-berlin"),
    ],
)
def test_places_and_parties_become_uris(
    given: str, location: str | None, party: str | None
) -> None:
    if location is not None:
        assert location_uri(given) == location
    if party is not None:
        assert party_uri(given) == party


def test_a_transaction_of_no_cbv_type_and_no_uri_is_written_under_our_namespace() -> None:
    payload = {"codes": [SSCC], "to_party": "x", "biz_transactions": [["asn", "A 1"]]}
    (ship,) = export_events("logistics.shipped", payload, NOW).events
    assert event_json(ship, Identifiers())["bizTransactionList"] == [
        {
            "type": "https://ns.sealmark.example/epcis/btt/asn",
            "bizTransaction": "https://ns.sealmark.example/epcis/bt/A%201",
        }
    ]


def test_a_rework_is_everything_out_then_the_new_content_in() -> None:
    out, into = export_events("aggregation.reworked", PAYLOADS["aggregation.reworked"], NOW).events
    assert event_json(out, Identifiers()).get("childEPCs") is None
    assert len(event_json(into, Identifiers())["childEPCs"]) == 2
    old_row = {"parent": SSCC, "removed": [GTIN + "A1"], "added": [GTIN + "A3"]}
    out, into = export_events("aggregation.reworked", old_row, NOW).events
    assert len(event_json(out, Identifiers())["childEPCs"]) == 1


def test_a_rework_that_changed_nothing_has_no_event_and_no_id() -> None:
    payload = {"parent": SSCC, "removed": [], "added": [], "content": [GTIN + "A1"]}
    assert export_events("aggregation.reworked", payload, NOW).events == ()
    assert business_event_id("aggregation.reworked", payload, NOW) == ""


def test_an_old_lot_hold_row_names_its_lot_by_subject_only() -> None:
    (held,) = export_events("lot.held", {"reason": "QC"}, NOW, subject=f"lot:{GTIN}:L1").events
    exported = event_json(held, Identifiers())
    assert exported["quantityList"] == [{"epcClass": f"https://id.gs1.org/01/{GTIN}/10/L1"}]
    assert event_json(held, URN)["quantityList"] == [
        {"epcClass": "urn:epc:class:lgtin:9520123.045678.L1"}
    ]
