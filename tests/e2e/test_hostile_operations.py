"""Whatever the Aggregator and Audit accept can be exported: hypothesis draws sequences of
valid and hostile operations (pack, unpack, replace, sample, rework, ship, receive,
decommission, undo, recall) with odd places, times, offsets, parties and transactions, runs
them through the real servicers on a real PostgreSQL, and after each sequence exports the
brand and validates the document against the EPCIS 2.0 schema.

A refused operation must be INVALID_ARGUMENT / FAILED_PRECONDITION / NOT_FOUND / ALREADY_EXISTS
or another status the caller can act on, never INTERNAL or UNKNOWN; an accepted one must not
make the export fail. ``make fuzz`` (SEALMARK_FUZZ=long) draws many more sequences."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealmark.v1 import aggregator_pb2, audit_pb2, common_pb2
from tests.support.hostile import HostileWorld, fresh_id, start_world

pytestmark = pytest.mark.e2e
LONG = os.environ.get("SEALMARK_FUZZ", "") == "long"
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
A = aggregator_pb2

_WORLD: dict[str, HostileWorld] = {}


@pytest.fixture(scope="module")
def world(pg_dsn: str, redis_url: str) -> Iterator[HostileWorld]:
    w = start_world(pg_dsn, redis_url, "ops", codes=70)  # 60.. and SSCCs 8.. kept aside
    _WORLD["w"] = w
    yield w
    _WORLD.clear()
    w.close()


HOSTILE_TEXT = st.sampled_from(
    [
        "",
        "\x00",
        "a\x07b",
        "\x1b[2J",
        "x\u202ey",
        "zero\u200bwidth",
        "two words",
        "tab\there",
        "new\nline",
        "<script>",
        'quote"d',
        "x" * 129,
        "x" * 300,
        "标识-上海",
        "urn:epc:id:sgln:9526000.00001.0",
        "urn:epc:id:sgln:9526000.00001.0 ",
        "https://example.com/dock/7",
        "https://example.com/dock 7",
        "urn:epc:id:sgln:",
        "https://",
        "DE",
        "CN-31",
    ]
) | st.text(max_size=24)
OFFSETS = st.sampled_from(
    ["", "+08:00", "-12:00", "+14:00", "-14:00", "+14:30", "+08:00\n", "Z", "+8", "08:00", "\x00"]
) | st.text(max_size=7)
SECONDS = st.sampled_from(
    [-62_135_596_801, -62_135_596_800, 0, 946_684_800, 253_402_300_799, 2**63 - 1, -(2**63)]
) | st.integers(-62_135_596_800, int(time.time()) + 3600)
NANOS = st.sampled_from([0, 999_999_999, -1, 10**9]) | st.integers(0, 999_999_999)


def maybe(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """Mostly ``valid`` (nine draws in ten): an operation has about eight fields, and most
    operations must get through for the sequences to build a history worth exporting."""
    return st.integers(0, 9).flatmap(lambda i: hostile if i == 9 else valid)


RECENT = st.integers(int(time.time()) - 86_400 * 400, int(time.time()) - 60)
TEXT = maybe(st.sampled_from(["", "damaged", "QA 7"]), HOSTILE_TEXT)
LOCATION = maybe(
    st.sampled_from(["", "urn:epc:id:sgln:9526000.00001.0", "https://example.com/dock/7"]),
    HOSTILE_TEXT,
)
MARKET = maybe(st.sampled_from(["", "DE", "CN-31", "US"]), HOSTILE_TEXT)
PARTY = maybe(st.sampled_from(["", "urn:epc:id:pgln:9526000.00002"]), HOSTILE_TEXT)
TRANSACTION = maybe(
    st.sampled_from([("desadv", "DESADV-1"), ("po", "PO-9")]), st.tuples(HOSTILE_TEXT, HOSTILE_TEXT)
)


@st.composite
def wheres(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        seconds = draw(maybe(RECENT, SECONDS))
        fields["event_time"] = Timestamp(seconds=seconds, nanos=draw(maybe(st.just(0), NANOS)))
    if draw(st.booleans()):
        fields["event_time_zone_offset"] = draw(
            maybe(st.sampled_from(["+08:00", "-05:00", "+00:00"]), OFFSETS)
        )
    if draw(st.booleans()):
        fields["place"] = common_pb2.Place(
            location=draw(LOCATION), market=draw(MARKET), read_point=draw(LOCATION)
        )
    return fields


def _sgtin(w: HostileWorld, index: int) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=w.brand.gtin, serial=w.serials[index]))


def _sscc(w: HostileWorld, index: int) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(sscc=w.ssccs[index])


UNIT = st.tuples(st.sampled_from(["sgtin", "sscc"]), st.integers(0, 59))
Op = Callable[[HostileWorld], tuple[str, Any]]


def _unit(w: HostileWorld, drawn: tuple[str, int]) -> common_pb2.CodeRef:
    kind, index = drawn
    return _sgtin(w, index) if kind == "sgtin" else _sscc(w, index % 8)


def _children(w: HostileWorld, indexes: list[int]) -> list[common_pb2.CodeRef]:
    return [_sgtin(w, i) for i in dict.fromkeys(indexes)]


@st.composite
def operations(draw: st.DrawFn) -> Op:
    kind = draw(
        st.sampled_from(
            [
                *("pack", "pack", "unpack", "replace", "sample", "rework", "ship", "receive"),
                *("decommission", "undo", "recall", "packstream"),
            ]
        )
    )
    where = draw(wheres())
    containers = ("pack", "unpack", "rework", "packstream")
    usual = "sscc" if kind in containers else "sgtin"
    parent = draw(maybe(st.tuples(st.just(usual), st.integers(0, 59)), UNIT))
    children = draw(st.lists(st.integers(0, 59), min_size=1, max_size=4))
    line = draw(maybe(st.sampled_from(["", "line-1"]), HOSTILE_TEXT))
    text = draw(TEXT)
    level = draw(maybe(st.just(0), st.sampled_from([1, 2, 3, 4, 5, -1])))
    reason = draw(maybe(st.integers(1, 7), st.sampled_from([0, 8, 99, -1])))
    party = draw(PARTY)
    biz = draw(st.lists(TRANSACTION, max_size=2))

    def run(w: HostileWorld) -> tuple[str, Any]:
        agg, eid = w.stubs["aggregator"], fresh_id("op")
        line_md, logistics = w.md("line"), w.md("logistics")
        kids = _children(w, children)
        codes = [_unit(w, parent), *kids][:3]
        transactions = [common_pb2.BizTransaction(type=t, id=i) for t, i in biz]
        if kind == "pack":
            request: Any = A.PackRequest(
                event_id=eid,
                parent=_unit(w, parent),
                children=kids,
                line_id=line,
                parent_level=level,
                **where,
            )
            return kind, agg.Pack(request, metadata=line_md, timeout=30)
        if kind == "packstream":
            request = A.PackStreamRequest(
                pack=A.PackRequest(event_id=eid, parent=_unit(w, parent), children=kids, **where)
            )
            return kind, list(agg.PackStream(iter([request]), metadata=line_md, timeout=30))
        if kind == "unpack":
            request = A.UnpackRequest(
                event_id=eid, parent=_unit(w, parent), children=kids, line_id=line, **where
            )
            return kind, agg.Unpack(request, metadata=line_md, timeout=30)
        if kind == "replace":
            request = A.ReplaceRequest(
                event_id=eid,
                old_code=_unit(w, parent),
                new_code=kids[0] if kids else _sgtin(w, 59),
                reason=text,
                **where,
            )
            return kind, agg.Replace(request, metadata=line_md, timeout=30)
        if kind == "sample":
            request = A.SampleRequest(event_id=eid, code=_unit(w, parent), reason=text, **where)
            return kind, agg.Sample(request, metadata=line_md, timeout=30)
        if kind == "rework":
            request = A.ReworkRequest(
                event_id=eid, parent=_unit(w, parent), children=kids, reason=text, **where
            )
            return kind, agg.Rework(request, metadata=line_md, timeout=30)
        if kind == "ship":
            request = A.ShipRequest(
                event_id=eid,
                codes=codes,
                to_party=party,
                destination_market=text,
                biz_transactions=transactions,
                **where,
            )
            return kind, agg.Ship(request, metadata=logistics, timeout=30)
        if kind == "receive":
            request = A.ReceiveRequest(
                event_id=eid,
                codes=codes,
                from_party=party,
                biz_transactions=transactions,
                **where,
            )
            return kind, agg.Receive(request, metadata=logistics, timeout=30)
        if kind == "decommission":
            request = A.DecommissionRequest(
                event_id=eid,
                codes=codes,
                reason=reason,
                note=text,
                **where,
            )
            return kind, agg.Decommission(request, metadata=logistics, timeout=30)
        if kind == "undo":
            request = A.UndoDecommissionRequest(event_id=eid, codes=codes, note=text, **where)
            return kind, agg.UndoDecommission(request, metadata=logistics, timeout=30)
        request = audit_pb2.RecallRequest(
            request_id=eid, codes=audit_pb2.CodeList(codes=codes), reason=text or "r"
        )
        return kind, w.stubs["audit"].Recall(request, metadata=w.md("admin"), timeout=30)

    return run


@settings(
    max_examples=300 if LONG else 12,
    deadline=None,
    derandomize=not LONG,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(operations(), min_size=1, max_size=8))
def test_whatever_is_accepted_can_be_exported(world: HostileWorld, ops: list[Op]) -> None:
    outcomes: list[tuple[str, ...]] = []
    for op in ops:
        try:
            kind, reply = op(world)
            outcomes.append((kind, "OK"))
            if kind == "packstream":
                for ack in reply:
                    assert ack.ok or ack.error_code not in ("INTERNAL", "UNKNOWN"), ack
        except grpc.RpcError as exc:
            assert exc.code() not in NEVER, f"{exc.code()}: {exc.details()}"
            outcomes.append(("?", exc.code().name, (exc.details() or "")[:90]))
    try:
        world.export()  # schema-valid, whatever was accepted
    except (AssertionError, grpc.RpcError) as exc:
        raise AssertionError(f"after {outcomes}: {exc}") from exc


def test_the_property_test_reaches_both_outcomes(world: HostileWorld) -> None:
    """Not vacuous: a valid pack is accepted (and exported), a hostile one refused."""
    kids = [_sgtin(world, i) for i in (60, 61)]
    accepted = world.stubs["aggregator"].Pack(
        A.PackRequest(event_id=fresh_id("ok"), parent=_sscc(world, 11), children=kids),
        metadata=world.md("line"),
        timeout=30,
    )
    assert accepted.children_affected == 2
    with pytest.raises(grpc.RpcError) as refused:
        world.stubs["aggregator"].Pack(
            A.PackRequest(
                event_id=fresh_id("bad"),
                parent=_sscc(world, 10),
                children=[_sgtin(world, 62)],
                place=common_pb2.Place(location="urn:epc:id:sgln:1\x07"),
            ),
            metadata=world.md("line"),
            timeout=30,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("PackRequest.place.location: control character")
    events = world.export()["epcisBody"]["eventList"]
    assert any(e.get("parentID", "").endswith(world.ssccs[11]) for e in events)


OFFSET_CASES = [("+14:00", True), ("-14:00", True), ("+14:30", False), ("+08:00\n", False)]


@pytest.mark.parametrize(("offset", "accepted"), [*OFFSET_CASES, ("+8", False)])
def test_only_offsets_that_epcis_can_hold_are_stored(
    world: HostileWorld, offset: str, accepted: bool
) -> None:
    """+14:30 passed the old ±HH:MM check and then broke every export of the brand."""
    index = 63 + [o for o, _ in [*OFFSET_CASES, ("+8", False)]].index(offset)
    request = A.PackRequest(
        event_id=fresh_id("tz"),
        parent=_sscc(world, 9),
        children=[_sgtin(world, index)],
        event_time_zone_offset=offset,
    )
    if accepted:
        world.stubs["aggregator"].Pack(request, metadata=world.md("line"), timeout=30)
        events = world.export()["epcisBody"]["eventList"]
        assert any(e["eventTimeZoneOffset"] == offset for e in events)
        return
    with pytest.raises(grpc.RpcError) as refused:
        world.stubs["aggregator"].Pack(request, metadata=world.md("line"), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("PackRequest.event_time_zone_offset: ")


def test_packstream_reports_a_refused_message_in_its_ack_and_goes_on(world: HostileWorld) -> None:
    def pack(serial: int, **fields: Any) -> A.PackStreamRequest:
        return A.PackStreamRequest(
            pack=A.PackRequest(
                event_id=fresh_id("ps"),
                parent=_sscc(world, 8),
                children=[_sgtin(world, serial)],
                **fields,
            )
        )

    hostile = pack(69, place=common_pb2.Place(read_point="dock\x1b7"))
    messages = [pack(68), hostile, pack(69)]
    acks = list(
        world.stubs["aggregator"].PackStream(iter(messages), metadata=world.md("line"), timeout=30)
    )
    assert [a.ok for a in acks] == [True, False, True]
    assert acks[1].event_id == hostile.pack.event_id
    assert acks[1].error_code == "INVALID_ARGUMENT"
    assert acks[1].error_message == (
        "PackStreamRequest.pack.place.read_point: control character U+001B at 4"
    )
