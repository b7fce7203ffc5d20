"""Audit end to end through gRPC: codes issued, commissioned, packed, shipped and scanned on
real Issuer / Aggregator / Verifier / Audit servers, then traced, alerted on, recalled,
reported, exported and checked in the transparency log, by an auditor and an admin of the
brand, and (for isolation) by the auditor of another brand."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from sealmark.clock import FixedClock
from sealmark.epcis.document import check_event
from sealmark.server.app import create_server
from sealmark.tlog import merkle
from sealmark.v1 import (
    aggregator_pb2,
    aggregator_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    common_pb2,
    issuer_pb2,
    issuer_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from sealmark_app.root import binding_for
from sealmark_app.root.verifier import build_verifier
from tests.e2e.conftest import _md, make_container
from tests.e2e.test_verification import GENEROUS, _issue, _pack_and_ship, _verify
from tests.support.epcis_schema import VALIDATOR
from tests.support.tenants import seed_tenant
from verifier.http import start_http

pytestmark = pytest.mark.e2e
Code = grpc.StatusCode
A = audit_pb2
ROLES = {
    "line": ["line"],
    "logistics": ["logistics"],
    "admin": ["admin"],
    "auditor": ["auditor"],
}


@pytest.fixture(scope="module")
def world(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    clock = FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    container = make_container(pg_dsn, redis_url)
    container.clock = clock
    brand = seed_tenant(container.uow, clock, "aud", tokens=ROLES)
    other = seed_tenant(container.uow, clock, "aud2", tokens={"auditor": ["auditor"]})
    verifier = build_verifier(container)
    verifier.set_rules(brand.tenant_id, GENEROUS)
    running = create_server(
        [binding_for(n, container) for n in ("issuer", "aggregator", "verifier", "audit")],
        container.authenticator,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    page, _ = start_http(verifier, "127.0.0.1", 0, clock=clock)
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    w: dict[str, Any] = {
        "container": container,
        "channel": channel,
        "issuer": issuer,
        "aggregator": aggregator_pb2_grpc.AggregatorStub(channel),
        "verifier": verifier_pb2_grpc.VerifierStub(channel),
        "audit": audit_pb2_grpc.AuditStub(channel),
        "brand": brand,
        "other": other,
        "dsn": pg_dsn,
        "clock": clock,
        "page": page,
        "target": f"127.0.0.1:{running.port}",
    }
    yield w
    page.stop()
    channel.close()
    running.stop(0)
    container.close()


def _as(w: dict[str, Any], role: str, brand: str = "brand") -> list[tuple[str, str]]:
    return _md(w[brand].tokens[role])


def _ref(w: dict[str, Any], code: Any) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=w["brand"].gtin, serial=code.serial))


def _tick(w: dict[str, Any], seconds: float = 60) -> None:
    w["clock"].advance(seconds=seconds)


def _flush(w: dict[str, Any]) -> None:
    """Scans reach PostgreSQL within 100 ms (the verifier's batch window); no waiting here."""
    build_verifier(w["container"]).flush()


def _trace(w: dict[str, Any], ref: common_pb2.CodeRef, role: str = "auditor") -> list[Any]:
    _flush(w)
    return list(w["audit"].Trace(A.TraceRequest(code=ref), metadata=_as(w, role), timeout=10))


def test_trace_lists_every_step_in_order(world: dict[str, Any]) -> None:
    w = world
    moments = []
    codes = _issue(w, 4)
    moments.append(w["clock"].now())
    _tick(w)
    case = _pack_and_ship(w, codes[:3], "DE")
    moments.append(w["clock"].now())
    _tick(w)
    _verify(w, codes[0].digital_link, session="t-1", region="DE")
    moments.append(w["clock"].now())
    _tick(w)
    _verify(w, codes[0].digital_link, session="t-2", region="DE")
    moments.append(w["clock"].now())
    entries = _trace(w, _ref(w, codes[0]))
    kinds = [e.WhichOneof("entry") for e in entries]
    types = [
        common_pb2.EventType.Name(e.event.type).removeprefix("EVENT_TYPE_")
        for e in entries
        if e.WhichOneof("entry") == "event"
    ]
    assert types == ["ISSUED", "COMMISSIONED", "PACKED", "SHIPPED"]
    assert kinds == ["event"] * 4 + ["scan", "scan"]
    times = [e.time.ToDatetime(tzinfo=UTC) for e in entries]
    issued_at, packed_at, first_scan, second_scan = moments
    assert times == [issued_at, issued_at, packed_at, packed_at, first_scan, second_scan]
    issued, _, packed, shipped = (e for e in entries if e.WhichOneof("entry") == "event")
    assert issued.work_order == "WO-ver" and issued.line_id == "line-1" and issued.key_id
    assert packed.event.parent_code.sscc == case
    assert shipped.inherited_from.sscc == case  # the case was shipped, the item with it
    assert shipped.event.attributes["destination_market"] == "DE"
    scans = [e.scan for e in entries if e.WhichOneof("entry") == "scan"]
    assert [s.verdict for s in scans] == [
        verifier_pb2.VERDICT_AUTHENTIC,
        verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE,
    ]
    assert scans[0].region == "DE"
    # The item never packed (codes[3]) inherits nothing.
    lone = [e for e in _trace(w, _ref(w, codes[3])) if e.WhichOneof("entry") == "event"]
    assert [common_pb2.EventType.Name(e.event.type) for e in lone] == [
        "EVENT_TYPE_ISSUED",
        "EVENT_TYPE_COMMISSIONED",
    ]


def test_trace_refuses_unknown_codes_and_other_tenants(world: dict[str, Any]) -> None:
    w = world
    codes = _issue(w, 1)
    with pytest.raises(grpc.RpcError) as caught:
        list(
            w["audit"].Trace(
                A.TraceRequest(code=_ref(w, codes[0])), metadata=_as(w, "auditor", "other")
            )
        )
    assert caught.value.code() == Code.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        list(w["audit"].Trace(A.TraceRequest(), metadata=_as(w, "auditor")))
    assert caught.value.code() == Code.INVALID_ARGUMENT
    assert "TraceRequest.code" in (caught.value.details() or "")
    with pytest.raises(grpc.RpcError) as caught:
        _trace(w, _ref(w, codes[0]), role="line")
    assert caught.value.code() == Code.PERMISSION_DENIED


def _counterfeit_scan(w: dict[str, Any], code: Any) -> None:
    link = code.digital_link
    head, sig = link.rsplit("8030=", 1)
    forged = head + "8030=" + sig[:-3] + ("A" if sig[-3] != "A" else "B") + sig[-2:]
    answer = _verify(w, forged, session="forger")
    assert answer.verdict == verifier_pb2.VERDICT_COUNTERFEIT


def test_alerts_arrive_on_watch_within_a_second_and_resume_without_gaps(
    world: dict[str, Any],
) -> None:
    w = world
    codes = _issue(w, 5)
    arrived: queue.Queue[tuple[float, Any]] = queue.Queue()
    stream = w["audit"].WatchAlerts(A.WatchAlertsRequest(), metadata=_as(w, "auditor"))

    def read() -> None:
        try:
            for alert in stream:
                arrived.put((time.monotonic(), alert))
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)  # the watch has taken its starting point
    sent = time.monotonic()
    _counterfeit_scan(w, codes[0])
    at, first = arrived.get(timeout=5)
    assert at - sent < 1.0, f"alert took {at - sent:.2f} s"
    assert first.kind == A.ALERT_KIND_BAD_SIGNATURE
    assert first.code.sgtin.serial == codes[0].serial
    assert first.severity == A.ALERT_SEVERITY_HIGH and first.status == A.ALERT_STATUS_OPEN
    stream.cancel()
    reader.join(timeout=5)
    # Disconnected: more alerts happen; reconnecting after the last id seen gets exactly them.
    for code in codes[1:4]:
        _counterfeit_scan(w, code)
    resumed = w["audit"].WatchAlerts(
        A.WatchAlertsRequest(after_id=first.id), metadata=_as(w, "auditor"), timeout=3
    )
    got = []
    with pytest.raises(grpc.RpcError) as ended:
        for alert in resumed:
            got.append(alert)
    assert ended.value.code() == Code.DEADLINE_EXCEEDED
    assert [a.code.sgtin.serial for a in got] == [c.serial for c in codes[1:4]]
    assert [a.id for a in got] == sorted(a.id for a in got) and got[0].id > first.id
    # The other brand's auditor sees none of them.
    listed = w["audit"].ListAlerts(A.ListAlertsRequest(), metadata=_as(w, "auditor", "other"))
    assert list(listed.alerts) == []


