"""The webhook RPCs of the Audit service (a part of :class:`audit.grpc_service.AuditService`):
messages in, one use case of :class:`audit.webhooks.Webhooks`, messages out."""

from __future__ import annotations

import grpc

from audit.webhook_ports import Delivery, DeliveryState, Endpoint
from audit.webhooks import Created, Webhooks
from sealmark.server.interceptor import current_principal
from sealmark.server.wire import stamp
from sealmark.v1 import audit_pb2

_STATES = {
    DeliveryState.PENDING: audit_pb2.WEBHOOK_DELIVERY_STATE_PENDING,
    DeliveryState.DELIVERED: audit_pb2.WEBHOOK_DELIVERY_STATE_DELIVERED,
    DeliveryState.DEAD: audit_pb2.WEBHOOK_DELIVERY_STATE_DEAD,
}
_STATE_OF = {v: k for k, v in _STATES.items()}

ADMIN_RPCS = [
    "CreateWebhookEndpoint",
    "RotateWebhookSecret",
    "SetWebhookEndpointActive",
    "RetryWebhookDelivery",
]
AUDITOR_RPCS = ["ListWebhookEndpoints", "ListWebhookDeliveries"]


def endpoint_message(endpoint: Endpoint) -> audit_pb2.WebhookEndpoint:
    message = audit_pb2.WebhookEndpoint(
        endpoint_id=endpoint.endpoint_id,
        url=endpoint.url,
        events=list(endpoint.events),
        description=endpoint.description,
        active=endpoint.active,
        created_at=stamp(endpoint.created_at),
        secret_set_at=stamp(endpoint.secret_set_at),
    )
    if endpoint.previous_until is not None:
        message.previous_secret_until.CopyFrom(stamp(endpoint.previous_until))
    return message


def secret_message(created: Created) -> audit_pb2.WebhookEndpointSecret:
    return audit_pb2.WebhookEndpointSecret(
        endpoint=endpoint_message(created.endpoint), secret=created.secret
    )


def delivery_message(delivery: Delivery) -> audit_pb2.WebhookDelivery:
    message = audit_pb2.WebhookDelivery(
        endpoint_id=delivery.endpoint_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        state=_STATES[delivery.state],
        attempts=delivery.attempts,
        next_at=stamp(delivery.next_at),
        created_at=stamp(delivery.created_at),
        last_status=delivery.last_status or 0,
        last_error=delivery.last_error,
    )
    if delivery.last_attempt_at is not None:
        message.last_attempt_at.CopyFrom(stamp(delivery.last_attempt_at))
    if delivery.delivered_at is not None:
        message.delivered_at.CopyFrom(stamp(delivery.delivered_at))
    return message


class WebhookRpcs:
    """The webhook methods; the servicer sets ``_webhooks``."""

    _webhooks: Webhooks

    def CreateWebhookEndpoint(
        self, request: audit_pb2.CreateWebhookEndpointRequest, context: grpc.ServicerContext
    ) -> audit_pb2.WebhookEndpointSecret:
        return secret_message(
            self._webhooks.create(
                current_principal(),
                request.url,
                list(request.events),
                request.description,
                request.secret,
            )
        )

    def ListWebhookEndpoints(
        self, request: audit_pb2.ListWebhookEndpointsRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ListWebhookEndpointsResponse:
        return audit_pb2.ListWebhookEndpointsResponse(
            endpoints=[endpoint_message(e) for e in self._webhooks.endpoints(current_principal())]
        )

    def RotateWebhookSecret(
        self, request: audit_pb2.RotateWebhookSecretRequest, context: grpc.ServicerContext
    ) -> audit_pb2.WebhookEndpointSecret:
        return secret_message(
            self._webhooks.rotate(
                current_principal(), request.endpoint_id, request.secret, request.keep_previous_s
            )
        )

    def SetWebhookEndpointActive(
        self, request: audit_pb2.SetWebhookEndpointActiveRequest, context: grpc.ServicerContext
    ) -> audit_pb2.WebhookEndpoint:
        return endpoint_message(
            self._webhooks.set_active(current_principal(), request.endpoint_id, request.active)
        )

    def ListWebhookDeliveries(
        self, request: audit_pb2.ListWebhookDeliveriesRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ListWebhookDeliveriesResponse:
        rows, token = self._webhooks.deliveries(
            current_principal(),
            state=_STATE_OF.get(request.state),
            endpoint_id=request.endpoint_id,
            event_id=request.event_id,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return audit_pb2.ListWebhookDeliveriesResponse(
            deliveries=[delivery_message(d) for d in rows], next_page_token=token
        )

    def RetryWebhookDelivery(
        self, request: audit_pb2.RetryWebhookDeliveryRequest, context: grpc.ServicerContext
    ) -> audit_pb2.WebhookDelivery:
        return delivery_message(
            self._webhooks.redrive(current_principal(), request.endpoint_id, request.event_id)
        )
