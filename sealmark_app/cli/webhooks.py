"""``sealmark audit webhooks …``: a brand's webhook endpoints and deliveries (docs/webhooks.md).

    audit webhooks add URL --event E [--event E…] [--description D] [--secret-file F]
    audit webhooks list
    audit webhooks rotate ENDPOINT [--keep-previous SECONDS] [--secret-file F]
    audit webhooks pause ENDPOINT      audit webhooks resume ENDPOINT
    audit webhooks deliveries [--endpoint ENDPOINT] [--event-id ID] [--state S | --dead]
    audit webhooks retry ENDPOINT EVENT_ID

``add`` and ``rotate`` print the secret once: store it where the receiver reads it. A secret of
your own is read from a file (``--secret-file``), never from the command line, where other
users of the machine could see it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from sealmark.errors import InvalidArgument
from sealmark.v1 import audit_pb2, audit_pb2_grpc, common_pb2
from sealmark.webhooks.events import EVENT_TYPES
from sealmark_app.cli.output import emit

STATES = ("pending", "delivered", "dead")


def add_parser(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[argparse.ArgumentParser]:
    """The ``webhooks`` commands under ``audit``; the parsers that take the common options."""
    hooks = cmds.add_parser("webhooks", help="webhook endpoints, deliveries and dead letters")
    sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    add = sub.add_parser("add", help="register an endpoint (admin); prints its secret once")
    add.add_argument("url")
    add.add_argument("--event", action="append", required=True, choices=EVENT_TYPES)
    add.add_argument("--description", default="")
    add.add_argument("--secret-file", type=Path, help="use this secret (default: drawn)")
    listed = sub.add_parser("list", help="the endpoints (never their secrets)")
    rotate = sub.add_parser("rotate", help="a new secret (admin); prints it once")
    rotate.add_argument("endpoint")
    rotate.add_argument(
        "--keep-previous", type=int, default=0, metavar="SECONDS", help="old secret still signs"
    )
    rotate.add_argument("--secret-file", type=Path)
    pause = sub.add_parser("pause", help="deliveries wait until resumed (admin)")
    pause.add_argument("endpoint")
    resume = sub.add_parser("resume", help="send what waited (admin)")
    resume.add_argument("endpoint")
    deliveries = sub.add_parser("deliveries", help="deliveries, newest first")
    deliveries.add_argument("--endpoint", default="")
    deliveries.add_argument("--event-id", default="")
    state = deliveries.add_mutually_exclusive_group()
    state.add_argument("--state", choices=STATES)
    state.add_argument("--dead", action="store_true", help="the dead letters only")
    deliveries.add_argument("--limit", type=int, default=100)
    retry = sub.add_parser("retry", help="send a dead letter again (admin)")
    retry.add_argument("endpoint")
    retry.add_argument("event_id")
    return [add, listed, rotate, pause, resume, deliveries, retry]


def call(args: argparse.Namespace, stub: audit_pb2_grpc.AuditStub, md: list[Any]) -> int:
    command = args.webhooks_command
    answer: Any
    if command == "add":
        answer = stub.CreateWebhookEndpoint(
            audit_pb2.CreateWebhookEndpointRequest(
                url=args.url,
                events=args.event,
                description=args.description,
                secret=_secret(args.secret_file),
            ),
            metadata=md,
        )
        emit(_created(answer), args.json)
    elif command == "list":
        answer = stub.ListWebhookEndpoints(audit_pb2.ListWebhookEndpointsRequest(), metadata=md)
        emit([_plain(e) for e in answer.endpoints], args.json)
    elif command == "rotate":
        answer = stub.RotateWebhookSecret(
            audit_pb2.RotateWebhookSecretRequest(
                endpoint_id=args.endpoint,
                secret=_secret(args.secret_file),
                keep_previous_s=max(args.keep_previous, 0),
            ),
            metadata=md,
        )
        emit(_created(answer), args.json)
    elif command in ("pause", "resume"):
        answer = stub.SetWebhookEndpointActive(
            audit_pb2.SetWebhookEndpointActiveRequest(
                endpoint_id=args.endpoint, active=command == "resume"
            ),
            metadata=md,
        )
        emit(_plain(answer), args.json)
    elif command == "deliveries":
        state = "dead" if args.dead else args.state
        answer = stub.ListWebhookDeliveries(
            audit_pb2.ListWebhookDeliveriesRequest(
                state=audit_pb2.WebhookDeliveryState.Value(
                    f"WEBHOOK_DELIVERY_STATE_{(state or 'unspecified').upper()}"
                ),
                endpoint_id=args.endpoint,
                event_id=args.event_id,
                page=common_pb2.PageRequest(page_size=max(args.limit, 0)),
            ),
            metadata=md,
        )
        emit([_plain(d) for d in answer.deliveries], args.json)
    else:
        answer = stub.RetryWebhookDelivery(
            audit_pb2.RetryWebhookDeliveryRequest(
                endpoint_id=args.endpoint, event_id=args.event_id
            ),
            metadata=md,
        )
        emit(_plain(answer), args.json)
    return 0


def _secret(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(
            "--secret-file", f"cannot read {path}: {type(exc).__name__}"
        ) from None


def _created(answer: audit_pb2.WebhookEndpointSecret) -> dict[str, Any]:
    return {**_plain(answer.endpoint), "secret": answer.secret}


def _plain(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)
