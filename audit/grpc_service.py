"""The Audit service's gRPC face: auditors read, admins also recall and resolve. Own tenant
only: every use case is scoped by the caller's principal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

from audit.domain import (
    Alert,
    AlertKind,
    AlertStatus,
    RecallReport,
    RecallScope,
    Resolution,
    Severity,
    TraceEvent,
    TraceScan,
)
from audit.export import Counter, Exporter, ExportFilter
from audit.grpc_webhooks import ADMIN_RPCS, AUDITOR_RPCS, WebhookRpcs
from audit.reports import Reporter, ReportQuery
from audit.transparency import TransparencyLog
from audit.usecases import Auditor
from audit.webhooks import Webhooks
from sealmark.errors import InvalidArgument
from sealmark.gs1.checkdigit import normalize_gtin
from sealmark.server.app import ServiceBinding, add_servicer
from sealmark.server.interceptor import current_principal
from sealmark.server.policy import policy
from sealmark.server.wire import code_ref, stamp, time_of, unit_of, units_of
from sealmark.tenancy.model import Role
from sealmark.units import UnitRef
from sealmark.v1 import audit_pb2, audit_pb2_grpc, common_pb2, verifier_pb2

POLICY = policy(
    "Audit",
    {
        frozenset({Role.AUDITOR}): [
            "WatchAlerts",
            "ListAlerts",
            "AcknowledgeAlert",
            "Trace",
            "GetReport",
            "ExportEpcis",
            "GetCheckpoint",
            "GetInclusionProof",
            "GetConsistencyProof",
            "GetLogEntries",
            *AUDITOR_RPCS,
        ],
        frozenset({Role.ADMIN}): ["Recall", "ResolveAlert", *ADMIN_RPCS],
    },
)
CHUNK = 64 * 1024
_KINDS = {k: audit_pb2.AlertKind.Value(f"ALERT_KIND_{k.name}") for k in AlertKind}
_KIND_OF = {v: k for k, v in _KINDS.items()}
_STATUS = {s: audit_pb2.AlertStatus.Value(f"ALERT_STATUS_{s.name}") for s in AlertStatus}
_STATUS_OF = {v: k for k, v in _STATUS.items()}
_RESOLUTION = {r: audit_pb2.AlertResolution.Value(f"ALERT_RESOLUTION_{r.name}") for r in Resolution}
_RESOLUTION_OF = {v: k for k, v in _RESOLUTION.items()}
_LOG_KINDS = {
    "batch_commitment": audit_pb2.LOG_ENTRY_KIND_BATCH_COMMITMENT,
    "status_change": audit_pb2.LOG_ENTRY_KIND_STATUS_CHANGE,
    "recall": audit_pb2.LOG_ENTRY_KIND_RECALL,
    "key_set_change": audit_pb2.LOG_ENTRY_KIND_KEY_SET_CHANGE,
}


def alert_message(alert: Alert) -> audit_pb2.Alert:
    message = audit_pb2.Alert(
        id=alert.id,
        kind=_KINDS[alert.kind],
        status=_STATUS[alert.status],
        region=alert.region,
        raised_at=stamp(alert.raised_at),
        summary=alert.summary,
        details=alert.details,
        note=alert.note,
        severity=alert.severity.value,  # type: ignore[arg-type]
        rule=alert.rule,
        actor=alert.actor,
    )
    if alert.code_key:
        message.code.CopyFrom(code_ref(UnitRef.of_key(alert.code_key)))
    if alert.acknowledged_at:
        message.acknowledged_at.CopyFrom(stamp(alert.acknowledged_at))
    if alert.resolved_at:
        message.resolved_at.CopyFrom(stamp(alert.resolved_at))
    if alert.resolution:
        message.resolution = _RESOLUTION[alert.resolution]
    return message


def trace_message(item: TraceEvent | TraceScan | Alert) -> audit_pb2.TraceEntry:
    if isinstance(item, Alert):
        return audit_pb2.TraceEntry(alert=alert_message(item), time=stamp(item.raised_at))
    if isinstance(item, TraceScan):
        return audit_pb2.TraceEntry(
            scan=audit_pb2.ScanRecord(
                verification_id=item.verification_id,
                verified_at=stamp(item.time),
                verdict=verifier_pb2.Verdict.Value(f"VERDICT_{item.verdict.upper()}"),
                region=item.region,
                reason_codes=item.reasons,
                risk_score=item.risk_score,
                pin_entered=any(r.startswith("pin_") for r in item.reasons),
                pin_correct="pin_confirmed" in item.reasons,
            ),
            time=stamp(item.time),
        )
    event = common_pb2.CodeEvent(
        event_id=item.event_id,
        event_time=stamp(item.time),
        attributes=item.attributes,
        type=common_pb2.EventType.Value(f"EVENT_TYPE_{item.type}"),
        epcis_event_id=item.epcis_event_id,
    )
    if item.state:
        event.state = common_pb2.CodeState.Value(f"CODE_STATE_{item.state.upper()}")
    if item.parent:
        event.parent_code.CopyFrom(code_ref(UnitRef.of_key(item.parent)))
    if item.recorded_at:
        event.recorded_at.CopyFrom(stamp(item.recorded_at))
    entry = audit_pb2.TraceEntry(
        event=event,
        key_id=item.key_id,
        work_order=item.work_order,
        line_id=item.line_id,
        time=stamp(item.time),
    )
    if item.inherited_from:
        entry.inherited_from.CopyFrom(code_ref(UnitRef.of_key(item.inherited_from)))
    return entry


def report_message(report: RecallReport) -> audit_pb2.RecallReport:
    return audit_pb2.RecallReport(
        recall_id=report.recall_id,
        units_affected=report.units_affected,
        by_shipment_market=[
            audit_pb2.MarketCount(market=m, units=n) for m, n in report.by_shipment_market
        ],
        by_last_scan_region=[
            audit_pb2.MarketCount(market=m, units=n) for m, n in report.by_last_scan_region
        ],
        scans_since_recall=report.scans_since_recall,
        effective_at=stamp(report.effective_at),
        units_not_shipped=report.units_not_shipped,
        units_dispensed=report.units_dispensed,
        duplicate=report.duplicate,
    )


def recall_scope(request: audit_pb2.RecallRequest) -> RecallScope:
    which = request.WhichOneof("scope")
    if which == "lot":
        gtin = normalize_gtin(request.lot.gtin, "RecallRequest.lot.gtin")
        lot = request.lot.lot
        if not lot or len(lot) > 20:
            raise InvalidArgument("RecallRequest.lot.lot", "required, at most 20 characters")
        return RecallScope("lot", gtin=gtin, lot=lot)
    if which == "gtin":
        return RecallScope("gtin", gtin=normalize_gtin(request.gtin, "RecallRequest.gtin"))
    if which == "codes":
        units = units_of(request.codes.codes, "RecallRequest.codes.codes")
        return RecallScope("codes", keys=tuple(dict.fromkeys(u.key for u in units)))
    if which == "parent":
        return RecallScope("parent", keys=(unit_of(request.parent, "RecallRequest.parent").key,))
    raise InvalidArgument("RecallRequest.scope", "required: one of lot, gtin, codes, parent")


def chunks(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Re-cut a byte stream into messages of about CHUNK bytes."""
    buffer = bytearray()
    for block in blocks:
        buffer += block
        while len(buffer) >= CHUNK:
            yield bytes(buffer[:CHUNK])
            del buffer[:CHUNK]
    if buffer:
        yield bytes(buffer)


