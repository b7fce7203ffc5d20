"""``sealmark media``: the pictures of the consumer page, through the Issuer (gRPC).

    sealmark media set --kind logo --file logo.png [--gtin G] [--alt TEXT]   (admin token)
    sealmark media remove --kind image --gtin G                                (admin token)
    sealmark media list [--gtin G]                                             (any token)

Without ``--gtin`` a logo is the brand's own, shown for every product that has none."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import grpc

from sealmark.errors import InvalidArgument
from sealmark.settings import Settings
from sealmark_app.cli.output import emit
from sealmark_app.cli.transport import add_tls_options, open_channel

COMMANDS = ("media",)
_READ_LIMIT = 1024 * 1024  # the Issuer refuses more than 512 KiB; never read a huge file whole


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    media = sub.add_parser("media", help="the brand's logo and product images on the page")
    msub = media.add_subparsers(dest="action", required=True)
    put = msub.add_parser("set", help="register (or replace) a logo or a product image")
    put.add_argument("--kind", choices=["logo", "image"], required=True)
    put.add_argument("--file", type=Path, required=True, help="a PNG, JPEG or WebP file")
    put.add_argument("--gtin", default="", help="the product (none: the brand's own logo)")
    put.add_argument("--alt", default="", help="what a screen reader says for the picture")
    remove = msub.add_parser("remove", help="take a logo or product image off the page")
    remove.add_argument("--kind", choices=["logo", "image"], required=True)
    remove.add_argument("--gtin", default="")
    show = msub.add_parser("list", help="the pictures registered for a product or the brand")
    show.add_argument("--gtin", default="")
    for parser in (put, remove, show):
        parser.add_argument("--target", default=None, help="host:port of the Issuer")
        parser.add_argument("--token", default=None, help="admin token (or SEALMARK_TOKEN)")
        add_tls_options(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sealmark.v1 import issuer_pb2, issuer_pb2_grpc

    token = args.token or (settings.token.get_secret_value() if settings.token else None)
    if not token and args.cert is None:
        raise InvalidArgument("--token", "a token is required (or set SEALMARK_TOKEN, or --cert)")
    metadata = [("authorization", f"Bearer {token}")] if token else []
    target = args.target or f"{settings.grpc_host}:{settings.grpc_port}"
    try:
        with open_channel(target, args) as channel:
            stub = issuer_pb2_grpc.IssuerStub(channel)
            if args.action == "list":
                found = stub.GetProductMedia(
                    issuer_pb2.GetProductMediaRequest(gtin=args.gtin), metadata=metadata
                )
                emit([_shown(m) for m in found.media], args.json)
                return 0
            if args.action == "remove":
                request = issuer_pb2.SetProductMediaRequest(
                    gtin=args.gtin, kind=args.kind, remove=True
                )
            else:
                request = issuer_pb2.SetProductMediaRequest(
                    gtin=args.gtin, kind=args.kind, content=_read(args.file), alt=args.alt
                )
            answer = stub.SetProductMedia(request, metadata=metadata)
    except grpc.RpcError as exc:
        print(f"sealmark: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
    if args.action == "remove":
        emit({"gtin": answer.gtin, "kind": answer.kind, "removed": answer.removed}, args.json)
    else:
        emit(_shown(answer), args.json)
    return 0


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_READ_LIMIT + 1)
    except OSError as exc:
        raise InvalidArgument("--file", f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > _READ_LIMIT:
        raise InvalidArgument("--file", f"over {_READ_LIMIT} bytes: the Issuer takes 512 KiB")
    return data


def _shown(media: Any) -> dict[str, Any]:
    return {
        "gtin": media.gtin,
        "kind": media.kind,
        "path": media.path,
        "sha256": media.sha256,
        "media_type": media.media_type,
        "width": media.width,
        "height": media.height,
        "size": media.size,
        "alt": media.alt,
    }
