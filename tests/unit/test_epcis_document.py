"""EPCIS 2.0 export: every kind in both identifier formats validates against the official JSON
schema, carries its CBV 2.0 event hash as eventID, and streams in constant memory."""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# jsonschema ships no type stubs and types-jsonschema is not a dev dependency.
from jsonschema import Draft7Validator, ValidationError  # type: ignore[import-untyped]

from sealmark.epcis.document import (
    CONTEXT,
    EXTENSION_NAMESPACE,
    EpcisError,
    IdentifierFormat,
    Identifiers,
    check_event,
    event_json,
    stream_document,
)
from sealmark.epcis.events import (
    Commission,
    Decommission,
    ExportEvent,
    LotStatus,
    Pack,
    Recall,
    Receive,
    Replace,
    Restore,
    Retirement,
    Sample,
    Ship,
    Unpack,
)
from sealmark.epcis.hashing import event_hash
from sealmark.errors import InvalidArgument
from sealmark.gs1.checkdigit import check_digit
from tests.support.epcis_schema import EXAMPLES, FORMATS, SCHEMA, VALIDATOR, VALIDATOR_CLASS

GTIN = "04012345123456"
SSCC = "040123450000000016"
T = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
COMMON: dict[str, Any] = {"event_time": T, "tz_offset": "+02:00"}
SGLN = "urn:epc:id:sgln:4012345.00011.0"
FORMATS_UNDER_TEST = {
    "digital_link": Identifiers(),
    "epc_urn": Identifiers(IdentifierFormat.EPC_URN, lambda key: 7),
    "brand_resolver": Identifiers(stem="https://id.sealmark.example/r"),
}
# kind → (event, type, action, bizStep, disposition)
KINDS: dict[str, tuple[ExportEvent, str, str, str | None, str | None]] = {
    "commission": (
        Commission(
            **COMMON, epcs=((GTIN, "S1"), (GTIN, "S2")), lot="L-007", expiry=date(2026, 5, 31)
        ),
        *("ObjectEvent", "ADD", "commissioning", "active"),
    ),
    "pack": (
        Pack(**COMMON, parent=SSCC, children=((GTIN, "S1"), (GTIN, "S2")), read_point=SGLN),
        *("AggregationEvent", "ADD", "packing", "in_progress"),
    ),
    "repack": (
        Pack(**COMMON, parent=SSCC, children=((GTIN, "S3"),), step="repackaging"),
        *("AggregationEvent", "ADD", "repackaging", "in_progress"),
    ),
    "unpack_some": (
        Unpack(**COMMON, parent=SSCC, children=((GTIN, "S1"),)),
        *("AggregationEvent", "DELETE", "unpacking", "in_progress"),
    ),
    "unpack_all": (
        Unpack(**COMMON, parent=SSCC),
        *("AggregationEvent", "DELETE", "unpacking", "in_progress"),
    ),
    "ship": (
        Ship(
            **COMMON,
            epcs=(SSCC,),
            destinations=(("location", "urn:epc:id:sgln:4000001.00012.0"),),
            biz_transactions=(("desadv", "urn:epcglobal:cbv:bt:4000001000005:42"),),
            market="CN-31",
        ),
        *("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
    ),
    "receive": (
        Receive(**COMMON, epcs=(SSCC,), biz_location="https://id.gs1.org/414/4012345000115"),
        *("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
    ),
    "recall": (
        Recall(**COMMON, epcs=((GTIN, "S1"),)),
        *("ObjectEvent", "OBSERVE", "holding", "recalled"),
    ),
    "sample": (
        Sample(**COMMON, epcs=((GTIN, "S1"),), note="QA: fill level"),
        *("ObjectEvent", "OBSERVE", "sampling", "non_sellable_other"),
    ),
    "replace": (
        Replace(**COMMON, old=(GTIN, "S1"), new=(GTIN, "S9")),
        *("ObjectEvent", "OBSERVE", "replacing", "inactive"),
    ),
    "restore": (
        Restore(**COMMON, epcs=((GTIN, "S1"),), disposition="active"),
        *("ObjectEvent", "OBSERVE", None, "active"),
    ),
    "hold": (
        LotStatus(**COMMON, gtin=GTIN, lot="L-007", held=True),
        *("ObjectEvent", "OBSERVE", "holding", "sellable_not_accessible"),
    ),
    "release": (
        LotStatus(**COMMON, gtin=GTIN, lot="L-007", held=False),
        *("ObjectEvent", "OBSERVE", "holding", "sellable_accessible"),
    ),
    **{
        f"decommission_{r.name.lower()}": (
            Decommission(**COMMON, epcs=((GTIN, "S1"),), reason=r),
            *("ObjectEvent", r.action, r.biz_step, r.disposition),
        )
        for r in Retirement
    },
}


def _document(events: list[ExportEvent], identifiers: Identifiers, **kwargs: Any) -> Any:
    return json.loads(b"".join(stream_document(events, identifiers, T, **kwargs)))


def test_the_validator_is_the_one_the_schema_asks_for() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert VALIDATOR_CLASS is Draft7Validator
    Draft7Validator.check_schema(SCHEMA)
    assert {"uri", "date-time"} <= set(FORMATS.checkers)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_official_examples_are_valid(path: Path) -> None:
    VALIDATOR.validate(json.loads(path.read_text("utf-8")))


def test_there_are_official_examples() -> None:
    assert len(EXAMPLES) >= 4  # never skip: a missing reference directory fails


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("action",), "MOVE"),
        (("eventTime",), "yesterday"),  # caught only because the date-time check is real
        (("eventTimeZoneOffset",), "+2:00"),
        (("epcList",), ["not a uri"]),
        (("bizStep",), "urn:epcglobal:cbv:bizstep:shipping"),  # CBV URNs are not allowed
    ],
)
def test_a_broken_document_fails_validation(path: tuple[str, ...], value: object) -> None:
    document = _document([KINDS["ship"][0]], Identifiers())
    document["epcisBody"]["eventList"][0][path[0]] = value
    with pytest.raises(ValidationError):
        VALIDATOR.validate(document)


