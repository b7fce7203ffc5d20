"""Audit's use cases on the in-memory fakes: recalls, the alert workflow and its feed, Trace,
the EPCIS export, reports and the transparency log, without a database or Redis."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from audit.domain import AlertKind, AlertStatus, RecallScope, Resolution
from audit.export import Counter, Exporter, ExportFilter
from audit.memory import MemoryAudit
from audit.reports import Reporter, ReportQuery
from audit.transparency import TransparencyLog
from audit.usecases import Auditor
from sealmark.clock import FixedClock
from sealmark.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from sealmark.events import NewEvent
from sealmark.gs1.checkdigit import check_digit
from sealmark.tenancy.model import Principal, Role
from sealmark.tlog import merkle
from sealmark.tlog.note import open_checkpoint, parse_verifier_key
from sealmark.units import UnitRef
from tests.storage_contract import gtin_under, tenant
from tests.unit.test_architecture import FORBIDDEN, ROOT, imported_names

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Setup:
    def __init__(self) -> None:
        self.clock = FixedClock(T0)
        self.world = MemoryAudit(self.clock.now)
        brand = tenant()
        self.world.add_tenant(brand)
        self.tenant = brand.id
        self.gtin = gtin_under(brand.company_prefixes[0])
        self.world.add_product(self.tenant, self.gtin)
        self.admin = Principal(self.tenant, frozenset({Role.ADMIN}), token_id="tok-admin")
        self.auditor = Principal(self.tenant, frozenset({Role.AUDITOR}), token_id="tok-aud")
        self.audit = Auditor(self.world.storage, self.world.wake, self.clock)

    def store(self) -> Any:
        """A read of the fake's tables, outside any use case."""
        with self.world.storage.reads() as store:
            return store

    def events(self, kind: str) -> list[Any]:
        return [e for e in self.world.state.events if e.kind == kind]


@pytest.fixture
def s() -> Setup:
    return Setup()


