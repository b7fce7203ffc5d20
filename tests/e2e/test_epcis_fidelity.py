"""EPCIS export fidelity end to end: every operation of docs/api.md's mapping table run
through the real RPCs with the time, offset, place, parties and transactions a line would
send, then exported and read back by an independent reader (official schema + every eventID
recomputed); each row's event must carry what its row and the caller said, under the id the
RPC answered with and the transparency log commits to."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from sealmark.clock import FixedClock
from sealmark.epcis.document import CONTEXT, Identifiers, event_json
from sealmark.epcis.recorded import export_events
from sealmark.server.app import create_server
from sealmark.v1 import (
    aggregator_pb2,
    aggregator_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    common_pb2,
    issuer_pb2,
    issuer_pb2_grpc,
)
from sealmark_app.root import binding_for
from tests.e2e.conftest import _md, make_container
from tests.support.epcis_reader import Unreadable, read_document
from tests.support.epcis_schema import EXAMPLES
from tests.support.tenants import seed_tenant

pytestmark = pytest.mark.e2e
A, G = audit_pb2, aggregator_pb2
DOCS = Path(__file__).parents[2] / "docs" / "api.md"
NOT_EXPORTED = {"IssueCodes", "ReturnCodes", "EXPIRED"}
OFFSET = "+08:00"
SITE_GLN = "6901234000016"  # the plant: bizLocation
PARTNER_GLN = "6901234000023"  # the distributor: destination and source party
READ_POINT = "urn:epc:id:sgln:6901234.00001.line3"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
START = datetime(2026, 11, 23, 2, 7, 5, tzinfo=UTC)  # 10:07:05 at +08:00


def mapping_table() -> dict[str, dict[str, str]]:
    """docs/api.md's EPCIS mapping: operation (the RPC, and the reason where it decides) →
    {type, action, bizStep, disposition}; "" for what a row leaves empty or writes "—"."""
    lines = DOCS.read_text("utf-8").splitlines()
    header = "| `EventType` (RPC) | EPCIS event | action | bizStep | disposition |"
    start = lines.index(header)
    rows: dict[str, dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip().replace("`", "") for c in line.strip("|").split("|")]
        name, event, action, step, disposition = (c.replace("—", "").strip() for c in cells[:5])
        operation = re.search(r"\((.*)\)", name)
        key = operation.group(1) if operation else name
        kind = re.match(
            r"(Object|Aggregation|Transaction|Transformation|Association)Event\b|", event
        )
        assert kind is not None  # the empty alternative always matches
        rows[key] = {"type": kind.group(0), "action": action, "bizStep": step}
        rows[key]["disposition"] = disposition
    return rows


def exported_rows() -> list[str]:
    return [k for k in mapping_table() if k not in NOT_EXPORTED]


@pytest.fixture(scope="module")
def flow(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    """The whole table run once, as a plant and its distributor would: what each operation
    answered, and the export read back."""
    clock = FixedClock(NOW)
    container = make_container(pg_dsn, redis_url)
    container.clock = clock
    roles = {r: [r] for r in ("line", "logistics", "admin", "auditor")}
    brand = seed_tenant(container.uow, clock, "fid", tokens=roles)
    running = create_server(
        [binding_for(n, container) for n in ("issuer", "aggregator", "audit")],
        container.authenticator,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield _run(brand, channel)
    finally:
        channel.close()
        running.stop(0)
        container.close()


class _Steps:
    """Each call one minute after the one before, at +08:00, in the plant, at line 3."""

    def __init__(self) -> None:
        self.at = START
        self.sent: dict[str, datetime] = {}

    def when(self, operation: str) -> dict[str, Any]:
        self.at += timedelta(minutes=1)
        self.sent[operation] = self.at
        stamp = Timestamp()
        stamp.FromDatetime(self.at)
        place = common_pb2.Place(location=SITE_GLN, read_point=READ_POINT)
        return {"event_time": stamp, "event_time_zone_offset": OFFSET, "place": place}


def _run(brand: Any, channel: grpc.Channel) -> dict[str, Any]:
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    agg = aggregator_pb2_grpc.AggregatorStub(channel)
    audit = audit_pb2_grpc.AuditStub(channel)
    line, logistics = _md(brand.tokens["line"]), _md(brand.tokens["logistics"])
    admin, auditor = _md(brand.tokens["admin"]), _md(brand.tokens["auditor"])
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=admin, timeout=10)
    steps, ids = _Steps(), {}
    codes = [
        c
        for r in issuer.IssueCodes(
            issuer_pb2.IssueCodesRequest(
                request_id="fid-issue",
                gtin=brand.gtin,
                lot="LOT-FID",
                expiry="301231",
                quantity=14,
                line_id="line-3",
                work_order="WO-fid",
            ),
            metadata=line,
            timeout=60,
        )
        for c in r.codes
    ]
    item = [
        common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=brand.gtin, serial=c.serial)) for c in codes
    ]
    batch = issuer_pb2.CodeBatch(
        batch_id="fid-commission",
        gtin=brand.gtin,
        serials=[c.serial for c in codes[:13]],
        **steps.when("ReportCommissioned"),
    )
    (ack,) = issuer.ReportCommissioned(iter([batch]), metadata=line, timeout=30)
    assert ack.accepted == 13
    scrap = issuer_pb2.CodeBatch(
        batch_id="fid-scrap",
        gtin=brand.gtin,
        serials=[codes[13].serial],
        reason="vision: grade D",
        **steps.when("ReportScrapped"),
    )
    (ack,) = issuer.ReportScrapped(iter([scrap]), metadata=line, timeout=30)
    assert ack.accepted == 1
    case1, case2, pallet = (
        common_pb2.CodeRef(sscc=s)
        for s in issuer.AllocateSsccs(
            issuer_pb2.AllocateSsccsRequest(
                request_id="fid-ssccs", company_prefix=brand.prefix, extension_digit=1, quantity=3
            ),
            metadata=line,
            timeout=10,
        ).ssccs
    )
    case = common_pb2.PACK_LEVEL_CASE

    def call(operation: str, method: Any, request: Any, metadata: Any) -> Any:
        answer = method(request, metadata=metadata, timeout=10)
        ids[operation] = answer.epcis_event_id
        return answer

    call(
        "Pack",
        agg.Pack,
        G.PackRequest(
            event_id="fid-pack",
            parent=case1,
            children=item[0:3],
            parent_level=case,
            **steps.when("Pack"),
        ),
        line,
    )
    # A line's stream acknowledges with the same id as the unary call would.
    pack2 = G.PackRequest(event_id="fid-pack2", parent=case2, children=item[3:5], parent_level=case)
    (ack,) = agg.PackStream(iter([G.PackStreamRequest(pack=pack2)]), metadata=line, timeout=10)
    assert ack.ok, ack.error_message
    ids["PackStream"] = ack.epcis_event_id
    call(
        "Unpack",
        agg.Unpack,
        G.UnpackRequest(
            event_id="fid-unpack", parent=case2, children=[item[4]], **steps.when("Unpack")
        ),
        line,
    )
    call(
        "Sample",
        agg.Sample,
        G.SampleRequest(
            event_id="fid-sample", code=item[0], reason="QA: fill level", **steps.when("Sample")
        ),
        line,
    )
    call(
        "Replace",
        agg.Replace,
        G.ReplaceRequest(
            event_id="fid-replace",
            old_code=item[1],
            new_code=item[5],
            reason="torn label",
            **steps.when("Replace"),
        ),
        line,
    )
    call(
        "Rework",
        agg.Rework,
        G.ReworkRequest(
            event_id="fid-rework",
            parent=case1,
            children=[item[2], item[4]],
            reason="mixed case",
            **steps.when("Rework"),
        ),
        line,
    )
    agg.Pack(
        G.PackRequest(
            event_id="fid-pallet",
            parent=pallet,
            children=[case1, case2],
            parent_level=common_pb2.PACK_LEVEL_PALLET,
        ),
        metadata=line,
        timeout=10,
    )
    call(
        "Ship",
        agg.Ship,
        G.ShipRequest(
            event_id="fid-ship",
            codes=[pallet],
            to_party=PARTNER_GLN,
            destination_market="CN-31",
            biz_transactions=[common_pb2.BizTransaction(type="desadv", id="DESADV-42")],
            **steps.when("Ship"),
        ),
        logistics,
    )
    call(
        "Receive",
        agg.Receive,
        G.ReceiveRequest(
            event_id="fid-receive",
            codes=[pallet],
            from_party=PARTNER_GLN,
            biz_transactions=[
                common_pb2.BizTransaction(type="po", id="urn:epcglobal:cbv:bt:6901234000023:PO-7")
            ],
            **steps.when("Receive"),
        ),
        logistics,
    )
    for number, reason in enumerate(
        ("DESTROYED", "DISPENSED", "STOLEN", "EXPORTED", "SAMPLE", "LOCKED"), start=6
    ):
        operation = f"Decommission {reason}"
        call(
            operation,
            agg.Decommission,
            G.DecommissionRequest(
                event_id=f"fid-dec-{reason.lower()}",
                codes=[item[number]],
                reason=G.DecommissionReason.Value(f"DECOMMISSION_REASON_{reason}"),
                note=f"{reason.lower()} on purpose",
                **steps.when(operation),
            ),
            logistics,
        )
    call(
        "UndoDecommission",
        agg.UndoDecommission,
        G.UndoDecommissionRequest(
            event_id="fid-undo", codes=[item[11]], **steps.when("UndoDecommission")
        ),
        logistics,
    )
    hold = issuer_pb2.LotHoldRequest(gtin=brand.gtin, lot="LOT-FID", reason="QC deviation")
    ids["HoldLot"] = issuer.HoldLot(hold, metadata=line, timeout=10).epcis_event_id
    ids["ReleaseLot"] = issuer.ReleaseLot(hold, metadata=line, timeout=10).epcis_event_id
    audit.Recall(
        A.RecallRequest(
            request_id="fid-recall",
            lot=A.LotRef(gtin=brand.gtin, lot="LOT-FID"),
            reason="glass splinters found",
        ),
        metadata=admin,
        timeout=30,
    )
    exports = {}
    for name, fmt in (
        ("dl", A.IDENTIFIER_FORMAT_UNSPECIFIED),
        ("urn", A.IDENTIFIER_FORMAT_EPC_URN),
    ):
        chunks = audit.ExportEpcis(
            A.ExportEpcisRequest(identifiers=fmt), metadata=auditor, timeout=60
        )
        exports[name] = b"".join(c.data for c in chunks)
    traced = list(audit.Trace(A.TraceRequest(code=pallet), metadata=auditor, timeout=10))
    entries = audit.GetLogEntries(A.GetLogEntriesRequest(start=0, count=1000), metadata=auditor)
    logged = [json.loads(e.data) for e in entries.entries]
    return {
        "brand": brand,
        "codes": codes,
        "ssccs": (case1.sscc, case2.sscc, pallet.sscc),
        "ids": ids,
        "sent": steps.sent,
        "exports": exports,
        "events": read_document(exports["dl"]),
        "logged": logged,
        "traced": [t.event for t in traced if t.WhichOneof("entry") == "event"],
    }


def _by_id(flow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["eventID"]: e for e in flow["events"]}


def _event_of(flow: dict[str, Any], operation: str) -> dict[str, Any]:
    """The exported event of an operation: by the id its RPC answered with, or for the
    operations that answer with none, by what it named (commissioning) or as the last event
    recorded (the recall)."""
    events, brand = flow["events"], flow["brand"]
    if operation in ("HoldLot", "ReleaseLot"):
        # The id the RPC answered is the one the transparency log committed to.
        kind = "lot.held" if operation == "HoldLot" else "lot.released"
        (entry,) = [e for e in flow["logged"] if e.get("event") == kind]
        assert entry["epcis_event_id"] == flow["ids"][operation]
    if operation in flow["ids"]:
        return _by_id(flow)[flow["ids"][operation]]
    if operation in ("ReportCommissioned", "ReportScrapped"):
        code = flow["codes"][0 if operation == "ReportCommissioned" else 13]
        uri = f"https://id.gs1.org/01/{brand.gtin}/21/{code.serial}"
        action = "ADD" if operation == "ReportCommissioned" else "DELETE"
        (found,) = [e for e in events if uri in e.get("epcList", []) and e["action"] == action]
        return dict(found)
    assert operation == "Recall"
    return dict(events[-1])


def test_the_table_lists_every_operation_the_suite_offers() -> None:
    """Every write RPC of Issuer, Aggregator and Audit that changes a code, each
    Decommission reason, and nothing else."""
    reasons = {f"Decommission {r}" for r in ("DISPENSED", "DESTROYED", "STOLEN", "LOCKED")}
    reasons |= {"Decommission EXPORTED", "Decommission SAMPLE"}
    assert set(mapping_table()) == NOT_EXPORTED | reasons | {
        "ReportCommissioned",
        "ReportScrapped",
        "Pack",
        "Unpack",
        "Replace",
        "Sample",
        "Rework",
        "Ship",
        "Receive",
        "UndoDecommission",
        "Recall",
        "HoldLot",
        "ReleaseLot",
    }
    assert all(mapping_table()[k]["type"] == "" for k in NOT_EXPORTED)


@pytest.mark.parametrize("operation", exported_rows())
def test_each_operation_exports_its_row(flow: dict[str, Any], operation: str) -> None:
    row = mapping_table()[operation]
    event = _event_of(flow, operation)
    assert event["type"] == row["type"]
    assert event["action"] == row["action"]
    assert event.get("bizStep", "") == row["bizStep"]
    assert event.get("disposition", "") == row["disposition"]
    if operation in flow["sent"]:  # the operations whose request carries time and place
        sent = flow["sent"][operation]
        assert event["eventTime"] == sent.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert event["eventTimeZoneOffset"] == OFFSET
        assert event["bizLocation"] == {"id": f"https://id.gs1.org/414/{SITE_GLN}"}
        assert event["readPoint"] == {"id": READ_POINT}
    else:  # HoldLot, ReleaseLot and Recall happen when the server receives them
        assert event["eventTime"] == "2026-11-23T09:00:00.000Z"
        assert event["eventTimeZoneOffset"] == "+00:00"


def test_every_answered_id_is_the_exported_and_the_logged_id(flow: dict[str, Any]) -> None:
    answered = flow["ids"]
    assert len(set(answered.values())) == len(answered) >= 15
    assert all(
        re.fullmatch(r"ni:///sha-256;[0-9a-f]{64}\?ver=CBV2\.0", i) for i in answered.values()
    )
    assert set(answered.values()) <= set(_by_id(flow))
    logged = {e.get("epcis_event_id") for e in flow["logged"]}
    assert set(answered.values()) <= logged
    commissioned = [e for e in flow["logged"] if e.get("event") == "codes.commissioned"]
    commission, scrap = _event_of(flow, "ReportCommissioned"), _event_of(flow, "ReportScrapped")
    assert [e.get("epcis_event_ids") for e in commissioned] == [[commission["eventID"]]]
    assert scrap["eventID"] in logged
    traced = {common_pb2.EventType.Name(e.type): e.epcis_event_id for e in flow["traced"]}
    assert traced["EVENT_TYPE_SHIPPED"] == answered["Ship"]
    assert traced["EVENT_TYPE_RECEIVED"] == answered["Receive"]


def test_what_the_caller_said_lands_in_its_epcis_place(flow: dict[str, Any]) -> None:
    brand, codes = flow["brand"], flow["codes"]
    case1, _, pallet = flow["ssccs"]
    dl = f"https://id.gs1.org/01/{brand.gtin}/21/"
    ship = _event_of(flow, "Ship")
    assert ship["destinationList"] == [
        {"type": "owning_party", "destination": f"https://id.gs1.org/417/{PARTNER_GLN}"}
    ]
    assert ship["bizTransactionList"] == [
        {"type": "desadv", "bizTransaction": "https://ns.sealmark.example/epcis/bt/DESADV-42"}
    ]
    assert ship["sealmark:market"] == "CN-31"
    assert ship["epcList"] == [f"https://id.gs1.org/00/{pallet}"]
    receive = _event_of(flow, "Receive")
    assert receive["sourceList"] == [
        {"type": "owning_party", "source": f"https://id.gs1.org/417/{PARTNER_GLN}"}
    ]
    assert receive["bizTransactionList"] == [
        {"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:6901234000023:PO-7"}
    ]
    commission = _event_of(flow, "ReportCommissioned")
    assert commission["ilmd"] == {
        "cbvmda:lotNumber": "LOT-FID",
        "cbvmda:itemExpirationDate": "2030-12-31",
    }
    assert len(commission["epcList"]) == 13
    assert _event_of(flow, "ReportScrapped")["sealmark:reason"] == "vision: grade D"
    pack = _event_of(flow, "Pack")
    assert pack["parentID"] == f"https://id.gs1.org/00/{case1}"
    assert pack["childEPCs"] == [dl + c.serial for c in codes[0:3]]
    assert _event_of(flow, "Sample")["sealmark:reason"] == "QA: fill level"
    rework = _event_of(flow, "Rework")
    assert rework["childEPCs"] == [dl + codes[2].serial, dl + codes[4].serial]
    assert rework["sealmark:reason"] == "mixed case"
    replace = _event_of(flow, "Replace")
    assert (replace["parentID"], replace["childEPCs"]) == (pack["parentID"], [dl + codes[5].serial])
    assert _event_of(flow, "Decommission LOCKED")["sealmark:reason"] == "locked on purpose"
    assert _event_of(flow, "UndoDecommission")["sealmark:undoes"] == "decommissioning"
    for operation in ("HoldLot", "ReleaseLot"):
        lot_class = f"https://id.gs1.org/01/{brand.gtin}/10/LOT-FID"
        assert _event_of(flow, operation)["quantityList"] == [{"epcClass": lot_class}]
    assert _event_of(flow, "HoldLot")["sealmark:reason"] == "QC deviation"
    assert _event_of(flow, "Recall")["sealmark:reason"] == "glass splinters found"


def test_operations_of_several_events_keep_them_together(flow: dict[str, Any]) -> None:
    """A sample out of a case is its unpacking, then the sampling; a rework empties the case,
    then packs its new content; a replacement takes the old label out of its case, then puts
    the new one in. All at the time and offset the caller gave."""
    events, codes = flow["events"], flow["codes"]
    dl = f"https://id.gs1.org/01/{flow['brand'].gtin}/21/"
    index = {e["eventID"]: i for i, e in enumerate(events)}
    sample = index[flow["ids"]["Sample"]]
    before = events[sample - 1]
    assert (before["bizStep"], before["action"]) == ("unpacking", "DELETE")
    assert before["childEPCs"] == [dl + codes[0].serial]
    rework = index[flow["ids"]["Rework"]]
    before = events[rework - 1]
    assert (before["bizStep"], before["action"]) == ("repackaging", "DELETE")
    assert "childEPCs" not in before  # everything out
    replace = index[flow["ids"]["Replace"]]
    before = events[replace - 1]
    assert (before["bizStep"], before["action"]) == ("replacing", "DELETE")
    assert before["childEPCs"] == [dl + codes[1].serial]
    assert before["parentID"] == events[replace]["parentID"]
    for i in (sample - 1, rework - 1, replace - 1):
        assert events[i]["eventTimeZoneOffset"] == OFFSET


def test_the_export_reads_back_the_same_in_either_identifier_format(flow: dict[str, Any]) -> None:
    """The independent reader accepts both documents, and the EPC URN one names the same
    events: same ids (the hash is representation-agnostic), same times and steps."""
    urn = read_document(flow["exports"]["urn"])
    dl = flow["events"]
    assert [e["eventID"] for e in urn] == [e["eventID"] for e in dl]
    fields = ("type", "action", "bizStep", "disposition", "eventTime", "eventTimeZoneOffset")
    assert [[e.get(f) for f in fields] for e in urn] == [[e.get(f) for f in fields] for e in dl]
    assert all(epc.startswith("urn:epc:id:") for e in urn for epc in e.get("epcList", []))


def test_a_changed_event_is_caught_by_the_reader(flow: dict[str, Any]) -> None:
    document = json.loads(flow["exports"]["dl"])
    document["epcisBody"]["eventList"][0]["eventTime"] = "2026-11-23T02:08:06.000Z"
    with pytest.raises(Unreadable, match="eventID"):
        read_document(document)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_gs1_examples_pass_the_same_reader(path: Path) -> None:
    """GS1's EPCIS 2.0 examples are schema-valid and break no rule; their eventIDs are
    illustrations, not the CBV 2.0 hash of the event they sit on, which the reader says."""
    events = read_document(path.read_bytes(), verify_ids=False)
    assert events
    with pytest.raises(Unreadable, match=r"is not the CBV 2\.0 event hash"):
        read_document(path.read_bytes())


def test_rows_recorded_before_the_new_fields_still_export() -> None:
    """An old payload (no time zone, no place, no parties) maps to a valid event."""
    old = {"codes": ["sscc:095201230000000011"], "destination_market": "DE", "affected": 1}
    (ship,) = export_events("logistics.shipped", old, NOW).events
    exported = event_json(ship, Identifiers())
    assert exported["eventTime"] == "2026-11-23T09:00:00.000Z"
    assert exported["eventTimeZoneOffset"] == "+00:00"
    assert "destinationList" not in exported and "bizLocation" not in exported
    read_document(
        {
            "@context": CONTEXT,
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2026-11-23T09:00:00.000Z",
            "epcisBody": {"eventList": [exported]},
        }
    )