@pytest.mark.parametrize("fmt", FORMATS_UNDER_TEST)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_exports_a_valid_document(kind: str, fmt: str) -> None:
    event, type_, action, biz_step, disposition = KINDS[kind]
    document = _document([event], FORMATS_UNDER_TEST[fmt], sender="urn:epc:id:pgln:4012345.00000")
    VALIDATOR.validate(document)
    assert document["@context"] == CONTEXT and document["schemaVersion"] == "2.0"
    (exported,) = document["epcisBody"]["eventList"]
    check_event(exported, document["@context"])
    assert exported["eventID"] == event_hash(exported, document["@context"])
    assert (exported["type"], exported["action"]) == (type_, action)
    assert (exported.get("bizStep"), exported.get("disposition")) == (biz_step, disposition)
    assert exported["eventTime"] == "2024-05-01T08:00:00.123Z"
    assert exported["eventTimeZoneOffset"] == "+02:00"


@pytest.mark.parametrize("kind", KINDS)
def test_the_event_id_does_not_depend_on_the_identifier_format(kind: str) -> None:
    event = KINDS[kind][0]
    by_format = [event_json(event, ids) for ids in FORMATS_UNDER_TEST.values()]
    assert len({json.dumps(exported) for exported in by_format}) == len(by_format)
    assert len({exported["eventID"] for exported in by_format}) == 1


def test_identifiers_in_both_formats() -> None:
    exported = {f: event_json(KINDS["pack"][0], ids) for f, ids in FORMATS_UNDER_TEST.items()}
    assert exported["digital_link"]["parentID"] == f"https://id.gs1.org/00/{SSCC}"
    assert exported["digital_link"]["childEPCs"][0] == f"https://id.gs1.org/01/{GTIN}/21/S1"
    assert exported["epc_urn"]["parentID"] == "urn:epc:id:sscc:4012345.0000000001"
    assert exported["epc_urn"]["childEPCs"][0] == "urn:epc:id:sgtin:4012345.012345.S1"