def _field(excinfo: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return excinfo.value.field


# -- recall -------------------------------------------------------------------------------
def test_recall_of_a_lot_is_idempotent_and_holds_the_lot(s: Setup) -> None:
    on_market = s.world.add_code(s.tenant, s.gtin, "A1", lot="L7", market="DE")
    s.world.add_code(s.tenant, s.gtin, "A2", lot="L7")
    s.world.add_code(s.tenant, s.gtin, "A3", lot="L8")
    scope = RecallScope("lot", gtin=s.gtin, lot="L7")

    first = s.audit.recall(s.admin, "req-1", scope, "  contamination ")
    assert (first.units_affected, first.units_not_shipped, first.duplicate) == (2, 1, False)
    assert first.by_shipment_market == [("", 1), ("DE", 1)]
    assert first.effective_at == T0
    assert s.store().lot_hold(s.tenant, s.gtin, "L7") == (
        True,
        f"recalled ({first.recall_id}): contamination",
    )
    (recorded,) = s.events("audit.recalled")
    assert recorded.request_id == "req-1"
    assert recorded.payload["affected"] == 2 and recorded.payload["lot"] == "L7"

    s.clock.advance(minutes=5)
    again = s.audit.recall(s.admin, "req-1", scope, "contamination")
    assert again.duplicate and again.recall_id == first.recall_id
    assert again.effective_at == T0 and again.units_affected == 2
    assert len(s.events("audit.recalled")) == 1  # the retry wrote nothing

    with pytest.raises(AlreadyExists, match="req-1"):
        s.audit.recall(s.admin, "req-1", RecallScope("lot", gtin=s.gtin, lot="L8"), "x")
    with pytest.raises(AlreadyExists):
        s.audit.recall(s.admin, "req-1", scope, "another reason")
    facts = s.store().code(s.tenant, on_market)
    assert facts is not None and facts.state == "recalled"
    assert s.world.state.codes[s.gtin + "A3"].state == "commissioned"


def test_recall_names_the_bad_field(s: Setup) -> None:
    lot = RecallScope("lot", gtin=s.gtin, lot="L1")
    with pytest.raises(InvalidArgument) as bad:
        s.audit.recall(s.admin, "has space", lot, "why")
    assert _field(bad) == "RecallRequest.request_id"
    with pytest.raises(InvalidArgument) as bad:
        s.audit.recall(s.admin, "r1", lot, "   ")
    assert _field(bad) == "RecallRequest.reason"
    with pytest.raises(InvalidArgument) as bad:
        s.audit.recall(s.admin, "r1", lot, "x" * 501)
    assert _field(bad) == "RecallRequest.reason"
    with pytest.raises(InvalidArgument) as bad:
        s.audit.recall(s.admin, "r1", RecallScope("codes", keys=()), "why")
    assert _field(bad) == "RecallRequest.codes"
    with pytest.raises(NotFound, match=r"RecallRequest\.lot\.gtin"):
        s.audit.recall(s.admin, "r1", RecallScope("lot", gtin="0" * 14, lot="L1"), "why")
    with pytest.raises(NotFound, match=r"RecallRequest\.codes"):
        s.audit.recall(s.admin, "r1", RecallScope("codes", keys=(s.gtin + "NOPE",)), "why")
    with pytest.raises(PermissionDenied):
        s.audit.recall(s.auditor, "r1", lot, "why")
    assert s.events("audit.recalled") == [] and s.world.state.recalls == {}


def test_recall_report_of_another_tenant_is_not_found(s: Setup) -> None:
    s.world.add_code(s.tenant, s.gtin, "B1")
    report = s.audit.recall(s.admin, "r-2", RecallScope("gtin", gtin=s.gtin), "why")
    other = Principal("t-other", frozenset({Role.AUDITOR}))
    with pytest.raises(NotFound, match=r"ReportRequest\.recall_id"):
        s.audit.recall_report(other, report.recall_id)
    assert s.audit.recall_report(s.auditor, report.recall_id).units_affected == 1


# -- alerts -------------------------------------------------------------------------------
def test_alert_pages_follow_the_token_to_the_end(s: Setup) -> None:
    ids = [
        s.world.add_alert(
            s.tenant, "suspect_clone", T0 + timedelta(minutes=n), details={"region": "DE"}
        )
        for n in range(5)
    ]
    s.world.add_alert("t-other", "suspect_clone", T0)
    page, token = s.audit.list_alerts(s.auditor, size=2)
    assert [a.id for a in page] == [ids[4], ids[3]] and token == str(ids[3])
    page, token = s.audit.list_alerts(s.auditor, size=2, token=token)
    assert [a.id for a in page] == [ids[2], ids[1]]
    page, token = s.audit.list_alerts(s.auditor, size=2, token=token)
    assert [a.id for a in page] == [ids[0]] and token == ""
    everything, token = s.audit.list_alerts(s.auditor, kind=AlertKind.CLONE)
    assert len(everything) == 5 and token == ""
    assert all(a.region == "DE" for a in everything)


def test_alert_listing_names_the_bad_field(s: Setup) -> None:
    with pytest.raises(InvalidArgument) as bad:
        s.audit.list_alerts(s.auditor, token="abc")
    assert _field(bad) == "ListAlertsRequest.page.page_token"
    with pytest.raises(InvalidArgument) as bad:
        s.audit.list_alerts(s.auditor, size=1001)
    assert _field(bad) == "ListAlertsRequest.page.page_size"
    with pytest.raises(InvalidArgument):
        s.audit.list_alerts(s.auditor, since=T0, until=T0 - timedelta(hours=1))


def test_acknowledge_then_resolve(s: Setup) -> None:
    alert_id = s.world.add_alert(s.tenant, "suspect_clone", T0)
    s.clock.advance(hours=1)
    acked = s.audit.acknowledge(s.auditor, alert_id, "looking")
    assert (acked.status, acked.note, acked.actor) == (
        AlertStatus.ACKNOWLEDGED,
        "looking",
        "tok-aud",
    )
    assert acked.acknowledged_at == T0 + timedelta(hours=1)
    with pytest.raises(InvalidArgument) as bad:
        s.audit.resolve(s.admin, alert_id, "done", None)
    assert _field(bad) == "AlertActionRequest.resolution"
    with pytest.raises(InvalidArgument) as bad:
        s.audit.resolve(s.admin, alert_id, "", Resolution.CONFIRMED)
    assert _field(bad) == "AlertActionRequest.note"
    with pytest.raises(PermissionDenied):
        s.audit.resolve(s.auditor, alert_id, "done", Resolution.CONFIRMED)
    done = s.audit.resolve(s.admin, alert_id, "confirmed clone", Resolution.CONFIRMED)
    assert (done.status, done.resolution, done.note) == (
        AlertStatus.RESOLVED,
        Resolution.CONFIRMED,
        "confirmed clone",
    )
    with pytest.raises(NotFound, match="no alert"):
        s.audit.acknowledge(Principal("t-other", frozenset({Role.AUDITOR})), alert_id, "")
    with pytest.raises(InvalidArgument) as bad:
        s.audit.acknowledge(s.auditor, 0, "")
    assert _field(bad) == "AlertActionRequest.alert_id"


def test_watch_yields_new_alerts_woken_by_the_stream(s: Setup) -> None:
    before = s.world.add_alert(s.tenant, "suspect_clone", T0)  # before the feed: not shown
    seen: list[int] = []
    done = threading.Event()

    def alive() -> bool:
        return not done.is_set()

    def feed() -> None:
        for alert in s.audit.watch(s.auditor, before, {AlertKind.CLONE}, None, alive):
            seen.append(alert.id)
            if len(seen) == 2:
                done.set()

    thread = threading.Thread(target=feed)
    thread.start()
    try:
        s.world.add_alert(s.tenant, "counterfeit", T0)  # another kind: filtered out
        first = s.world.add_alert(s.tenant, "suspect_clone", T0)
        s.world.wake.ring(s.tenant)
        second = s.world.add_alert(s.tenant, "suspect_clone", T0)
        s.world.wake.ring(s.tenant)
        thread.join(timeout=5)
    finally:
        done.set()
        thread.join(timeout=5)
    assert seen == [first, second]
    # 0 starts after the newest alert: nothing already stored is replayed
    assert list(s.audit.watch(s.auditor, 0, set(), None, iter([True, False]).__next__)) == []


# -- trace --------------------------------------------------------------------------------
def test_trace_of_a_code_and_of_a_stranger(s: Setup) -> None:
    key = s.world.add_code(s.tenant, s.gtin, "T1", lot="L1", request_id="iss-1", issued_at=T0)
    s.world.add_event(
        NewEvent(
            s.tenant,
            "codes.commissioned",
            "b",
            T0 + timedelta(hours=1),
            {"gtin": s.gtin, "serials": ["T1"]},
            "line-1",
        )
    )
    s.world.add_scan(s.tenant, "v1", key, "authentic", T0 + timedelta(hours=2))
    items = s.audit.trace(s.auditor, UnitRef.of_key(key))
    assert [getattr(i, "type", type(i).__name__) for i in items] == [
        "ISSUED",
        "COMMISSIONED",
        "TraceScan",
    ]
    with pytest.raises(NotFound, match=r"TraceRequest\.code"):
        s.audit.trace(s.auditor, UnitRef.of_key(s.gtin + "NOPE"))


# -- export -------------------------------------------------------------------------------
def test_export_writes_the_stored_events_in_order(s: Setup) -> None:
    body = "0" + s.gtin[1:12] + "00001"
    box = s.world.add_sscc(s.tenant, body + str(check_digit(body)))
    s.world.add_event(
        NewEvent(s.tenant, "lot.held", "lot", T0, {"gtin": s.gtin, "lot": "L1", "reason": "QC"})
    )
    s.world.add_event(NewEvent(s.tenant, "tenant.note", "n", T0, {}))
    s.world.add_event(
        NewEvent(
            s.tenant,
            "logistics.shipped",
            box,
            T0 + timedelta(hours=1),
            {"codes": [box], "to_party": "dc-berlin", "destination_market": "DE"},
        )
    )
    exporter = Exporter(s.world.export, s.clock.now)
    counter = Counter()
    document = json.loads(b"".join(exporter.export(s.auditor, ExportFilter(), counter)))
    events = document["epcisBody"]["eventList"]
    assert counter.events == len(events) == 2
    assert [e["type"] for e in events] == ["ObjectEvent", "ObjectEvent"]
    assert events[1]["bizStep"].endswith("shipping")
    with pytest.raises(InvalidArgument) as bad:
        list(exporter.export(s.auditor, ExportFilter(lot="L1"), Counter()))
    assert _field(bad) == "ExportEpcisRequest.lot.lot"
    with pytest.raises(InvalidArgument) as bad:
        list(exporter.export(s.auditor, ExportFilter(descendants=True), Counter()))
    assert _field(bad) == "ExportEpcisRequest.include_descendants"
    with pytest.raises(NotFound, match=r"ExportEpcisRequest\.code"):
        list(exporter.export(s.auditor, ExportFilter(code=s.gtin + "NOPE"), Counter()))


# -- reports ------------------------------------------------------------------------------
def test_serial_exposure_report(s: Setup) -> None:
    s.world.add_code(s.tenant, s.gtin, "111111111111", serial_scheme=1)
    s.world.add_code(s.tenant, s.gtin, "222222222222")
    reporter = Reporter(s.world.storage, s.clock, s.audit)
    content_type, blocks = reporter.render(s.auditor, ReportQuery("serial_exposure"))
    body = json.loads(b"".join(blocks))
    assert content_type == "application/json"
    (row,) = body["rows"]
    assert (row["gtin"], row["serials_issued"], row["legacy_serials"]) == (s.gtin, 2, 1)
    nearing = reporter.table(s.auditor, ReportQuery("nearing_expiry", days_ahead=30))
    assert nearing.rows == []
    s.world.add_code(s.tenant, s.gtin, "333", expiry=date(2026, 11, 15), market="FR")
    nearing = reporter.table(s.auditor, ReportQuery("nearing_expiry", days_ahead=30))
    assert nearing.rows == [[s.gtin, "", date(2026, 11, 15), "FR", 1]]


# -- transparency log ---------------------------------------------------------------------
def test_log_append_and_inclusion_proof_verify_against_the_checkpoint(s: Setup) -> None:
    log = TransparencyLog(s.world.tlog, s.clock, lambda: b"passphrase", "log.example/audit")
    empty = log.checkpoint(s.tenant)
    assert (empty.size, empty.root_hash) == (0, merkle.EMPTY_ROOT)
    s.world.add_code(s.tenant, s.gtin, "C1")
    s.audit.recall(s.admin, "rq-1", RecallScope("codes", keys=(s.gtin + "C1",)), "why")
    s.world.add_event(
        NewEvent(s.tenant, "lot.held", "lot", T0, {"gtin": s.gtin, "lot": "L1"}, "hold-1")
    )
    head = log.integrate(s.tenant)
    assert head.size == 2 and log.integrate(s.tenant).size == 2  # each event once
    checkpoint = open_checkpoint(head.signed_note, [parse_verifier_key(log.verifier_key(head))])
    assert (checkpoint.origin, checkpoint.size) == (f"log.example/audit/{s.tenant}", 2)
    index, size, path, entry = log.inclusion_proof(s.tenant, 0, None, 0)
    merkle.verify_inclusion(merkle.leaf_hash(entry), index, size, path, checkpoint.root_hash)
    assert json.loads(entry)["type"] == "recall"
    by_leaf = log.inclusion_proof(s.tenant, None, merkle.leaf_hash(entry), 0)
    assert by_leaf == (index, size, path, entry)
    assert [e.kind for e in log.entries(s.tenant, 0, 10)] == ["recall", "status_change"]
    first, second, proof = log.consistency_proof(s.tenant, 1, 0)
    assert (first, second) == (1, 2)
    merkle.verify_consistency(1, 2, proof, merkle.leaf_hash(entry), head.root_hash)
    with pytest.raises(InvalidArgument) as bad:
        log.inclusion_proof(s.tenant, 5, None, 0)
    assert _field(bad) == "GetInclusionProofRequest.leaf_index"
    with pytest.raises(InvalidArgument) as bad:
        log.inclusion_proof(s.tenant, None, b"short", 0)
    assert _field(bad) == "GetInclusionProofRequest.leaf_hash"
    with pytest.raises(NotFound):
        log.inclusion_proof(s.tenant, None, b"\0" * 32, 0)
    with pytest.raises(InvalidArgument) as bad:
        log.entries(s.tenant, 0, 0)
    assert _field(bad) == "GetLogEntriesRequest.count"


# -- layering -----------------------------------------------------------------------------
PORT_SIDE = ["ports", "memory", "memory_stores", "memory_tables", "memory_tlog"]
USE_CASES = ["usecases", "export", "epcis_mapping", "reports", "trace", "transparency"]
ADAPTERS_ONLY = ("psycopg2", "redis", "sealmark.storage", "sealmark_app", "grpc")


def test_ports_and_fakes_are_pure_and_use_cases_see_no_adapter() -> None:
    audit = ROOT / "audit"
    offenders = [
        f"{name}.py imports {imported}"
        for name in PORT_SIDE
        for imported in imported_names(audit / f"{name}.py")
        if any(imported == bad or imported.startswith(bad + ".") for bad in FORBIDDEN)
    ] + [
        f"{name}.py imports {imported}"
        for name in USE_CASES
        for imported in imported_names(audit / f"{name}.py")
        if any(imported == bad or imported.startswith(bad + ".") for bad in ADAPTERS_ONLY)
        or imported in {f"audit.{a}" for a in ("postgres", "postgres_export", "postgres_tlog")}
    ]
    assert offenders == []
