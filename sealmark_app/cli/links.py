"""``sealmark links set|list|delete``: the links a brand registers for a product (what the
resolver's linkset lists and where ``?linkType=gs1:…`` redirects), through the Issuer's gRPC
API with an admin token (``list``: any token of the brand).

``set`` takes the links as options (``--link TYPE URL TITLE [LANG]``, repeated) or as a JSON
file (``--file``: a list of objects with ``link_type``, ``href``, ``title`` and optionally
``lang``, ``context``, ``media_type``); ``--replace`` drops the product's other links.
The server validates every link; nothing is written when one is refused."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import grpc

from sealmark.errors import InvalidArgument
from sealmark.settings import Settings
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.cli.output import emit, endpoint, rpc_failed
from sealmark_app.cli.transport import add_tls_options, open_channel

MAX_FILE_BYTES = 1024 * 1024
_FIELDS = ("link_type", "href", "title", "lang", "context", "media_type")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    links = sub.add_parser("links", help="a product's links for the GS1 resolver (Issuer, gRPC)")
    lsub = links.add_subparsers(dest="links_command", required=True)
    put = lsub.add_parser("set", help="add or update links of a product")
    put.add_argument("gtin", metavar="GTIN")
    put.add_argument(
        "--link",
        nargs="+",
        action="append",
        default=[],
        metavar="VALUE",
        help="TYPE URL TITLE [LANG]: gs1:pip https://brand.example/p 'Product page' en",
    )
    put.add_argument("--file", type=Path, default=None, help="JSON list of links")
    put.add_argument("--replace", action="store_true", help="drop the product's other links")
    _client_options(put)
    listed = lsub.add_parser("list", help="a product's links")
    listed.add_argument("gtin", metavar="GTIN")
    _client_options(listed)
    delete = lsub.add_parser("delete", help="remove one link of a product")
    delete.add_argument("gtin", metavar="GTIN")
    delete.add_argument("link_type", metavar="TYPE", help="gs1:pip")
    delete.add_argument("href", metavar="URL")
    delete.add_argument("--lang", default="", help="the link's language, if it has one")
    delete.add_argument("--context", default="", help="the link's context, if it has one")
    _client_options(delete)


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=None, help="host:port of the Issuer")
    parser.add_argument("--token", default=None, help="API token (or SEALMARK_TOKEN)")
    add_tls_options(parser)
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )


def links_of(args: argparse.Namespace) -> list[issuer_pb2.ProductLink]:
    """The links of ``set``: from ``--link`` options, then ``--file``. Raises InvalidArgument
    naming ``--link`` or ``--file``."""
    out: list[issuer_pb2.ProductLink] = []
    for values in args.link:
        if len(values) not in (3, 4):
            raise InvalidArgument("--link", "want TYPE URL TITLE [LANG]")
        out.append(issuer_pb2.ProductLink(**dict(zip(_FIELDS, values, strict=False))))
    if args.file is not None:
        try:
            if args.file.stat().st_size > MAX_FILE_BYTES:
                raise InvalidArgument("--file", f"over {MAX_FILE_BYTES} bytes")
            data: Any = json.loads(args.file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArgument("--file", f"not a readable JSON file: {exc}") from exc
        if not isinstance(data, list):
            raise InvalidArgument("--file", "want a JSON list of link objects")
        for index, item in enumerate(data):
            if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
                raise InvalidArgument(f"--file[{index}]", "want an object of strings")
            unknown = sorted(set(item) - set(_FIELDS))
            if unknown:
                raise InvalidArgument(f"--file[{index}]", f"unknown field {unknown[0]!r}")
            out.append(issuer_pb2.ProductLink(**item))
    if not out and not args.replace:
        raise InvalidArgument("--link", "give at least one --link or --file (or --replace)")
    return out


def _shown(message: issuer_pb2.ProductLinks) -> list[dict[str, str]]:
    return [{name: getattr(link, name) for name in _FIELDS} for link in message.links]


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``links`` command; 0 on success, else see :func:`rpc_failed`."""
    where = endpoint(args, settings)
    if args.links_command == "set":
        request: Any = issuer_pb2.SetProductLinksRequest(
            gtin=args.gtin, links=links_of(args), replace=args.replace
        )
        method = "SetProductLinks"
    elif args.links_command == "list":
        request, method = issuer_pb2.ListProductLinksRequest(gtin=args.gtin), "ListProductLinks"
    else:
        request = issuer_pb2.DeleteProductLinkRequest(
            gtin=args.gtin,
            link_type=args.link_type,
            href=args.href,
            lang=args.lang,
            context=args.context,
        )
        method = "DeleteProductLink"
    try:
        with open_channel(where.target, args) as channel:
            stub = issuer_pb2_grpc.IssuerStub(channel)
            result = getattr(stub, method)(request, metadata=where.metadata)
    except grpc.RpcError as exc:
        return rpc_failed(exc)
    emit(_shown(result), args.json)
    return 0