def test_alert_workflow_acknowledge_then_resolve(world: dict[str, Any]) -> None:
    w = world
    codes = _issue(w, 1)
    _counterfeit_scan(w, codes[0])
    listed = w["audit"].ListAlerts(
        A.ListAlertsRequest(code=_ref(w, codes[0])), metadata=_as(w, "auditor")
    )
    (alert,) = listed.alerts
    # Forged signatures and unknown serials are both stored as counterfeit: the kind filter
    # tells them apart in SQL, so pages stay full and tokens right.
    for kind, expected in (
        (A.ALERT_KIND_BAD_SIGNATURE, [alert.id]),
        (A.ALERT_KIND_COUNTERFEIT, []),
    ):
        by_kind = w["audit"].ListAlerts(
            A.ListAlertsRequest(code=_ref(w, codes[0]), kind=kind), metadata=_as(w, "auditor")
        )
        assert [a.id for a in by_kind.alerts] == expected
    acked = w["audit"].AcknowledgeAlert(
        A.AlertActionRequest(alert_id=alert.id, note="looking"), metadata=_as(w, "auditor")
    )
    assert acked.status == A.ALERT_STATUS_ACKNOWLEDGED and acked.note == "looking"
    again = w["audit"].AcknowledgeAlert(
        A.AlertActionRequest(alert_id=alert.id), metadata=_as(w, "auditor")
    )
    assert again.status == A.ALERT_STATUS_ACKNOWLEDGED and again.note == "looking"
    with pytest.raises(grpc.RpcError) as caught:
        w["audit"].ResolveAlert(
            A.AlertActionRequest(
                alert_id=alert.id, note="x", resolution=A.ALERT_RESOLUTION_CONFIRMED
            ),
            metadata=_as(w, "auditor"),
        )
    assert caught.value.code() == Code.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as caught:
        w["audit"].ResolveAlert(
            A.AlertActionRequest(alert_id=alert.id, resolution=A.ALERT_RESOLUTION_CONFIRMED),
            metadata=_as(w, "admin"),
        )
    assert caught.value.code() == Code.INVALID_ARGUMENT
    assert "AlertActionRequest.note" in (caught.value.details() or "")
    resolved = w["audit"].ResolveAlert(
        A.AlertActionRequest(
            alert_id=alert.id, note="forged label, seized", resolution=A.ALERT_RESOLUTION_CONFIRMED
        ),
        metadata=_as(w, "admin"),
    )
    assert resolved.status == A.ALERT_STATUS_RESOLVED
    assert resolved.resolution == A.ALERT_RESOLUTION_CONFIRMED and resolved.actor
    for call, role in (
        (w["audit"].ResolveAlert, "admin"),
        (w["audit"].AcknowledgeAlert, "auditor"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(
                A.AlertActionRequest(
                    alert_id=alert.id, note="again", resolution=A.ALERT_RESOLUTION_DUPLICATE
                ),
                metadata=_as(w, role),
            )
        assert caught.value.code() == Code.FAILED_PRECONDITION
    for brand in ("brand", "other"):
        with pytest.raises(grpc.RpcError) as caught:
            w["audit"].AcknowledgeAlert(
                A.AlertActionRequest(alert_id=alert.id + 10**9 if brand == "brand" else alert.id),
                metadata=_as(w, "auditor", brand),
            )
        assert caught.value.code() == Code.NOT_FOUND


def _page(w: dict[str, Any], code: Any) -> tuple[dict[str, Any], str]:
    url = w["page"].url + "/01/" + code.digital_link.split("/01/", 1)[1]
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our server
        as_json = json.loads(response.read())
    request = urllib.request.Request(url, headers={"Accept-Language": "en"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        html = response.read().decode()
    return as_json, html


def test_recall_flips_verification_at_once_and_reports_the_units(world: dict[str, Any]) -> None:
    w = world
    codes = _issue(w, 6, lot="LOT-RC")
    _pack_and_ship(w, codes[:4], "FR")  # 4 shipped to FR, 2 still at the plant
    _verify(w, codes[0].digital_link, session="r-1", region="FR")
    before, _ = _page(w, codes[1])
    assert before["verdict"] != "recalled"
    _flush(w)
    _tick(w)  # the clock is fixed: the recall comes a minute after those scans
    report = w["audit"].Recall(
        A.RecallRequest(
            request_id="rc-" + os.urandom(4).hex(),
            lot=A.LotRef(gtin=w["brand"].gtin, lot="LOT-RC"),
            reason="glass splinters found in the batch",
        ),
        metadata=_as(w, "admin"),
    )
    assert report.units_affected == 6 and report.units_not_shipped == 2
    assert {m.market: m.units for m in report.by_shipment_market} == {"FR": 4, "": 2}
    # codes[0] scanned in FR; codes[1] on the page, which sent no region ("" = unknown).
    assert {m.market: m.units for m in report.by_last_scan_region} == {"FR": 1, "": 1}
    assert report.scans_since_recall == 0 and not report.duplicate
    # From this moment every channel says RECALLED.
    answer = _verify(w, codes[1].digital_link, session="r-2", region="FR")
    assert answer.verdict == verifier_pb2.VERDICT_RECALLED
    as_json, html = _page(w, codes[2])
    assert as_json["verdict"] == "recalled" and "Recalled" in html
    assert "glass splinters found in the batch" in html  # the brand's words reach the consumer
    # A retry with the same request id returns the same recall; another reason is refused.
    _flush(w)
    again = w["audit"].Recall(
        A.RecallRequest(
            request_id=report.recall_id and _request_id_of(w, report.recall_id),
            lot=A.LotRef(gtin=w["brand"].gtin, lot="LOT-RC"),
            reason="glass splinters found in the batch",
        ),
        metadata=_as(w, "admin"),
    )
    assert again.duplicate and again.recall_id == report.recall_id
    assert again.scans_since_recall == 3  # the gRPC scan, the page as JSON and as HTML
    # Recall report as a table.
    chunks = list(
        w["audit"].GetReport(
            A.ReportRequest(
                kind=A.REPORT_KIND_RECALL,
                format=A.REPORT_FORMAT_CSV,
                recall_id=report.recall_id,
            ),
            metadata=_as(w, "auditor"),
        )
    )
    assert chunks[0].content_type == "text/csv"
    text = b"".join(c.data for c in chunks).decode()
    assert "units_affected,,6" in text and "shipment_market,FR,4" in text
    # The lot stays held for good: it cannot be released, so no code of it reaches the market.
    with pytest.raises(grpc.RpcError) as caught:
        w["issuer"].ReleaseLot(
            issuer_pb2.LotHoldRequest(gtin=w["brand"].gtin, lot="LOT-RC"),
            metadata=_as(w, "line"),
        )
    assert caught.value.code() == Code.FAILED_PRECONDITION
    assert "recalled" in (caught.value.details() or "")
    # Another brand's product cannot be recalled by us (nor its existence learnt).
    with pytest.raises(grpc.RpcError) as caught:
        w["audit"].Recall(
            A.RecallRequest(
                request_id="x2-" + os.urandom(3).hex(), gtin=w["other"].gtin, reason="r"
            ),
            metadata=_as(w, "admin"),
        )
    assert caught.value.code() == Code.NOT_FOUND
    # Auditors cannot recall.
    with pytest.raises(grpc.RpcError) as caught:
        w["audit"].Recall(
            A.RecallRequest(request_id="x1", gtin=w["brand"].gtin, reason="r"),
            metadata=_as(w, "auditor"),
        )
    assert caught.value.code() == Code.PERMISSION_DENIED


def _request_id_of(w: dict[str, Any], recall_id: str) -> str:
    import psycopg2

    with psycopg2.connect(w["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT request_id FROM recalls WHERE recall_id = %s", (recall_id,))
        return str(cur.fetchone()[0])


def test_recall_of_a_parent_takes_everything_inside(world: dict[str, Any]) -> None:
    w = world
    codes = _issue(w, 3, lot="LOT-RP")
    case = _pack_and_ship(w, codes, "DE")
    report = w["audit"].Recall(
        A.RecallRequest(
            request_id="rp-" + os.urandom(4).hex(),
            parent=common_pb2.CodeRef(sscc=case),
            reason="temperature excursion",
        ),
        metadata=_as(w, "admin"),
    )
    assert report.units_affected == 3
    kids = list(
        w["aggregator"].ListChildren(
            aggregator_pb2.ListChildrenRequest(parent=common_pb2.CodeRef(sscc=case)),
            metadata=_as(w, "logistics"),
        )
    )
    states = {c.state for page in kids for c in page.children}
    assert states == {common_pb2.CODE_STATE_RECALLED}
    last = _trace(w, _ref(w, codes[0]))[-1]
    assert last.event.type == common_pb2.EVENT_TYPE_RECALLED
    assert last.event.attributes["reason"] == "temperature excursion"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"request_id": "ok-1", "reason": "r"}, "RecallRequest.scope"),
        ({"request_id": "ok-2", "gtin": "123", "reason": "r"}, "RecallRequest.gtin"),
        ({"request_id": "", "gtin": "09520123456788", "reason": "r"}, "RecallRequest.request_id"),
        ({"request_id": "ok-3", "gtin": "09520123456788", "reason": ""}, "RecallRequest.reason"),
        ({"request_id": "bad id!", "gtin": "09520123456788", "reason": "r"}, "request_id"),
    ],
)
def test_recall_names_the_bad_field(
    world: dict[str, Any], request_fields: dict[str, str], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        world["audit"].Recall(A.RecallRequest(**request_fields), metadata=_as(world, "admin"))
    assert caught.value.code() == Code.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


def test_reports_render_as_json_csv_and_charts(world: dict[str, Any]) -> None:
    w = world
    codes = _issue(w, 2, lot="LOT-RPT")
    _verify(w, codes[0].digital_link, session="rep-1", region="CN")
    _flush(w)

    def get(kind: int, fmt: int, **fields: Any) -> tuple[str, bytes]:
        got = list(
            w["audit"].GetReport(
                A.ReportRequest(kind=kind, format=fmt, **fields), metadata=_as(w, "auditor")
            )
        )
        return got[0].content_type, b"".join(c.data for c in got)

    kind, data = get(A.REPORT_KIND_RECONCILIATION, A.REPORT_FORMAT_JSON, work_order="WO-ver")
    table = json.loads(data)
    assert kind == "application/json"
    by_lot = {r["lot"]: r for r in table["rows"]}
    assert by_lot["LOT-RPT"]["allocated"] == 2 and by_lot["LOT-RPT"]["commissioned"] == 2
    kind, data = get(A.REPORT_KIND_SCANS_BY_REGION_DAY, A.REPORT_FORMAT_CSV, region="CN")
    assert kind == "text/csv"
    assert data.decode().splitlines()[1:] == ["2026-11-23,CN,1,0,0,1"]
    kind, data = get(A.REPORT_KIND_HOTSPOTS, A.REPORT_FORMAT_SVG)
    assert kind == "image/svg+xml" and data.lstrip().startswith(b"<?xml") and b"<svg" in data
    kind, data = get(A.REPORT_KIND_NEARING_EXPIRY, A.REPORT_FORMAT_PNG, days_ahead=3650)
    assert kind == "image/png" and data.startswith(b"\x89PNG\r\n\x1a\n")
    for fields, field in (
        ({"kind": A.REPORT_KIND_RECONCILIATION}, "ReportRequest.work_order"),
        ({}, "ReportRequest.kind"),
        ({"kind": A.REPORT_KIND_HOTSPOTS, "region": "<b>"}, "ReportRequest.region"),
        ({"kind": A.REPORT_KIND_NEARING_EXPIRY, "days_ahead": 5000}, "ReportRequest.days_ahead"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            list(w["audit"].GetReport(A.ReportRequest(**fields), metadata=_as(w, "auditor")))
        assert caught.value.code() == Code.INVALID_ARGUMENT
        assert field in (caught.value.details() or "")


def _cli(w: dict[str, Any], *args: str, role: str = "auditor") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEALMARK_TOKEN": w["brand"].tokens[role]}
    return subprocess.run(
        [sys.executable, "-m", "sealmark_app.cli.main", "audit", *args, "--target", w["target"]],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_transparency_log_proves_inclusion_and_growth_and_catches_a_rewrite(
    world: dict[str, Any], tmp_path: Path
) -> None:
    w = world
    codes = _issue(w, 2)
    first = w["audit"].GetCheckpoint(A.GetCheckpointRequest(), metadata=_as(w, "auditor"))
    assert first.tree_size >= 3  # the key rotation, the issuance, the commissioning, …
    assert first.origin.endswith("/" + w["brand"].tenant_id)
    body = first.signed_note.split("\n\n", 1)[0] + "\n"
    assert body.splitlines()[:2] == [first.origin, str(first.tree_size)]
    # Entries hold commitments, never serials.
    entries = (
        w["audit"]
        .GetLogEntries(A.GetLogEntriesRequest(start=0, count=1000), metadata=_as(w, "auditor"))
        .entries
    )
    assert len(entries) == first.tree_size
    kinds = {e.kind for e in entries}
    assert {A.LOG_ENTRY_KIND_BATCH_COMMITMENT, A.LOG_ENTRY_KIND_STATUS_CHANGE} <= kinds
    assert A.LOG_ENTRY_KIND_KEY_SET_CHANGE in kinds
    _issue(w, 1)  # the log grows
    blob = b"".join(e.data for e in entries)
    assert codes[0].serial.encode() not in blob
    # The log grows; the CLI saves and checks everything offline with the verifier key.
    (tmp_path / "cp1.note").write_text(first.signed_note)
    second = _cli(w, "tlog", "checkpoint", "--out", str(tmp_path / "cp2.note"), "--json")
    assert second.returncode == 0, second.stderr
    saved = json.loads(second.stdout)
    size = saved["tree_size"]
    assert size > first.tree_size and saved["verifier_key"] == first.verifier_key
    cp1, cp2 = str(tmp_path / "cp1.note"), str(tmp_path / "cp2.note")
    consistency, inclusion = str(tmp_path / "consistency.json"), str(tmp_path / "prove.json")
    entries_file = str(tmp_path / "entries.json")

    def save(*args: str) -> None:
        """As docs/audit.md shows: everything pinned to the newest saved checkpoint."""
        done = _cli(w, "tlog", *args, "--out", str(tmp_path / (args[0] + ".json")))
        assert done.returncode == 0, done.stderr

    save("consistency", "--from", cp1, "--at", cp2)
    save("prove", "--index", "1", "--at", cp2)
    save("entries", "--at", cp2)
    _issue(w, 1)  # the log grows past cp2: the files stay those of cp2

    def verify(checkpoint: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """Offline: only the key, the saved checkpoint and the files named in ``extra``."""
        key = first.verifier_key
        return _cli(w, "tlog", "verify", "--key", key, "--checkpoint", checkpoint, *extra)

    def documented() -> subprocess.CompletedProcess[str]:
        return verify(
            cp1,
            *("--newer", cp2, "--consistency", consistency),
            *("--inclusion", inclusion, "--entries", entries_file),
        )

    ok = documented()
    assert ok.returncode == 0, ok.stderr
    assert "extends" in ok.stdout and "rebuild the newest checkpoint's root" in ok.stdout
    # A consumer's code: its commitment is in its issuance batch, which is in the log.
    gtin = w["brand"].gtin
    code_proof = tmp_path / "code.json"
    done = _cli(
        w,
        "tlog",
        "prove",
        "--code",
        f"{gtin}/{codes[0].serial}",
        "--at",
        cp2,
        "--out",
        str(code_proof),
    )
    assert done.returncode == 0, done.stderr
    assert codes[0].serial not in code_proof.read_text()
    mine = verify(cp2, "--inclusion", str(code_proof), "--code", codes[0].digital_link)
    assert mine.returncode == 0, mine.stderr
    assert "issued in the logged batch" in mine.stdout
    other = verify(cp2, "--inclusion", str(code_proof), "--code", codes[1].digital_link)
    assert other.returncode == 1, other.stderr
    # Someone with the owner's database access rewrites an entry (the services' role may
    # not): before, at and after the older checkpoint's size, each in turn, and puts it back.
    import psycopg2

    def rewrite(index: int, sql: str) -> None:
        with psycopg2.connect(w["dsn"]) as conn, conn.cursor() as cur:
            cur.execute(sql + " WHERE tenant_id = %s AND idx = %s", (w["brand"].tenant_id, index))

    with (
        psycopg2.connect(w["dsn"]) as conn,
        conn.cursor() as cur,
        pytest.raises(psycopg2.Error, match="permission denied"),
    ):
        cur.execute("SET ROLE sealmark_service")
        cur.execute(
            "UPDATE tlog_entries SET data = 'x' WHERE tenant_id = %s AND idx = 1",
            (w["brand"].tenant_id,),
        )
    old = first.tree_size
    for index in sorted({0, old - 1, old, size - 1}):
        rewrite(index, "UPDATE tlog_entries SET data = data || '\\x20'::bytea")
        try:
            save("entries", "--at", cp2)
            save("prove", "--index", str(index), "--at", cp2)
            caught = documented()
        finally:
            rewrite(index, "UPDATE tlog_entries SET data = substr(data, 1, length(data) - 1)")
        assert caught.returncode == 1, caught.stdout
        assert "VERIFICATION FAILED" in caught.stderr
        assert f"entry {index} is not in the checkpoint" in caught.stderr
        assert f"entry {index} was rewritten" in caught.stderr or "one of entries" in caught.stderr
    save("entries", "--at", cp2)
    save("prove", "--index", "1", "--at", cp2)
    assert documented().returncode == 0  # put back, it verifies again
    # Entries past the newest checkpoint are refused, not skipped: nothing signed covers them.
    save("entries", "--count", "1000")
    past = verify(cp1, "--newer", cp2, "--consistency", consistency, "--entries", entries_file)
    assert past.returncode == 1 and "past the newest checkpoint" in past.stderr
    # A tampered checkpoint signature is refused too.
    note = (tmp_path / "cp2.note").read_text()
    (tmp_path / "bad.note").write_text(note.replace(str(size), str(size + 1), 1))
    bad = verify(str(tmp_path / "bad.note"))
    assert bad.returncode == 1 and "VERIFICATION FAILED" in bad.stderr


def test_other_tenants_log_is_separate(world: dict[str, Any]) -> None:
    w = world
    mine = w["audit"].GetCheckpoint(A.GetCheckpointRequest(), metadata=_as(w, "auditor"))
    theirs = w["audit"].GetCheckpoint(A.GetCheckpointRequest(), metadata=_as(w, "auditor", "other"))
    assert theirs.origin != mine.origin and theirs.tree_size == 0
    assert theirs.verifier_key != mine.verifier_key
    with pytest.raises(grpc.RpcError) as caught:
        w["audit"].GetInclusionProof(
            A.GetInclusionProofRequest(leaf_index=0), metadata=_as(w, "auditor", "other")
        )
    assert caught.value.code() == Code.INVALID_ARGUMENT


def _fresh_brand(w: dict[str, Any]) -> dict[str, Any]:
    """The world with a brand of its own (own log, own signing key) in place of "brand"."""
    brand = seed_tenant(w["container"].uow, w["clock"], "aud", tokens=ROLES)
    w["issuer"].RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]))
    return {**w, "brand": brand}


def test_inclusion_proof_carries_the_entry_that_hashes_to_the_proven_leaf(
    world: dict[str, Any],
) -> None:
    w = _fresh_brand(world)  # a log nobody has tampered with
    _issue(w, 1)
    md = _as(w, "auditor")
    head = w["audit"].GetCheckpoint(A.GetCheckpointRequest(), metadata=md)
    stored = w["audit"].GetLogEntries(A.GetLogEntriesRequest(start=0, count=1000), metadata=md)
    assert head.tree_size >= 3
    roots = {head.tree_size: head.root_hash}
    roots[2] = merkle.root([merkle.leaf_hash(e.data) for e in stored.entries[:2]])
    for index in range(head.tree_size):
        for size in sorted({s for s in roots if s > index}):
            proof = w["audit"].GetInclusionProof(
                A.GetInclusionProofRequest(leaf_index=index, tree_size=size), metadata=md
            )
            assert proof.entry == stored.entries[index].data != b""
            merkle.verify_inclusion(
                merkle.leaf_hash(proof.entry), index, size, list(proof.hashes), roots[size]
            )
    # By leaf hash: the same entry, found by the hash of its bytes.
    last = stored.entries[head.tree_size - 1].data
    by_hash = w["audit"].GetInclusionProof(
        A.GetInclusionProofRequest(leaf_hash=merkle.leaf_hash(last)), metadata=md
    )
    assert by_hash.entry == last and by_hash.leaf_index == head.tree_size - 1


def _export(w: dict[str, Any], brand: str = "brand", **fields: Any) -> tuple[dict[str, Any], int]:
    """One export by the auditor of ``brand``: the parsed document and its event count."""
    request = A.ExportEpcisRequest(**fields)
    chunks = list(w["audit"].ExportEpcis(request, metadata=_as(w, "auditor", brand), timeout=60))
    document = json.loads(b"".join(c.data for c in chunks))
    return document, chunks[-1].events_so_far


def _check_document(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Schema-valid, and every event passes the rules the schema does not check (aggregation
    events carry parentID, eventID is the event's CBV 2.0 hash)."""
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda e: list(e.path))
    assert errors == []
    events: list[dict[str, Any]] = document["epcisBody"]["eventList"]
    for event in events:
        check_event(event)
        if event["type"] == "AggregationEvent":
            assert event["parentID"]
    return events


def test_an_aggregation_that_changes_nothing_stores_no_event_and_export_validates(
    world: dict[str, Any],
) -> None:
    """Issue 28: a line re-sending a pack it already did, under a new event id, got OK and
    stored an event without children, and ExportEpcis of the whole tenant then failed."""
    w = _fresh_brand(world)  # the whole tenant's export holds only what this test does
    codes = _issue(w, 2)
    items = [_ref(w, c) for c in codes]
    md = _as(w, "line")
    allocated = w["issuer"].AllocateSsccs(
        issuer_pb2.AllocateSsccsRequest(
            request_id="s-" + os.urandom(6).hex(),
            company_prefix=w["brand"].prefix,
            extension_digit=1,
            quantity=1,
        ),
        metadata=md,
        timeout=10,
    )
    box = common_pb2.CodeRef(sscc=allocated.ssccs[0])
    packed = aggregator_pb2.PackRequest(
        event_id="p-" + os.urandom(6).hex(),
        parent=box,
        children=items,
        parent_level=common_pb2.PACK_LEVEL_CASE,
    )
    assert w["aggregator"].Pack(packed, metadata=md, timeout=10).children_affected == 2
    del packed.children[1:]
    noops: list[str] = []

    def send(rpc: str, request: Any) -> Any:
        request.event_id = "noop-" + os.urandom(6).hex()
        noops.append(request.event_id)
        return getattr(w["aggregator"], rpc)(request, metadata=md, timeout=10)

    again = send("Pack", packed)
    assert (again.duplicate, again.children_affected, again.event_id) == (False, 0, noops[-1])
    assert again.HasField("recorded_at")
    resent = w["aggregator"].Pack(packed, metadata=md, timeout=10)  # the same id once more
    assert (resent.duplicate, resent.children_affected) == (True, 0)
    reworked = send("Rework", aggregator_pb2.ReworkRequest(parent=box, children=items))
    assert (reworked.duplicate, reworked.children_affected) == (False, 0)
    packed.event_id = "noop-" + os.urandom(6).hex()
    noops.append(packed.event_id)
    acks = list(
        w["aggregator"].PackStream(
            iter([aggregator_pb2.PackStreamRequest(pack=packed)]), metadata=md, timeout=10
        )
    )
    assert [(a.ok, a.duplicate, a.children_affected) for a in acks] == [(True, False, 0)]
    # Emptied once for real, then "everything" again from an empty case: nothing to record.
    emptied = aggregator_pb2.UnpackRequest(event_id="up-" + os.urandom(6).hex(), parent=box)
    assert w["aggregator"].Unpack(emptied, metadata=md, timeout=10).children_affected == 2
    assert send("Unpack", aggregator_pb2.UnpackRequest(parent=box)).children_affected == 0
    # Unpacking a child that is no longer inside is refused: it stores nothing either.
    with pytest.raises(grpc.RpcError) as caught:
        send("Unpack", aggregator_pb2.UnpackRequest(parent=box, children=items[:1]))
    assert caught.value.code() == Code.FAILED_PRECONDITION
    assert "is not in" in (caught.value.details() or "")
    import psycopg2

    with psycopg2.connect(w["dsn"]) as conn, conn.cursor() as cur:
        tenant = w["brand"].tenant_id
        cur.execute(
            "SELECT (SELECT count(*) FROM domain_events WHERE tenant_id = %s"
            "  AND request_id = ANY(%s)),"
            " (SELECT count(*) FROM containment_history WHERE tenant_id = %s"
            "  AND event_id = ANY(%s)),"
            " (SELECT count(*) FROM aggregation_events WHERE tenant_id = %s"
            "  AND event_id = ANY(%s))",
            (tenant, noops, tenant, noops, tenant, noops),
        )
        # No domain event or history; the results are kept so that a resend is a duplicate.
        assert cur.fetchone() == (0, 0, len(noops) - 1)
    document, count = _export(w)
    events = _check_document(document)
    assert count == len(events) > 0
    aggregations = [e for e in events if e["type"] == "AggregationEvent"]
    assert [e["action"] for e in aggregations] == ["ADD", "DELETE"]
    assert len(aggregations[0]["childEPCs"]) == 2  # the one real pack
    assert "childEPCs" not in aggregations[1]  # the one real unpack: everything


def test_epcis_export_of_a_lot_and_a_code_is_schema_valid(world: dict[str, Any]) -> None:
    w = world
    codes = _issue(w, 3, lot="LOT-EPC")
    _tick(w)
    case = _pack_and_ship(w, codes[:2], "NL")
    _tick(w)  # the clock is fixed: unpacked a minute after the shipment
    w["aggregator"].Unpack(
        aggregator_pb2.UnpackRequest(
            event_id="up-" + os.urandom(4).hex(), parent=common_pb2.CodeRef(sscc=case)
        ),
        metadata=_as(w, "line"),
    )
    lot = A.LotRef(gtin=w["brand"].gtin, lot="LOT-EPC")
    document, count = _export(w, lot=lot)
    events = _check_document(document)
    assert count == len(events)
    steps = [(e["type"], e.get("bizStep"), e.get("action")) for e in events]
    assert steps == [
        ("ObjectEvent", "commissioning", "ADD"),
        ("AggregationEvent", "packing", "ADD"),
        ("ObjectEvent", "shipping", "OBSERVE"),
        ("AggregationEvent", "unpacking", "DELETE"),
    ]
    commission, pack, ship, unpack = events
    assert commission["ilmd"]["cbvmda:lotNumber"] == "LOT-EPC"
    assert len(commission["epcList"]) == 3
    assert all(e.startswith("https://id.gs1.org/01/") for e in commission["epcList"])
    assert pack["parentID"] == f"https://id.gs1.org/00/{case}" and len(pack["childEPCs"]) == 2
    assert "childEPCs" not in unpack or unpack["childEPCs"] == []  # DELETE of everything
    assert unpack["parentID"] == pack["parentID"]
    assert ship["sealmark:market"] == "NL"
    # The lone code, as EPC URNs: its own events only (it was never packed or shipped).
    lone = _ref(w, codes[2])
    document, _ = _export(w, code=lone, identifiers=A.IDENTIFIER_FORMAT_EPC_URN)
    events = _check_document(document)
    assert [e["bizStep"] for e in events] == ["commissioning"]
    assert events[0]["epcList"][0].startswith("urn:epc:id:sgtin:")
    # A packed code gets its parent's shipment too, inherited while it was inside.
    document, _ = _export(w, code=_ref(w, codes[0]))
    assert [e.get("bizStep") for e in _check_document(document)] == [
        "commissioning",
        "packing",
        "shipping",
        "unpacking",
    ]
    # Another brand's auditor exports nothing of ours; an unknown code is NOT_FOUND.
    theirs, _ = _export(w, "other", lot=lot)
    assert _check_document(theirs) == []
    with pytest.raises(grpc.RpcError) as caught:
        _export(w, code=common_pb2.CodeRef(sscc="095201239999999993"))  # valid, not ours
    assert caught.value.code() == Code.NOT_FOUND


def test_epcis_export_of_everything_includes_recalls_and_validates(world: dict[str, Any]) -> None:
    w = world
    _issue(w, 2, lot="LOT-ALL")
    w["audit"].Recall(
        A.RecallRequest(
            request_id="ra-" + os.urandom(4).hex(),
            lot=A.LotRef(gtin=w["brand"].gtin, lot="LOT-ALL"),
            reason="mislabelled",
        ),
        metadata=_as(w, "admin"),
    )
    document, count = _export(w)
    events = _check_document(document)
    assert count == len(events) >= 2
    dispositions = {e.get("disposition") for e in events}
    assert "recalled" in dispositions and "active" in dispositions
    ids = [e["eventID"] for e in events]
    assert all(i.startswith("ni:///sha-256;") and i.endswith("?ver=CBV2.0") for i in ids)


def test_cli_traces_recalls_reports_and_exports(world: dict[str, Any], tmp_path: Path) -> None:
    w = world
    codes = _issue(w, 2, lot="LOT-CLI")
    gtin = w["brand"].gtin
    trace = _cli(w, "trace", f"{gtin}/{codes[0].serial}", "--json")
    assert trace.returncode == 0, trace.stderr
    steps = json.loads(trace.stdout)
    assert [s["event"]["type"] for s in steps] == ["EVENT_TYPE_ISSUED", "EVENT_TYPE_COMMISSIONED"]
    denied = _cli(w, "recall", "--lot", f"{gtin}/LOT-CLI", "--reason", "r")
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    recalled = _cli(
        w,
        "recall",
        "--lot",
        f"{gtin}/LOT-CLI",
        "--reason",
        "label misprint",
        "--json",
        role="admin",
    )
    assert recalled.returncode == 0, recalled.stderr
    assert json.loads(recalled.stdout)["units_affected"] == "2"  # uint64 in proto JSON
    bad = _cli(w, "recall", "--lot", "no-slash", "--reason", "r", role="admin")
    assert bad.returncode == 2 and "--lot" in bad.stderr
    chart = tmp_path / "hot.svg"
    report = _cli(w, "report", "hotspots", "--format", "svg", "--out", str(chart))
    assert report.returncode == 0, report.stderr
    assert b"<svg" in chart.read_bytes()
    out = tmp_path / "lot.jsonld"
    export = _cli(w, "export-epcis", "--lot", f"{gtin}/LOT-CLI", "--urn", "--out", str(out))
    assert export.returncode == 0, export.stderr
    events = _check_document(json.loads(out.read_bytes()))
    assert [e.get("disposition") for e in events] == ["active", "recalled"]
    alerts = _cli(w, "alerts", "--status", "open", "--json")
    assert alerts.returncode == 0, alerts.stderr
    assert isinstance(json.loads(alerts.stdout), list)
