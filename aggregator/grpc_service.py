"""The Aggregator's gRPC face: messages in, use cases, messages out."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from aggregator.domain import Level
from aggregator.usecases import Aggregator, BatchInterrupted, Outcome, Where
from aggregator.wire import children_page
from sealmark.errors import Aborted, InvalidArgument, SealmarkError, Unavailable
from sealmark.server.app import ServiceBinding, add_servicer
from sealmark.server.edge import Refused, refusals_in_band
from sealmark.server.errors import status_for
from sealmark.server.interceptor import current_principal
from sealmark.server.policy import READ, policy
from sealmark.server.wire import code_ref, stamp, time_of, unit_of, units_of
from sealmark.tenancy.model import Principal, Role
from sealmark.v1 import aggregator_pb2, aggregator_pb2_grpc, common_pb2

POLICY = policy(
    "Aggregator",
    {
        frozenset({Role.LINE}): ["Pack", "Unpack", "Replace", "Sample", "Rework", "PackStream"],
        frozenset({Role.LOGISTICS}): ["Ship", "Receive", "Decommission", "UndoDecommission"],
        READ: ["ListChildren", "GetCounts", "GetAncestors", "GetContainmentHistory"],
    },
)
GROUP_COMMIT_MAX = 32  # events per PackStream transaction at most
_END = object()
_HISTORY_TYPES = {
    "packed": common_pb2.EVENT_TYPE_PACKED,
    "unpacked": common_pb2.EVENT_TYPE_UNPACKED,
    "replaced": common_pb2.EVENT_TYPE_REPLACED,
    "sampled": common_pb2.EVENT_TYPE_SAMPLED,
    "reworked": common_pb2.EVENT_TYPE_REWORKED,
}


def where_of(request: Any, time_field: str = "event_time") -> Where:
    place = request.place
    return Where(
        event_time=time_of(request, time_field),
        time_zone_offset=request.event_time_zone_offset,
        location=place.location,
        market=place.market,
        read_point=place.read_point,
    )


def _level(value: int) -> Level | None:
    return None if value == common_pb2.PACK_LEVEL_UNSPECIFIED else Level(value)


def _aggregation_result(outcome: Outcome) -> aggregator_pb2.AggregationResult:
    return aggregator_pb2.AggregationResult(
        event_id=outcome.event_id,
        duplicate=outcome.duplicate,
        children_affected=outcome.affected,
        recorded_at=stamp(outcome.recorded_at),
        epcis_event_id=outcome.epcis_event_id,
    )


def _logistics_result(outcome: Outcome) -> aggregator_pb2.LogisticsResult:
    return aggregator_pb2.LogisticsResult(
        event_id=outcome.event_id,
        duplicate=outcome.duplicate,
        codes_affected=outcome.affected,
        epcis_event_id=outcome.epcis_event_id,
    )


class AggregatorService(aggregator_pb2_grpc.AggregatorServicer):
    def __init__(self, aggregator: Aggregator) -> None:
        self._aggregator = aggregator

    # -- packing ------------------------------------------------------------------------
    def Pack(
        self, request: aggregator_pb2.PackRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.AggregationResult:
        return _aggregation_result(self._pack(current_principal(), request))

    def Unpack(
        self, request: aggregator_pb2.UnpackRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.AggregationResult:
        return _aggregation_result(self._unpack(current_principal(), request))

    @refusals_in_band  # a message that fails the edge's checks gets its own failed ack
    def PackStream(
        self, requests: Iterator[aggregator_pb2.PackStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[aggregator_pb2.PackAck]:
        """Group commit: the events that have arrived while the previous group was being
        written are applied in one transaction (each under its own savepoint, so each stays
        atomic and a failed one changes nothing), and acknowledged, in order, once that
        transaction has committed."""
        principal = current_principal()
        arrived: queue.Queue[object] = queue.Queue(maxsize=4 * GROUP_COMMIT_MAX)

        def read() -> None:
            try:
                for message in requests:
                    arrived.put(message)
            except Exception as exc:  # the client went away: end the handler with it
                arrived.put(exc)
            arrived.put(_END)

        threading.Thread(target=read, name="packstream-reader", daemon=True).start()
        ended = False
        while not ended:
            group: list[aggregator_pb2.PackStreamRequest] = []
            item = arrived.get()
            while True:
                if item is _END:
                    ended = True
                    break
                if isinstance(item, Exception):
                    raise item
                group.append(item)  # type: ignore[arg-type]
                if len(group) >= GROUP_COMMIT_MAX:
                    break
                try:
                    item = arrived.get_nowait()
                except queue.Empty:
                    break
            yield from self._group(principal, group)

    def _group(
        self, principal: Principal, group: list[aggregator_pb2.PackStreamRequest]
    ) -> list[aggregator_pb2.PackAck]:
        acks: list[aggregator_pb2.PackAck] = []
        try:
            with self._aggregator.batch():
                for message in group:
                    try:
                        acks.append(self._ack(principal, message))
                    except BatchInterrupted:
                        break  # commit the ones before; the rest run one by one below
        except (Aborted, Unavailable):
            acks = []  # the commit failed or its outcome is unknown: replay them all
        for message in group[len(acks) :]:  # idempotent by event id, so safe to replay
            acks.append(self._ack(principal, message))
        return acks

    def _ack(
        self, principal: Principal, arrived: aggregator_pb2.PackStreamRequest | Refused
    ) -> aggregator_pb2.PackAck:
        refused = arrived if isinstance(arrived, Refused) else None
        message: Any = arrived if refused is None else refused.request
        if message is None:  # it did not even decode
            message = aggregator_pb2.PackStreamRequest()
        which = message.WhichOneof("event")
        event = getattr(message, which) if which else None
        event_id = event.event_id if event is not None else ""
        if refused is not None and refused.error.field.endswith(".event_id"):
            event_id = ""  # not echoed: it is what was refused
        try:
            if refused is not None:
                raise refused.error
            if which is None:
                raise InvalidArgument("PackStreamRequest.event", "required")
            outcome: Outcome = getattr(self, f"_{which}")(principal, event)
        except SealmarkError as exc:
            status, text = status_for(exc, "/sealmark.v1.Aggregator/PackStream")
            return aggregator_pb2.PackAck(
                event_id=event_id, ok=False, error_code=status.name, error_message=text
            )
        return aggregator_pb2.PackAck(
            event_id=outcome.event_id,
            ok=True,
            duplicate=outcome.duplicate,
            children_affected=outcome.affected,
            epcis_event_id=outcome.epcis_event_id,
        )

    def _pack(self, principal: Principal, request: aggregator_pb2.PackRequest) -> Outcome:
        return self._aggregator.pack(
            principal,
            request.event_id,
            unit_of(request.parent, "PackRequest.parent"),
            units_of(request.children, "PackRequest.children"),
            where_of(request),
            _level(request.parent_level),
            request.line_id,
        )

    def Replace(
        self, request: aggregator_pb2.ReplaceRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.AggregationResult:
        return _aggregation_result(self._replace(current_principal(), request))

    def Sample(
        self, request: aggregator_pb2.SampleRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.AggregationResult:
        return _aggregation_result(self._sample(current_principal(), request))

    def Rework(
        self, request: aggregator_pb2.ReworkRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.AggregationResult:
        return _aggregation_result(self._rework(current_principal(), request))

    def _replace(self, principal: Principal, request: aggregator_pb2.ReplaceRequest) -> Outcome:
        return self._aggregator.replace(
            principal,
            request.event_id,
            unit_of(request.old_code, "ReplaceRequest.old_code"),
            unit_of(request.new_code, "ReplaceRequest.new_code"),
            request.reason,
            where_of(request),
        )

    def _sample(self, principal: Principal, request: aggregator_pb2.SampleRequest) -> Outcome:
        return self._aggregator.sample(
            principal,
            request.event_id,
            unit_of(request.code, "SampleRequest.code"),
            request.reason,
            where_of(request),
        )

    def _rework(self, principal: Principal, request: aggregator_pb2.ReworkRequest) -> Outcome:
        return self._aggregator.rework(
            principal,
            request.event_id,
            unit_of(request.parent, "ReworkRequest.parent"),
            units_of(request.children, "ReworkRequest.children"),
            request.reason,
            where_of(request),
        )

    def _unpack(self, principal: Principal, request: aggregator_pb2.UnpackRequest) -> Outcome:
        return self._aggregator.unpack(
            principal,
            request.event_id,
            unit_of(request.parent, "UnpackRequest.parent"),
            units_of(request.children, "UnpackRequest.children"),
            where_of(request),
            request.line_id,
        )

    # -- logistics ----------------------------------------------------------------------
    def Ship(
        self, request: aggregator_pb2.ShipRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.LogisticsResult:
        return _logistics_result(
            self._aggregator.ship(
                current_principal(),
                request.event_id,
                units_of(request.codes, "ShipRequest.codes"),
                request.to_party,
                request.destination_market,
                where_of(request),
                [(t.type, t.id) for t in request.biz_transactions],
            )
        )

    def Receive(
        self, request: aggregator_pb2.ReceiveRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.LogisticsResult:
        return _logistics_result(
            self._aggregator.receive(
                current_principal(),
                request.event_id,
                units_of(request.codes, "ReceiveRequest.codes"),
                request.from_party,
                where_of(request),
                [(t.type, t.id) for t in request.biz_transactions],
            )
        )

    def Decommission(
        self, request: aggregator_pb2.DecommissionRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.LogisticsResult:
        reason = ""
        if request.reason != aggregator_pb2.DECOMMISSION_REASON_UNSPECIFIED:
            name = aggregator_pb2.DecommissionReason.Name(request.reason)
            reason = name.removeprefix("DECOMMISSION_REASON_").lower()
        return _logistics_result(
            self._aggregator.decommission(
                current_principal(),
                request.event_id,
                units_of(request.codes, "DecommissionRequest.codes"),
                reason,
                where_of(request),
                request.note,
            )
        )

    def UndoDecommission(
        self, request: aggregator_pb2.UndoDecommissionRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.LogisticsResult:
        return _logistics_result(
            self._aggregator.undo_decommission(
                current_principal(),
                request.event_id,
                units_of(request.codes, "UndoDecommissionRequest.codes"),
                where_of(request),
                request.note,
            )
        )

    # -- queries ------------------------------------------------------------------------
    def ListChildren(  # type: ignore[override]  # sent as encoded, see binding()
        self, request: aggregator_pb2.ListChildrenRequest, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """Encoded ``ListChildrenResponse`` messages (registered with ``encoded``)."""
        pages = self._aggregator.children(
            current_principal(),
            unit_of(request.parent, "ListChildrenRequest.parent"),
            request.all_levels,
            request.page.page_size,
            request.page.page_token,
        )
        for groups, token in pages:
            yield children_page(groups, token)

    def GetCounts(
        self, request: aggregator_pb2.GetCountsRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.GetCountsResponse:
        per_level, direct = self._aggregator.counts(
            current_principal(), unit_of(request.parent, "GetCountsRequest.parent")
        )
        return aggregator_pb2.GetCountsResponse(
            counts=[
                aggregator_pb2.LevelCount(level=int(level), count=n)  # type: ignore[arg-type]
                for level, n in sorted(per_level.items())
            ],
            total=sum(per_level.values()),
            direct=direct,
        )

    def GetAncestors(
        self, request: aggregator_pb2.GetAncestorsRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.GetAncestorsResponse:
        chain = self._aggregator.ancestors(
            current_principal(), unit_of(request.code, "GetAncestorsRequest.code")
        )
        response = aggregator_pb2.GetAncestorsResponse(ancestors=[code_ref(u) for u in chain])
        if chain:
            response.top.CopyFrom(code_ref(chain[-1]))
        return response

    def GetContainmentHistory(
        self, request: aggregator_pb2.GetContainmentHistoryRequest, context: grpc.ServicerContext
    ) -> aggregator_pb2.GetContainmentHistoryResponse:
        rows, token = self._aggregator.history(
            current_principal(),
            unit_of(request.code, "GetContainmentHistoryRequest.code"),
            request.page.page_size,
            request.page.page_token,
        )
        events = []
        for row in rows:
            event = common_pb2.CodeEvent(
                event_id=row.event_id,
                event_time=stamp(row.event_time),
                type=_HISTORY_TYPES.get(row.action, common_pb2.EVENT_TYPE_UNSPECIFIED),
                attributes={k: str(v) for k, v in row.attributes.items()},
            )
            if row.parent is not None:
                event.parent_code.CopyFrom(code_ref(row.parent))
            events.append(event)
        return aggregator_pb2.GetContainmentHistoryResponse(events=events, next_page_token=token)


def binding(aggregator: Aggregator) -> ServiceBinding:
    """The Aggregator service on ``aggregator`` (built by ``sealmark_app.root.aggregator``)."""

    def register(server: grpc.Server) -> None:
        add_servicer(
            server,
            aggregator_pb2.DESCRIPTOR.services_by_name["Aggregator"],
            AggregatorService(aggregator),
            encoded={"ListChildren"},  # pages are encoded by aggregator.wire
        )

    return ServiceBinding("aggregator", "sealmark.v1.Aggregator", register, POLICY)