def test_urns_need_the_company_prefix_length() -> None:
    with pytest.raises(EpcisError, match="prefix_length"):
        Identifiers(IdentifierFormat.EPC_URN)


@pytest.mark.parametrize("stem", ["https://id.gs1.org/", "id.gs1.org", "https://a b"])
def test_a_digital_link_stem_is_checked(stem: str) -> None:
    with pytest.raises(EpcisError, match="stem"):
        Identifiers(stem=stem)


ALLOWED_IMPORTS = ("sealmark.epcis", "sealmark.errors", "sealmark.gs1", "sealmark.tenancy.model")


def test_the_epcis_package_is_pure() -> None:
    # STYLE.md habit 1: the standard library and our own pure modules only.
    package = Path(__file__).resolve().parents[2] / "sealmark" / "epcis"
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 5
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                pure = name == "__future__" or top in sys.stdlib_module_names
                ours = any(name == a or name.startswith(a + ".") for a in ALLOWED_IMPORTS)
                assert pure or ours, f"{path.name} imports {name}"


def test_commissioning_carries_lot_and_expiry_in_the_ilmd() -> None:
    exported = event_json(KINDS["commission"][0], Identifiers())
    assert exported["ilmd"] == {
        "cbvmda:lotNumber": "L-007",
        "cbvmda:itemExpirationDate": "2026-05-31",
    }


def test_shipping_names_the_destination_location_and_market() -> None:
    exported = event_json(KINDS["ship"][0], Identifiers())
    assert exported["destinationList"] == [
        {"type": "location", "destination": "urn:epc:id:sgln:4000001.00012.0"}
    ]
    assert exported["sealmark:market"] == "CN-31"
    assert CONTEXT[1] == {"cbvmda": "urn:epcglobal:cbv:mda:", "sealmark": EXTENSION_NAMESPACE}


def test_unpacking_without_children_means_everything() -> None:
    assert "childEPCs" not in event_json(KINDS["unpack_all"][0], Identifiers())
    assert len(event_json(KINDS["unpack_some"][0], Identifiers())["childEPCs"]) == 1


def _aggregation(**fields: Any) -> dict[str, Any]:
    exported = event_json(KINDS["pack"][0], Identifiers())
    return {k: v for k, v in exported.items() if k != "eventID"} | fields


@pytest.mark.parametrize("action", ["ADD", "DELETE"])
def test_check_event_rejects_an_aggregation_without_parent(action: str) -> None:
    event = _aggregation(action=action)
    del event["parentID"]
    VALIDATOR.validate({"@context": CONTEXT, **event})  # the schema lets it through
    with pytest.raises(EpcisError, match=r"AggregationEvent\.parentID") as caught:
        check_event(event)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, InvalidArgument)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"childEPCs": []}, "AggregationEvent.childEPCs"),
        ({"childEPCs": ["urn:x:1", "urn:x:1"]}, "AggregationEvent.childEPCs"),
        ({"eventTimeZoneOffset": "+15:00"}, "AggregationEvent.eventTimeZoneOffset"),
        ({"eventTime": "2024-05-01T10:00:00"}, "AggregationEvent.eventTime"),
        ({"eventID": "ni:///sha-256;00?ver=CBV2.0"}, "AggregationEvent.eventID"),
        ({"type": "Event"}, "type"),
        ({"type": "ObjectEvent", "epcList": [], "action": "OBSERVE"}, "ObjectEvent.epcList"),
    ],
)
def test_check_event_names_the_broken_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(EpcisError) as caught:
        check_event(_aggregation(**fields))
    assert caught.value.field == field