class AuditService(WebhookRpcs, audit_pb2_grpc.AuditServicer):
    def __init__(
        self,
        auditor: Auditor,
        log: TransparencyLog,
        reporter: Reporter,
        exporter: Exporter,
        webhooks: Webhooks,
    ) -> None:
        self._webhooks = webhooks
        self._auditor = auditor
        self._log = log
        self._reporter = reporter
        self._exporter = exporter

    # -- alerts -------------------------------------------------------------------------
    def WatchAlerts(
        self, request: audit_pb2.WatchAlertsRequest, context: grpc.ServicerContext
    ) -> Iterator[audit_pb2.Alert]:
        kinds = {_KIND_OF[k] for k in request.kinds if k in _KIND_OF}
        if len(kinds) != len(request.kinds):
            raise InvalidArgument("WatchAlertsRequest.kinds", "unknown or unspecified kind")
        minimum = Severity(request.min_severity) if request.min_severity else None
        for alert in self._auditor.watch(
            current_principal(), request.after_id, kinds, minimum, context.is_active
        ):
            yield alert_message(alert)

    def ListAlerts(
        self, request: audit_pb2.ListAlertsRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ListAlertsResponse:
        alerts, token = self._auditor.list_alerts(
            current_principal(),
            status=_STATUS_OF.get(request.status),
            kind=_KIND_OF.get(request.kind),
            since=time_of(request, "from_time"),
            until=time_of(request, "to_time"),
            code=unit_of(request.code, "ListAlertsRequest.code")
            if request.HasField("code")
            else None,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return audit_pb2.ListAlertsResponse(
            alerts=[alert_message(a) for a in alerts], next_page_token=token
        )

    def AcknowledgeAlert(
        self, request: audit_pb2.AlertActionRequest, context: grpc.ServicerContext
    ) -> audit_pb2.Alert:
        return alert_message(
            self._auditor.acknowledge(current_principal(), request.alert_id, request.note)
        )

    def ResolveAlert(
        self, request: audit_pb2.AlertActionRequest, context: grpc.ServicerContext
    ) -> audit_pb2.Alert:
        resolution = _RESOLUTION_OF.get(request.resolution)
        return alert_message(
            self._auditor.resolve(current_principal(), request.alert_id, request.note, resolution)
        )

    # -- trace, recall ------------------------------------------------------------------
    def Trace(
        self, request: audit_pb2.TraceRequest, context: grpc.ServicerContext
    ) -> Iterator[audit_pb2.TraceEntry]:
        unit = unit_of(request.code, "TraceRequest.code")
        for item in self._auditor.trace(current_principal(), unit):
            yield trace_message(item)

    def Recall(
        self, request: audit_pb2.RecallRequest, context: grpc.ServicerContext
    ) -> audit_pb2.RecallReport:
        scope = recall_scope(request)
        report = self._auditor.recall(
            current_principal(), request.request_id, scope, request.reason
        )
        return report_message(report)

    # -- reports, export ----------------------------------------------------------------
    def GetReport(
        self, request: audit_pb2.ReportRequest, context: grpc.ServicerContext
    ) -> Iterator[audit_pb2.ReportChunk]:
        query = ReportQuery.of(request, time_of(request, "from_time"), time_of(request, "to_time"))
        content_type, blocks = self._reporter.render(current_principal(), query)
        first = True
        for data in chunks(blocks):
            yield audit_pb2.ReportChunk(data=data, content_type=content_type if first else "")
            first = False
        if first:
            yield audit_pb2.ReportChunk(data=b"", content_type=content_type)

    def ExportEpcis(
        self, request: audit_pb2.ExportEpcisRequest, context: grpc.ServicerContext
    ) -> Iterator[audit_pb2.ExportChunk]:
        name = "ExportEpcisRequest"
        export = ExportFilter(
            since=time_of(request, "from_time"),
            until=time_of(request, "to_time"),
            gtin=normalize_gtin(request.lot.gtin, f"{name}.lot.gtin")
            if request.HasField("lot")
            else "",
            lot=request.lot.lot if request.HasField("lot") else "",
            code=unit_of(request.code, f"{name}.code").key if request.HasField("code") else "",
            descendants=request.include_descendants,
            urn=request.identifiers == audit_pb2.IDENTIFIER_FORMAT_EPC_URN,
        )
        counter = Counter()
        # closing(): a cancelled call ends the export (cursor, transaction) at once
        with contextlib.closing(self._exporter.export(current_principal(), export, counter)) as doc:
            for data in chunks(doc):
                yield audit_pb2.ExportChunk(data=data, events_so_far=counter.events)

    # -- transparency log ---------------------------------------------------------------
    def GetCheckpoint(
        self, request: audit_pb2.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> audit_pb2.Checkpoint:
        principal = current_principal()
        principal.require(Role.AUDITOR)
        head = self._log.checkpoint(principal.tenant_id)
        return audit_pb2.Checkpoint(
            origin=head.origin,
            tree_size=head.size,
            root_hash=head.root_hash,
            signed_note=head.signed_note,
            verifier_key=self._log.verifier_key(head),
        )

    def GetInclusionProof(
        self, request: audit_pb2.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.InclusionProof:
        principal = current_principal()
        principal.require(Role.AUDITOR)
        which = request.WhichOneof("leaf")
        if which == "code":
            unit = unit_of(request.code, "GetInclusionProofRequest.code")
            index, size, hashes, entry, inner = self._log.code_proof(
                principal.tenant_id, unit.key, request.tree_size
            )
            return audit_pb2.InclusionProof(
                leaf_index=index,
                tree_size=size,
                hashes=hashes,
                entry=entry,
                code_proof=audit_pb2.CodeInclusion(
                    commitment=inner.commitment,
                    position=inner.position,
                    batch_size=inner.batch_size,
                    hashes=inner.hashes,
                ),
            )
        index, size, hashes, entry = self._log.inclusion_proof(
            principal.tenant_id,
            request.leaf_index if which == "leaf_index" else None,
            request.leaf_hash if which == "leaf_hash" else None,
            request.tree_size,
        )
        return audit_pb2.InclusionProof(
            leaf_index=index, tree_size=size, hashes=hashes, entry=entry
        )

    def GetConsistencyProof(
        self, request: audit_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ConsistencyProof:
        principal = current_principal()
        principal.require(Role.AUDITOR)
        first, second, hashes = self._log.consistency_proof(
            principal.tenant_id, request.first_size, request.second_size
        )
        return audit_pb2.ConsistencyProof(first_size=first, second_size=second, hashes=hashes)

    def GetLogEntries(
        self, request: audit_pb2.GetLogEntriesRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetLogEntriesResponse:
        principal = current_principal()
        principal.require(Role.AUDITOR)
        entries = self._log.entries(principal.tenant_id, request.start, request.count)
        return audit_pb2.GetLogEntriesResponse(
            entries=[
                audit_pb2.LogEntry(
                    index=e.index,
                    data=e.data,
                    kind=_LOG_KINDS[e.kind],
                    integrated_at=stamp(e.integrated_at),
                )
                for e in entries
            ]
        )


def binding(
    auditor: Auditor,
    log: TransparencyLog,
    reporter: Reporter,
    exporter: Exporter,
    webhooks: Webhooks,
) -> ServiceBinding:
    """The Audit service for ``sealmark serve``, over use cases built by the composition root
    (``sealmark_app.root.audit``)."""
    service = AuditService(auditor, log, reporter, exporter, webhooks)

    def register(server: grpc.Server) -> None:
        add_servicer(server, audit_pb2.DESCRIPTOR.services_by_name["Audit"], service)

    return ServiceBinding("audit", "sealmark.v1.Audit", register, POLICY)
