"""``sealmark audit …``: the Audit service from a shell (auditor or admin token), and
``audit tlog verify``, which checks saved transparency-log files offline, trusting nothing
but the log's public key.

    audit alerts [--status S] [--kind K] [--watch [--after ID]]
    audit ack ID [--note N]            audit resolve ID --note N --resolution R
    audit trace CODE                   audit recall (--lot GTIN/LOT | --gtin G | --codes C… |
                                                      --parent P) --reason R
    audit report KIND [--format F] [--out FILE] [filters]
    audit export-epcis --out FILE [--from T] [--to T] [--lot GTIN/LOT] [--code C] [--urn]
    audit tlog checkpoint --out FILE
    audit tlog prove (--index I | --code C) [--at CHECKPOINT | --tree-size N] --out FILE
    audit tlog consistency (--from CHECKPOINT | --first N) [--at CHECKPOINT | --second N]
                           --out FILE
    audit tlog entries [--at CHECKPOINT | --start S --count N] --out FILE
    audit tlog verify --key VKEY --checkpoint FILE [--newer FILE --consistency FILE]
                      [--inclusion FILE] [--entries FILE]
    audit webhooks add|list|rotate|pause|resume|deliveries|retry …  (sealmark_app/cli/webhooks.py)

``--at CHECKPOINT`` pins what is saved to the tree of a checkpoint saved before (the newest
one the auditor will verify against), however much the log has grown since; ``verify``
checks every file against the newest checkpoint it is given and refuses any it cannot.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from audit.offline import VerificationFailed, verify_files
from sealmark.errors import InvalidArgument
from sealmark.settings import Settings
from sealmark.tlog.note import parse_checkpoint
from sealmark.v1 import audit_pb2, audit_pb2_grpc, common_pb2
from sealmark_app.cli import webhooks
from sealmark_app.cli.aggregation import code_ref
from sealmark_app.cli.output import emit, endpoint, rpc_failed
from sealmark_app.cli.transport import add_tls_options, open_channel

KINDS = (
    "clone",
    "counterfeit",
    "diversion",
    "pin_reuse",
    "serial_guessing",
    "bad_signature",
    "pin_guessing",
    "recalled_scan",
)
STATUSES = ("open", "acknowledged", "resolved")
RESOLUTIONS = ("confirmed", "false_positive", "duplicate")
# Report kinds in audit.proto order (enum number = index + 1), named as the CLI spells them.
REPORTS = tuple(
    name.removeprefix("REPORT_KIND_").lower() for name in audit_pb2.ReportKind.keys()[1:]
)
FORMATS = ("json", "csv", "svg", "png")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="alerts, trace, recall, reports, EPCIS, transparency log")
    cmds = audit.add_subparsers(dest="audit_command", required=True)

    alerts = cmds.add_parser("alerts", help="list alerts, or --watch them as they happen")
    alerts.add_argument("--status", choices=STATUSES)
    alerts.add_argument("--kind", choices=KINDS)
    alerts.add_argument("--limit", type=int, default=100)
    alerts.add_argument("--watch", action="store_true", help="stream new alerts until Ctrl-C")
    alerts.add_argument("--after", type=int, default=0, help="--watch: resume after this id")
    ack = cmds.add_parser("ack", help="acknowledge an alert")
    ack.add_argument("alert_id", type=int)
    ack.add_argument("--note", default="")
    resolve = cmds.add_parser("resolve", help="resolve an alert (admin)")
    resolve.add_argument("alert_id", type=int)
    resolve.add_argument("--note", required=True)
    resolve.add_argument("--resolution", required=True, choices=RESOLUTIONS)

    trace = cmds.add_parser("trace", help="the whole life of a code")
    trace.add_argument("code", metavar="CODE")

    recall = cmds.add_parser("recall", help="recall units: final, takes effect at once (admin)")
    scope = recall.add_mutually_exclusive_group(required=True)
    scope.add_argument("--lot", metavar="GTIN/LOT")
    scope.add_argument("--gtin")
    scope.add_argument("--codes", nargs="+", metavar="CODE")
    scope.add_argument("--parent", metavar="CODE", help="a parent and all it contains")
    recall.add_argument("--reason", required=True, help="shown to consumers who scan a unit")
    recall.add_argument("--request-id", default=None, help="idempotency key (default: new)")

    report = cmds.add_parser("report", help="a report as JSON, CSV or a chart")
    report.add_argument("kind", choices=REPORTS)
    report.add_argument("--format", choices=FORMATS, default="json")
    report.add_argument("--out", type=Path, help="file to write (default: standard output)")
    report.add_argument("--from", dest="since", help="ISO time, inclusive")
    report.add_argument("--to", dest="until", help="ISO time, exclusive")
    for name in ("gtin", "lot", "work-order", "recall-id", "region"):
        report.add_argument(f"--{name}", default="")
    report.add_argument("--days-ahead", type=int, default=0)

    export = cmds.add_parser("export-epcis", help="EPCIS 2.0 JSON-LD document of events")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--from", dest="since")
    export.add_argument("--to", dest="until")
    export.add_argument("--lot", metavar="GTIN/LOT")
    export.add_argument("--code", metavar="CODE")
    export.add_argument("--descendants", action="store_true", help="--code: and its contents")
    export.add_argument("--urn", action="store_true", help="EPC URNs instead of Digital Links")

    tlog = cmds.add_parser("tlog", help="the transparency log")
    tcmds = tlog.add_subparsers(dest="tlog_command", required=True)
    checkpoint = tcmds.add_parser("checkpoint", help="save the latest signed checkpoint")
    checkpoint.add_argument("--out", type=Path, required=True)
    entries = tcmds.add_parser("entries", help="save entries [start, start+count) as JSON lines")
    entries.add_argument("--start", type=int, default=0)
    upto = entries.add_mutually_exclusive_group()
    upto.add_argument("--count", type=int, default=1000)
    upto.add_argument("--at", type=Path, metavar="CHECKPOINT", help="up to this tree's size")
    entries.add_argument("--out", type=Path, required=True)
    prove = tcmds.add_parser("prove", help="save an inclusion proof of one entry or code")
    which = prove.add_mutually_exclusive_group(required=True)
    which.add_argument("--index", type=int, help="an entry")
    which.add_argument("--code", metavar="CODE", help="a code: its batch entry and its place")
    size = prove.add_mutually_exclusive_group()
    size.add_argument("--tree-size", type=int, default=0, help="default: the latest")
    size.add_argument("--at", type=Path, metavar="CHECKPOINT", help="in this checkpoint's tree")
    prove.add_argument("--out", type=Path, required=True)
    consistency = tcmds.add_parser("consistency", help="save a consistency proof")
    first = consistency.add_mutually_exclusive_group(required=True)
    first.add_argument("--first", type=int)
    first.add_argument("--from", dest="since", type=Path, metavar="CHECKPOINT")
    second = consistency.add_mutually_exclusive_group()
    second.add_argument("--second", type=int, default=0, help="default: the latest")
    second.add_argument("--at", type=Path, metavar="CHECKPOINT", help="to this tree's size")
    consistency.add_argument("--out", type=Path, required=True)
    verify = tcmds.add_parser("verify", help="check saved files offline")
    verify.add_argument("--key", required=True, help="the log's verifier key (name+id+key)")
    verify.add_argument("--checkpoint", type=Path, required=True)
    verify.add_argument("--newer", type=Path, help="a later checkpoint to check against")
    verify.add_argument("--consistency", type=Path, help="proof from --checkpoint to --newer")
    verify.add_argument("--inclusion", type=Path, help="an inclusion proof file")
    verify.add_argument("--entries", type=Path, help="entries file covering the whole tree")
    verify.add_argument(
        "--code", metavar="PAYLOAD", help="with --inclusion of a code: the code as scanned"
    )

    hook_parsers = webhooks.add_parser(cmds)
    for parser in (
        *hook_parsers,
        alerts,
        ack,
        resolve,
        trace,
        recall,
        report,
        export,
        checkpoint,
        entries,
        prove,
        consistency,
        verify,
    ):
        parser.add_argument("--target", default=None, help="host:port of the Audit service")
        parser.add_argument("--token", default=None, help="API token (or SEALMARK_TOKEN)")
        if parser is not verify:  # offline; and its --key is the log's verifier key
            add_tls_options(parser)
        parser.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="machine output"
        )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.audit_command == "tlog" and args.tlog_command == "verify":
        return _verify(args)
    where = endpoint(args, settings)
    try:
        with open_channel(where.target, args) as channel:
            stub = audit_pb2_grpc.AuditStub(channel)
            return _call(args, stub, list(where.metadata))
    except grpc.RpcError as exc:
        return rpc_failed(exc)


def _call(args: argparse.Namespace, stub: audit_pb2_grpc.AuditStub, md: list[Any]) -> int:
    command = args.audit_command
    request: Any
    if command == "webhooks":
        return webhooks.call(args, stub, md)
    if command == "alerts":
        if args.watch:
            request = audit_pb2.WatchAlertsRequest(after_id=args.after)
            if args.kind:
                request.kinds.append(audit_pb2.AlertKind.Value(f"ALERT_KIND_{args.kind.upper()}"))
            try:
                for alert in stub.WatchAlerts(request, metadata=md):
                    emit(_plain(alert), True)
                    sys.stdout.flush()
            except KeyboardInterrupt:
                return 0
            return 0
        listed = stub.ListAlerts(
            audit_pb2.ListAlertsRequest(
                status=_enum(audit_pb2.AlertStatus, "ALERT_STATUS", args.status),
                kind=_enum(audit_pb2.AlertKind, "ALERT_KIND", args.kind),
                page=common_pb2.PageRequest(page_size=args.limit),
            ),
            metadata=md,
        )
        emit([_plain(a) for a in listed.alerts], args.json)
        return 0
    if command in ("ack", "resolve"):
        request = audit_pb2.AlertActionRequest(alert_id=args.alert_id, note=args.note)
        if command == "resolve":
            request.resolution = audit_pb2.AlertResolution.Value(
                f"ALERT_RESOLUTION_{args.resolution.upper()}"
            )
            emit(_plain(stub.ResolveAlert(request, metadata=md)), args.json)
        else:
            emit(_plain(stub.AcknowledgeAlert(request, metadata=md)), args.json)
        return 0
    if command == "trace":
        request = audit_pb2.TraceRequest(code=code_ref(args.code, "CODE"))
        emit([_plain(e) for e in stub.Trace(request, metadata=md)], args.json)
        return 0
    if command == "recall":
        emit(_plain(stub.Recall(_recall_request(args), metadata=md)), args.json)
        return 0
    if command == "report":
        request = audit_pb2.ReportRequest(
            kind=REPORTS.index(args.kind) + 1,  # type: ignore[arg-type]
            format=audit_pb2.ReportFormat.Value(f"REPORT_FORMAT_{args.format.upper()}"),
            gtin=args.gtin,
            lot=args.lot,
            work_order=args.work_order,
            recall_id=args.recall_id,
            region=args.region,
            days_ahead=args.days_ahead,
        )
        _times(request, args)
        data = b"".join(c.data for c in stub.GetReport(request, metadata=md))
        return _write(args.out, data)
    if command == "export-epcis":
        request = audit_pb2.ExportEpcisRequest(
            include_descendants=args.descendants,
            identifiers=audit_pb2.IDENTIFIER_FORMAT_EPC_URN
            if args.urn
            else audit_pb2.IDENTIFIER_FORMAT_DIGITAL_LINK,
        )
        _times(request, args)
        if args.lot:
            gtin, _, lot = args.lot.partition("/")
            request.lot.gtin, request.lot.lot = gtin, lot
        if args.code:
            request.code.CopyFrom(code_ref(args.code, "--code"))
        events = 0
        with args.out.open("wb") as out:
            for chunk in stub.ExportEpcis(request, metadata=md):
                out.write(chunk.data)
                events = chunk.events_so_far
        emit({"file": str(args.out), "events": events}, args.json)
        return 0
    return _tlog(args, stub, md)


def _tlog(args: argparse.Namespace, stub: audit_pb2_grpc.AuditStub, md: list[Any]) -> int:
    which = args.tlog_command
    if which == "checkpoint":
        checkpoint = stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(), metadata=md)
        args.out.write_text(checkpoint.signed_note, encoding="utf-8")
        emit(
            {
                "origin": checkpoint.origin,
                "tree_size": checkpoint.tree_size,
                "root_hash": checkpoint.root_hash.hex(),
                "verifier_key": checkpoint.verifier_key,
                "file": str(args.out),
            },
            args.json,
        )
        return 0
    if which == "entries":
        lines, start = [], args.start
        remaining = args.count if args.at is None else _size_at(args.at, "--at") - start
        while remaining > 0:
            got = stub.GetLogEntries(
                audit_pb2.GetLogEntriesRequest(start=start, count=min(remaining, 1000)),
                metadata=md,
            ).entries
            if not got:
                break
            for e in got:
                lines.append(json.dumps({"index": e.index, "data": _b64(e.data)}))
            start, remaining = start + len(got), remaining - len(got)
        args.out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        emit({"entries": len(lines), "file": str(args.out)}, args.json)
        return 0
    if which == "prove":
        tree_size = args.tree_size if args.at is None else _size_at(args.at, "--at")
        asked = audit_pb2.GetInclusionProofRequest(tree_size=tree_size)
        if args.code:
            asked.code.CopyFrom(code_ref(args.code, "--code"))
        else:
            asked.leaf_index = args.index
        proof = stub.GetInclusionProof(asked, metadata=md)
        saved: dict[str, Any] = {
            "leaf_index": proof.leaf_index,
            "tree_size": proof.tree_size,
            "entry": _b64(proof.entry),
            "hashes": [_b64(h) for h in proof.hashes],
        }
        if proof.HasField("code_proof"):
            inner = proof.code_proof
            saved["code"] = {
                "commitment": _b64(inner.commitment),
                "position": inner.position,
                "batch_size": inner.batch_size,
                "hashes": [_b64(h) for h in inner.hashes],
            }
    else:
        first = args.first if args.since is None else _size_at(args.since, "--from")
        second = args.second if args.at is None else _size_at(args.at, "--at")
        proof = stub.GetConsistencyProof(
            audit_pb2.GetConsistencyProofRequest(first_size=first, second_size=second),
            metadata=md,
        )
        saved = {
            "first_size": proof.first_size,
            "second_size": proof.second_size,
            "hashes": [_b64(h) for h in proof.hashes],
        }
    args.out.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
    emit(
        {k: v for k, v in saved.items() if k not in ("hashes", "entry", "code")}
        | {"file": str(args.out)},
        args.json,
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    if bool(args.newer) != bool(args.consistency):
        raise InvalidArgument("--consistency", "give --newer and --consistency together")
    try:
        checked = verify_files(
            args.key,
            args.checkpoint,
            newer=args.newer,
            consistency=args.consistency,
            inclusion=args.inclusion,
            entries=args.entries,
            code=args.code,
        )
    except VerificationFailed as exc:
        print(f"sealmark: VERIFICATION FAILED: {exc}", file=sys.stderr)
        return 1
    emit({"verified": checked}, getattr(args, "json", False))
    return 0


def _size_at(path: Path, flag: str) -> int:
    """The tree size of a saved checkpoint. Its signature is not checked here: this only picks
    what to ask the log for, and ``tlog verify`` checks the files against the signed note."""
    try:
        body = path.read_text(encoding="utf-8").split("\n\n", 1)[0] + "\n"
        return parse_checkpoint(body).size
    except (OSError, ValueError) as exc:
        raise InvalidArgument(flag, f"{path}: not a saved checkpoint ({exc})") from None


def _recall_request(args: argparse.Namespace) -> audit_pb2.RecallRequest:
    request = audit_pb2.RecallRequest(
        request_id=args.request_id or f"cli-{uuid.uuid4().hex[:16]}", reason=args.reason
    )
    if args.lot:
        gtin, slash, lot = args.lot.partition("/")
        if not slash:
            raise InvalidArgument("--lot", "want GTIN/LOT")
        request.lot.gtin, request.lot.lot = gtin, lot
    elif args.gtin:
        request.gtin = args.gtin
    elif args.codes:
        request.codes.codes.extend(code_ref(c, "--codes") for c in args.codes)
    else:
        request.parent.CopyFrom(code_ref(args.parent, "--parent"))
    return request


def _times(request: Any, args: argparse.Namespace) -> None:
    for flag, field, value in (
        ("--from", "from_time", args.since),
        ("--to", "to_time", args.until),
    ):
        if value:
            try:
                at = datetime.fromisoformat(value)
            except ValueError:
                raise InvalidArgument(flag, f"{value!r} is not an ISO 8601 time") from None
            if at.tzinfo is None:
                raise InvalidArgument(flag, "give a time zone, e.g. 2026-11-23T00:00:00Z")
            stamp = Timestamp()
            stamp.FromDatetime(at)
            getattr(request, field).CopyFrom(stamp)


def _enum(enum: Any, prefix: str, value: str | None) -> Any:
    return enum.Value(f"{prefix}_{value.upper()}") if value else 0


def _plain(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write(out: Path | None, data: bytes) -> int:
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        out.write_bytes(data)
    return 0