def test_check_event_accepts_an_observation_without_parent_and_a_foreign_event_id() -> None:
    event = _aggregation(action="OBSERVE", eventID="urn:uuid:5d3c82cc-3fb2-4b70-af4a-914f1f839c5b")
    del event["parentID"]
    check_event(event)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (
            lambda: Ship(event_time=T.replace(tzinfo=None), tz_offset="+02:00", epcs=(SSCC,)),
            "event_time",
        ),
        (lambda: Ship(event_time=T, tz_offset="+2:00", epcs=(SSCC,)), "tz_offset"),
        (lambda: Ship(**COMMON, epcs=()), "epcs"),
        (lambda: Ship(**COMMON, epcs=(SSCC, SSCC)), "epcs"),
        (lambda: Ship(**COMMON, epcs=(("4012345123452", "S1"),)), "epcs[0].gtin"),
        (lambda: Ship(**COMMON, epcs=((GTIN, "S 1"),)), "epcs[0].serial"),
        (lambda: Ship(**COMMON, epcs=("040123450000000017",)), "epcs[0]"),
        (lambda: Ship(**COMMON, epcs=(SSCC,), market="Germany"), "market"),
        (lambda: Ship(**COMMON, epcs=(SSCC,), read_point="warehouse 7"), "read_point"),
        (lambda: Pack(**COMMON, parent=SSCC, children=()), "children"),
        (lambda: Pack(**COMMON, parent=SSCC, children=(SSCC,)), "children"),
        (lambda: Commission(**COMMON, epcs=(SSCC,), lot="L#1"), "lot"),
    ],
)
def test_events_refuse_invalid_values(build: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        build()
    assert caught.value.field == field


def test_the_creation_date_must_be_aware() -> None:
    with pytest.raises(EpcisError, match="creationDate"):
        next(stream_document([], Identifiers(), datetime(2024, 5, 1)))


def test_small_chunks_still_make_one_valid_document() -> None:
    events = [Ship(**COMMON, epcs=((GTIN, f"S{i}"),)) for i in range(300)]
    chunks = list(stream_document(events, Identifiers(), T, chunk_size=1024))
    assert len(chunks) > 50
    document = json.loads(b"".join(chunks))
    VALIDATOR.validate(document)
    assert [e["epcList"][0][-4:] for e in document["epcisBody"]["eventList"][:2]] == [
        "1/S0",
        "1/S1",
    ]


def test_a_large_export_is_streamed_event_by_event() -> None:
    pulled = 0

    def events() -> Iterator[ExportEvent]:
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield Ship(**COMMON, epcs=((GTIN, f"S{i}"),), market="DE")

    stream = stream_document(events(), Identifiers(), T)
    assert pulled == 0  # nothing happens before the first chunk is asked for
    written = chunks = 0
    last = b""
    for chunk in stream:
        chunks += 1
        written += chunk.count(b'"eventID"')
        assert pulled == written  # never an event more than the bytes handed out
        assert len(chunk) < 2 * 65536
        last = chunk
    assert (pulled, written) == (100_000, 100_000) and chunks > 100
    assert last.endswith(b"]}}")


def _gtin(body: str) -> str:
    return body + str(check_digit(body))


_OFFSETS = [timedelta(0), timedelta(hours=-6), timedelta(hours=5, minutes=30), timedelta(hours=14)]


@settings(max_examples=40, deadline=None)
@given(
    body=st.text("0123456789", min_size=5, max_size=5),
    serial=st.text(sorted(set("!\"%&'()*+,-./:;<=>?_") | set("AZaz09")), min_size=1, max_size=20),
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    offset=st.sampled_from(_OFFSETS),
)
def test_random_items_make_valid_documents(
    body: str, serial: str, moment: datetime, offset: timedelta
) -> None:
    zone = timezone(offset)
    minutes = int(offset.total_seconds()) // 60
    tz = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    item = (_gtin("0" + "4012345" + body), serial)
    event = Commission(
        event_time=moment.replace(tzinfo=zone), tz_offset=tz, epcs=(item,), lot=serial
    )
    assert len({event_json(event, i)["eventID"] for i in FORMATS_UNDER_TEST.values()}) == 1
    for identifiers in FORMATS_UNDER_TEST.values():
        document = _document([event], identifiers)
        VALIDATOR.validate(document)
        (exported,) = document["epcisBody"]["eventList"]
        check_event(exported, document["@context"])
        assert exported["eventTime"].endswith("Z")
        assert datetime.fromisoformat(
            exported["eventTime"].replace("Z", "+00:00")
        ) == moment.replace(tzinfo=zone, microsecond=moment.microsecond // 1000 * 1000).astimezone(
            UTC
        )
