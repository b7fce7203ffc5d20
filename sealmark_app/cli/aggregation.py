"""``sealmark pack|unpack|ship|receive|decommission|tree``: the Aggregator's gRPC API from a
shell, with a line or logistics token, as a packing line or a warehouse would use it.

Units are named as people type or scan them (see :func:`code_ref`); the client only tells the
forms apart, the server does the GS1 validation (check digits, CSET 82, company prefixes).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

import grpc

from sealmark.errors import InvalidArgument
from sealmark.gs1 import ScanKind, classify_scan
from sealmark.settings import Settings
from sealmark.v1 import aggregator_pb2, aggregator_pb2_grpc, common_pb2
from sealmark_app.cli.output import Endpoint, emit, endpoint, rpc_failed
from sealmark_app.cli.transport import add_tls_options, open_channel

COMMANDS = frozenset({"pack", "unpack", "ship", "receive", "decommission", "tree"})
LEVELS = ("bundle", "case", "pallet")
REASONS = ("dispensed", "destroyed", "stolen", "locked", "exported", "sample", "free-sample")
GTIN_LENGTHS = (8, 12, 13, 14)
# Failures after which the write may or may not have been applied: retry with the same id.
UNCERTAIN = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)
UNIT_HELP = "SSCC (18 digits, 00+SSCC, (00)SSCC), GTIN/SERIAL, or a scanned code"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pack = sub.add_parser("pack", help="put children into a parent (Aggregator, gRPC)")
    pack.add_argument("parent", metavar="PARENT", help=UNIT_HELP)
    pack.add_argument("children", metavar="CHILD", nargs="+", help=UNIT_HELP)
    pack.add_argument("--level", choices=LEVELS, default=None, help="level of the parent")
    pack.add_argument("--line", default="", help="line id")
    _client_options(pack)

    unpack = sub.add_parser("unpack", help="take children out of a parent (none = all)")
    unpack.add_argument("parent", metavar="PARENT", help=UNIT_HELP)
    unpack.add_argument("children", metavar="CHILD", nargs="*", help=UNIT_HELP)
    _client_options(unpack)

    ship = sub.add_parser("ship", help="ship codes; every descendant goes in transit")
    ship.add_argument("codes", metavar="CODE", nargs="+", help=UNIT_HELP)
    ship.add_argument("--to", required=True, dest="to_party", help="GLN or party id")
    ship.add_argument("--market", required=True, help="destination, ISO 3166-1/-2 (DE, CN-31)")
    _client_options(ship)

    receive = sub.add_parser("receive", help="receive shipped codes and their descendants")
    receive.add_argument("codes", metavar="CODE", nargs="+", help=UNIT_HELP)
    receive.add_argument("--from", required=True, dest="from_party", help="GLN or party id")
    _client_options(receive)

    decommission = sub.add_parser("decommission", help="take codes out of the supply chain")
    decommission.add_argument("codes", metavar="CODE", nargs="+", help=UNIT_HELP)
    decommission.add_argument("--reason", required=True, choices=REASONS)
    decommission.add_argument("--note", default="")
    _client_options(decommission)

    tree = sub.add_parser("tree", help="the packing hierarchy around a code")
    tree.add_argument("code", metavar="CODE", help=UNIT_HELP)
    _client_options(tree, writes=False)


def _client_options(parser: argparse.ArgumentParser, *, writes: bool = True) -> None:
    if writes:
        parser.add_argument(
            "--event-id", default=None, help="idempotency key; reuse it to retry (default: new)"
        )
    parser.add_argument("--target", default=None, help="host:port of the Aggregator")
    parser.add_argument("--token", default=None, help="API token (or SEALMARK_TOKEN)")
    add_tls_options(parser)
    # SUPPRESS: when absent here, a `sealmark --json …` before the command still counts.
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )


def code_ref(text: str, field: str = "CODE") -> common_pb2.CodeRef:
    """The CodeRef for a unit as typed on the command line:

    - an SSCC: 18 digits, ``00`` + 18 digits, or ``(00)`` + 18 digits;
    - ``GTIN/SERIAL``: a GTIN-8/12/13/14 (shorter ones are zero-padded) and a serial;
    - a scanned payload, passed on as is: a Digital Link URI, an element string (digits first,
      or a symbology identifier such as ``]d2``) or HRI such as ``(01)…(21)…``.

    Raises InvalidArgument naming ``field`` for text that is none of these. Check digits and
    character sets are the server's to check.
    """
    value = text.strip()
    if not value:
        raise InvalidArgument(field, f"empty; want {UNIT_HELP}")
    if value.isascii() and value.isdigit():
        if len(value) == 18:
            return common_pb2.CodeRef(sscc=value)
        if len(value) == 20 and value.startswith("00"):
            return common_pb2.CodeRef(sscc=value[2:])
        if len(value) < 18:
            raise InvalidArgument(field, f"{text!r}: {len(value)} digits; an SSCC has 18")
        return common_pb2.CodeRef(scanned=value)
    if value.startswith("(00)") and value[4:].isascii() and value[4:].isdigit():
        if len(value) != 22:
            raise InvalidArgument(field, f"{text!r}: (00) takes 18 digits, got {len(value) - 4}")
        return common_pb2.CodeRef(sscc=value[4:])
    scan = classify_scan(value)
    gtin, slash, serial = value.partition("/")
    # A serial may itself contain "/", so only a short head before the first one is a GTIN;
    # URIs and element strings (their head is longer than a GTIN) are scanned payloads.
    if slash and scan.kind is not ScanKind.DIGITAL_LINK and len(gtin) <= 14:
        return common_pb2.CodeRef(sgtin=_sgtin(gtin, serial, text, field))
    if scan.kind is ScanKind.UNKNOWN:
        raise InvalidArgument(field, f"{text!r}: want {UNIT_HELP}")
    return common_pb2.CodeRef(scanned=value)


def _sgtin(gtin: str, serial: str, text: str, field: str) -> common_pb2.Sgtin:
    if not gtin:
        raise InvalidArgument(field, f"{text!r}: the GTIN before '/' is empty")
    if not serial:
        raise InvalidArgument(field, f"{text!r}: the serial after '/' is empty")
    if not (gtin.isascii() and gtin.isdigit() and len(gtin) in GTIN_LENGTHS):
        raise InvalidArgument(field, f"{text!r}: GTIN {gtin!r}, want 8, 12, 13 or 14 digits")
    return common_pb2.Sgtin(gtin=gtin.zfill(14), serial=serial)


def unit_text(ref: common_pb2.CodeRef) -> str:
    """A unit as :func:`code_ref` reads it back: the SSCC, ``GTIN/SERIAL`` or the scan."""
    key = ref.WhichOneof("key")
    if key == "sgtin":
        return f"{ref.sgtin.gtin}/{ref.sgtin.serial}"
    if key == "sscc":
        return ref.sscc
    return ref.scanned


def state_name(value: int) -> str:
    """``CODE_STATE_IN_TRANSIT`` → ``in_transit``; an unknown number stays a number."""
    return _enum_label(common_pb2.CodeState, value, "CODE_STATE_")


def level_name(value: int) -> str:
    """``PACK_LEVEL_CASE`` → ``case``."""
    return _enum_label(common_pb2.PackLevel, value, "PACK_LEVEL_")


def _enum_label(enum: Any, value: int, prefix: str) -> str:
    try:
        name: str = enum.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(prefix).lower()


def tree_document(
    code: common_pb2.CodeRef,
    ancestors: Sequence[common_pb2.CodeRef],
    children: Sequence[aggregator_pb2.Child],
) -> dict[str, Any]:
    """What ``sealmark tree --json`` prints: ancestors nearest first, descendants as sent."""
    return {
        "code": unit_text(code),
        "ancestors": [unit_text(a) for a in ancestors],
        "descendants": [
            {
                "code": unit_text(c.code),
                "parent": unit_text(c.parent),
                "depth": c.depth,
                "state": state_name(c.state),
                "level": level_name(c.level),
                "market": c.market,
            }
            for c in children
        ],
    }


def render_tree(
    code: common_pb2.CodeRef,
    ancestors: Sequence[common_pb2.CodeRef],
    children: Sequence[aggregator_pb2.Child],
) -> str:
    """The hierarchy around ``code`` as indented lines: the top parent first, down to the code
    (marked ``*``), then its descendants, each under its own parent. ``ancestors`` are nearest
    first (as GetAncestors sends them); ``children`` are ListChildren's, in any order. Only
    descendants carry a level, state and market: GetAncestors sends bare units."""
    rows: list[tuple[int, str, str]] = [
        (depth, unit_text(ref), "") for depth, ref in enumerate(reversed(ancestors))
    ]
    rows.append((len(ancestors), unit_text(code), "*"))
    ordered = _depth_first(children)
    levels = [level_name(c.level) for c in ordered]
    states = [state_name(c.state) for c in ordered]
    level_width = max(map(len, levels), default=0)
    state_width = max(map(len, states), default=0)
    for child, level, state in zip(ordered, levels, states, strict=True):
        facts = f"{level:<{level_width}}  {state:<{state_width}}  {child.market}"
        rows.append((len(ancestors) + child.depth, unit_text(child.code), facts))
    width = max(2 * depth + len(unit) for depth, unit, _ in rows)
    lines = [f"{'  ' * depth + unit:<{width}}  {facts}".rstrip() for depth, unit, facts in rows]
    return "\n".join(lines) + "\n"


def _depth_first(children: Sequence[aggregator_pb2.Child]) -> list[aggregator_pb2.Child]:
    """Reorder a breadth-first listing so that every child follows its parent's line."""
    under: dict[str, list[aggregator_pb2.Child]] = {}
    for child in children:
        under.setdefault(unit_text(child.parent), []).append(child)
    ordered: list[aggregator_pb2.Child] = []
    seen: set[int] = set()

    def visit(child: aggregator_pb2.Child) -> None:
        if id(child) in seen:
            return
        seen.add(id(child))
        ordered.append(child)
        for grandchild in under.get(unit_text(child.code), []):
            visit(grandchild)

    for child in sorted(children, key=lambda c: c.depth):
        visit(child)
    return ordered


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one Aggregator command; 0 on success, else see :func:`rpc_failed`."""
    where = endpoint(args, settings)
    if args.command == "tree":
        return _tree(args, where)
    request, method = write_request(args)
    try:
        with open_channel(where.target, args) as channel:
            stub = aggregator_pb2_grpc.AggregatorStub(channel)
            result = getattr(stub, method)(request, metadata=where.metadata)
    except grpc.RpcError as exc:
        status = rpc_failed(exc)
        if exc.code() in UNCERTAIN:
            print(
                f"sealmark: retry with --event-id {request.event_id} (a repeat writes nothing)",
                file=sys.stderr,
            )
        return status
    emit(_result(result), args.json)
    return 0


def write_request(args: argparse.Namespace) -> tuple[Any, str]:
    """The request a parsed write command sends and the name of the Aggregator RPC to send it
    to. Raises InvalidArgument naming PARENT, CHILD or CODE for a unit it cannot read."""
    event_id = args.event_id or f"cli-{uuid.uuid4().hex[:16]}"
    if args.command == "pack":
        level = f"PACK_LEVEL_{args.level.upper()}" if args.level else "PACK_LEVEL_UNSPECIFIED"
        return aggregator_pb2.PackRequest(
            event_id=event_id,
            parent=code_ref(args.parent, "PARENT"),
            children=_refs(args.children, "CHILD"),
            line_id=args.line,
            parent_level=common_pb2.PackLevel.Value(level),
        ), "Pack"
    if args.command == "unpack":
        return aggregator_pb2.UnpackRequest(
            event_id=event_id,
            parent=code_ref(args.parent, "PARENT"),
            children=_refs(args.children, "CHILD"),
        ), "Unpack"
    if args.command == "ship":
        return aggregator_pb2.ShipRequest(
            event_id=event_id,
            codes=_refs(args.codes, "CODE"),
            to_party=args.to_party,
            destination_market=args.market,
        ), "Ship"
    if args.command == "receive":
        return aggregator_pb2.ReceiveRequest(
            event_id=event_id, codes=_refs(args.codes, "CODE"), from_party=args.from_party
        ), "Receive"
    reason = "DECOMMISSION_REASON_" + args.reason.upper().replace("-", "_")
    return aggregator_pb2.DecommissionRequest(
        event_id=event_id,
        codes=_refs(args.codes, "CODE"),
        reason=aggregator_pb2.DecommissionReason.Value(reason),
        note=args.note,
    ), "Decommission"


def _refs(texts: Iterable[str], field: str) -> list[common_pb2.CodeRef]:
    return [code_ref(text, field) for text in texts]


def _result(result: Any) -> dict[str, Any]:
    if isinstance(result, aggregator_pb2.AggregationResult):
        return {
            "event_id": result.event_id,
            "duplicate": result.duplicate,
            "children_affected": result.children_affected,
            "recorded_at": (
                result.recorded_at.ToDatetime(tzinfo=UTC)
                if result.HasField("recorded_at")
                else None
            ),
            "epcis_event_id": result.epcis_event_id,
        }
    return {
        "event_id": result.event_id,
        "duplicate": result.duplicate,
        "codes_affected": result.codes_affected,
        "epcis_event_id": result.epcis_event_id,
    }


def _tree(args: argparse.Namespace, where: Endpoint) -> int:
    code = code_ref(args.code, "CODE")
    children: list[aggregator_pb2.Child] = []
    try:
        with open_channel(where.target, args) as channel:
            stub = aggregator_pb2_grpc.AggregatorStub(channel)
            ancestors = stub.GetAncestors(
                aggregator_pb2.GetAncestorsRequest(code=code), metadata=where.metadata
            ).ancestors
            # One call streams every page; next_page_token only matters to resume a broken one.
            pages = stub.ListChildren(
                aggregator_pb2.ListChildrenRequest(parent=code, all_levels=True),
                metadata=where.metadata,
            )
            for page in pages:
                children.extend(page.children)
    except grpc.RpcError as exc:
        return rpc_failed(exc)
    # The server names units by GTIN/serial or SSCC; prefer that over a scanned CODE.
    shown = next((c.parent for c in children if c.depth == 1), code)
    if args.json:
        emit(tree_document(shown, ancestors, children), True)
    else:
        sys.stdout.write(render_tree(shown, ancestors, children))
    return 0
