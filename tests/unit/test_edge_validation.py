"""The edge checks of every request (sealmark.server.validation) and the deserializers that
never raise (sealmark.server.edge), without a server."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest
import structlog
from google.protobuf.message import Message

from sealmark.errors import InvalidArgument
from sealmark.server import edge, validation
from sealmark.v1 import aggregator_pb2, audit_pb2, common_pb2, issuer_pb2, verifier_pb2


def refusal(message: Message) -> str:
    with pytest.raises(InvalidArgument) as caught:
        validation.check(message)
    return str(caught.value)


def pack(**fields: object) -> aggregator_pb2.PackRequest:
    request = aggregator_pb2.PackRequest(
        event_id="ev-1",
        parent=common_pb2.CodeRef(sscc="095260000000000017"),
        children=[common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin="09526000000017", serial="A1"))],
        line_id="line-1",
    )
    request.place.location = "urn:epc:id:sgln:9526000.00001.0"
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def test_a_valid_request_passes() -> None:
    request = pack()
    request.event_time.FromJsonString("2026-01-02T03:04:05.123Z")
    request.place.read_point = "https://example.com/line/1"
    validation.check(request)
    validation.check(verifier_pb2.VerifyRequest(payload="]d2010952600000001721A1\x1d10LOT"))
    validation.check(aggregator_pb2.DecommissionRequest(note="two lines\nand\ta tab"))


@pytest.mark.parametrize(
    ("seconds", "nanos", "field", "wanted"),
    [
        (2**63 - 1, 0, "seconds", "9223372036854775807, want -62135596800..253402300799"),
        (-(2**63), 0, "seconds", "want -62135596800"),
        (-62_135_596_801, 0, "seconds", "(0001-01-01..9999-12-31)"),
        (253_402_300_800, 0, "seconds", "253402300800"),
        (0, -1, "nanos", "-1, want 0..999999999"),
        (0, 1_000_000_000, "nanos", "1000000000, want 0..999999999"),
    ],
)
def test_timestamps_out_of_range(seconds: int, nanos: int, field: str, wanted: str) -> None:
    request = pack()
    request.event_time.seconds, request.event_time.nanos = seconds, nanos
    assert refusal(request).startswith(f"PackRequest.event_time.{field}: ")
    assert wanted in refusal(request)
    report = audit_pb2.ReportRequest()
    report.to_time.seconds, report.to_time.nanos = seconds, nanos
    assert refusal(report).startswith(f"ReportRequest.to_time.{field}: ")


def test_timestamps_at_the_limits_pass() -> None:
    request = pack()
    request.event_time.seconds = validation.TIMESTAMP_SECONDS[0]
    validation.check(request)
    request.event_time.seconds, request.event_time.nanos = (
        validation.TIMESTAMP_SECONDS[1],
        10**9 - 1,
    )
    validation.check(request)


def test_unknown_enum_numbers() -> None:
    assert refusal(pack(parent_level=99)) == "PackRequest.parent_level: 99 is not a PackLevel"
    decommission = aggregator_pb2.DecommissionRequest(reason=-5)  # type: ignore[arg-type]
    assert refusal(decommission) == ("DecommissionRequest.reason: -5 is not a DecommissionReason")
    watch = audit_pb2.WatchAlertsRequest(kinds=[1, 2, 4242])  # type: ignore[list-item]
    assert refusal(watch) == "WatchAlertsRequest.kinds[2]: 4242 is not a AlertKind"
    validation.check(pack(parent_level=common_pb2.PACK_LEVEL_PALLET))


@pytest.mark.parametrize(
    ("place", "wanted"),
    [
        ("urn\x07", "control character U+0007 at 3"),
        ("a\x00", "control character U+0000 at 1"),
        ("a\u202eb", "invisible character U+202E at 1"),
        ("urn:epc:id:sgln:1 2", "character U+0020 at 17 is not allowed in an EPCIS identifier"),
        ("https://x/<a>", "character '<' at 10 is not allowed"),
    ],
)
def test_locations_are_identifiers_fit_for_epcis(place: str, wanted: str) -> None:
    request = pack()
    request.place.location = place
    assert refusal(request).startswith(f"PackRequest.place.location: {wanted}")
    request = pack()
    request.place.read_point = place
    assert refusal(request).startswith(f"PackRequest.place.read_point: {wanted}")


def test_identifiers_refuse_control_characters_and_bound_their_length() -> None:
    assert refusal(pack(line_id="l\x1b[31m")) == (
        "PackRequest.line_id: control character U+001B at 1"
    )
    assert refusal(pack(line_id="x" * 65)) == "PackRequest.line_id: 65 characters, want at most 64"
    refused = verifier_pb2.GetPublicKeySetRequest(tenant_id="acme\x00")
    assert refusal(refused) == "GetPublicKeySetRequest.tenant_id: control character U+0000 at 4"
    huge = verifier_pb2.VerifyRequest(payload="x" * 1_000_000)
    assert refusal(huge) == "VerifyRequest.payload: 1000000 characters, want at most 4096"


def test_lots_and_serials_keep_to_cset_82() -> None:
    export = audit_pb2.ExportEpcisRequest(lot=audit_pb2.LotRef(gtin="09526000000017", lot="L\x00"))
    assert refusal(export) == "ExportEpcisRequest.lot.lot: control character U+0000 at 1"
    report = audit_pb2.ReportRequest(lot="L#1")
    assert refusal(report) == (
        "ReportRequest.lot: character '#' at 1 is not allowed in the GS1 AI encodable "
        "character set 82"
    )
    batch = issuer_pb2.CodeBatch(serials=["ok", "bad serial"])
    assert refusal(batch).startswith("CodeBatch.serials[1]: character U+0020 at 3")
    request = pack()
    request.children[0].sgtin.serial = "x" * 21
    assert (
        refusal(request) == "PackRequest.children[0].sgtin.serial: 21 characters, want at most 20"
    )


def test_free_text_and_scans_allow_only_their_separators() -> None:
    assert refusal(aggregator_pb2.DecommissionRequest(note="a\x00")) == (
        "DecommissionRequest.note: control character U+0000 at 1"
    )
    assert refusal(verifier_pb2.VerifyRequest(payload="a\x1eb")) == (
        "VerifyRequest.payload: control character U+001E at 1"
    )


def test_repeated_fields_numbers_and_bytes_are_bounded() -> None:
    request = pack()
    request.children.extend(request.children[0] for _ in range(validation.MAX_REPEATED))
    assert refusal(request) == "PackRequest.children: 10001 entries, want at most 10000"
    watch = audit_pb2.WatchAlertsRequest(after_id=2**64 - 1)
    assert refusal(watch) == (
        "WatchAlertsRequest.after_id: 18446744073709551615, want at most 9223372036854775807"
    )
    verify = verifier_pb2.VerifyRequest(payload="x")
    verify.context.latitude = float("nan")
    assert refusal(verify) == "VerifyRequest.context.latitude: nan, want a finite number"
    proof = audit_pb2.GetInclusionProofRequest(leaf_hash=b"x" * 1025)
    assert refusal(proof) == "GetInclusionProofRequest.leaf_hash: 1025 bytes, want at most 1024"


def test_invalid_utf8_is_undecodable_naming_the_field() -> None:
    request = pack()
    request.children.add(scanned="AAAA")
    data = request.SerializeToString().replace(b"AAAA", b"A\xff\xfeA")
    parsed = edge.deserializer(aggregator_pb2.PackRequest)(data)
    assert parsed == edge.Undecodable(
        "PackRequest.children[1].scanned", "not valid UTF-8 (byte 0xFF at 1)"
    )
    place = pack().SerializeToString().replace(b"sgln", b"sg\xc0n")
    assert edge.deserializer(aggregator_pb2.PackRequest)(place) == edge.Undecodable(
        "PackRequest.place.location", "not valid UTF-8 (byte 0xC0 at 13)"
    )


@pytest.mark.parametrize("data", [b"\xff", b"\x0a\x05ab", b"\x0b", b"\x08" + b"\xff" * 11])
def test_broken_wire_data_is_undecodable_naming_the_message(data: bytes) -> None:
    parsed = edge.deserializer(aggregator_pb2.PackRequest)(data)
    assert parsed == edge.Undecodable(
        "PackRequest", "not a valid PackRequest (malformed wire data)"
    )


def test_the_guard_checks_each_message_and_logs_at_a_bounded_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines: list[dict[str, object]] = []
    monkeypatch.setattr(edge, "REJECTIONS", edge._RateLimitedLog(3, 3600))
    monkeypatch.setattr(edge, "log", structlog.wrap_logger(None, processors=[_keep(lines)]))
    seen: list[object] = []

    def behaviour(requests: Iterator[object], context: object) -> list[object]:
        seen.extend(requests)
        return seen

    guarded = edge.guarded(behaviour, "/sealmark.v1.Aggregator/PackStream", True)
    good = aggregator_pb2.PackStreamRequest(pack=pack())
    bad = aggregator_pb2.PackStreamRequest(pack=pack(line_id="\x07"))
    with pytest.raises(InvalidArgument, match=r"^PackStreamRequest.pack.line_id: control"):
        guarded(iter([good, bad, good]), None)
    assert seen == [good]
    unary = edge.guarded(lambda r, c: r, "/sealmark.v1.Verifier/Verify", False)
    for _ in range(10):
        with pytest.raises(InvalidArgument):
            unary(edge.Undecodable("VerifyRequest.payload", "not valid UTF-8"), None)
    assert len(lines) == 3 and lines[0]["field"] == "PackStreamRequest.pack.line_id"
    assert all("\x07" not in repr(line) for line in lines)
    edge.REJECTIONS._started = -1e9  # a new window: the next line counts those left out
    with pytest.raises(InvalidArgument):
        unary(edge.Undecodable("VerifyRequest.payload", "not valid UTF-8"), None)
    assert lines[-1]["left_out"] == 8


def _keep(lines: list[dict[str, object]]) -> structlog.types.Processor:
    def processor(_: object, __: str, event: dict[str, object]) -> str:
        lines.append(dict(event))
        raise structlog.DropEvent

    return processor  # type: ignore[return-value]


def test_no_logging_module_traceback_from_deserializing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        edge.deserializer(issuer_pb2.IssueCodesRequest)(b"\x12\x02\xc3\x28")
    assert caplog.records == []


def test_a_request_stream_the_client_abandons_just_ends() -> None:
    def abandoned() -> Iterator[object]:
        yield aggregator_pb2.PackStreamRequest(pack=pack())
        raise grpc.RpcError()  # what grpc's request iterator raises on a cancelled call

    received: list[object] = []

    def behaviour(requests: Iterator[object], context: object) -> list[object]:
        received.extend(requests)
        return received

    edge.guarded(behaviour, "/sealmark.v1.Aggregator/PackStream", True)(abandoned(), None)
    assert len(received) == 1


def test_a_stream_that_reports_failures_in_band_gets_refusals_in_place() -> None:
    received: list[object] = []

    @edge.refusals_in_band
    def behaviour(requests: Iterator[object], context: object) -> list[object]:
        received.extend(requests)
        return received

    good = aggregator_pb2.PackStreamRequest(pack=pack())
    bad = aggregator_pb2.PackStreamRequest(pack=pack(line_id="\x07"))
    broken = edge.Undecodable("PackStreamRequest.pack.event_id", "not valid UTF-8")
    edge.guarded(behaviour, "/sealmark.v1.Aggregator/PackStream", True)(
        iter([good, bad, broken, good]), None
    )
    assert received[0] == good and received[3] == good
    refused, undecodable = received[1], received[2]
    assert isinstance(refused, edge.Refused) and refused.request == bad
    assert str(refused.error) == "PackStreamRequest.pack.line_id: control character U+0007 at 0"
    assert isinstance(undecodable, edge.Refused) and undecodable.request is None
    assert undecodable.error.field == "PackStreamRequest.pack.event_id"
