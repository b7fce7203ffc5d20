"""``sealmark codes commission``: report printed-and-inspected codes commissioned through the
Issuer's ReportCommissioned stream, with a line token, as a packaging line's camera would.

Until a code is commissioned the Verifier answers "counterfeit: never commissioned" for it,
so this is the step between ``sealmark issue`` and a first scan that says genuine. The codes
come from exactly one of:

- ``--gtin GTIN SERIAL…``: serials of one product, taken verbatim (serials are opaque);
- ``CODE…``: ``GTIN/SERIAL``, a Digital Link URL, an element string or HRI, as scanned;
- ``--file FILE``: what ``sealmark issue --out`` wrote (``.jsonl`` or ``.csv``), or a text
  file of one code per line (one serial per line with ``--gtin``; blank lines and ``#``
  comments are skipped);
- ``--pool REQUEST_ID``: every code of one issuance request (the request id
  ``sealmark issue`` prints), read back from the Issuer, which replays a pool exactly.

Each code is idempotent on its own (one already commissioned counts as ``already_done``) and
each batch id too, so a run that failed half-way is simply run again.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from tqdm import tqdm

from sealmark.errors import FailedPrecondition, InvalidArgument
from sealmark.gs1 import (
    ScanKind,
    classify_scan,
    normalize_gtin,
    parse_digital_link,
    parse_element_string,
    parse_hri,
)
from sealmark.settings import Settings
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.cli.aggregation import UNCERTAIN
from sealmark_app.cli.output import Endpoint, emit, endpoint, rpc_failed
from sealmark_app.cli.transport import add_tls_options, open_channel

MAX_BATCH = 10_000  # CodeBatch.serials: 1..10000
CODE_HELP = "GTIN/SERIAL, a Digital Link URL, an element string or HRI"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    codes = sub.add_parser("codes", help="report codes printed (Issuer, gRPC, line token)")
    csub = codes.add_subparsers(dest="action", required=True)
    commission = csub.add_parser(
        "commission",
        help="report codes printed and inspected: they verify as genuine from now on",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commission.add_argument(
        "codes",
        metavar="CODE",
        nargs="*",
        help=f"{CODE_HELP}; with --gtin, bare serials (put -- before the first one when a serial"
        " starts with '-')",
    )
    commission.add_argument("--gtin", default=None, help="the product of bare serials")
    commission.add_argument(
        "--file", type=Path, default=None, help="codes.jsonl / .csv from sealmark issue, or text"
    )
    commission.add_argument(
        "--pool", default=None, metavar="REQUEST_ID", help="every code of this issuance request"
    )
    commission.add_argument("--line", default="cli", help="line id reported with the codes")
    commission.add_argument(
        "--batch-id",
        default=None,
        help="idempotency key; batch n is sent as BATCH_ID-n (default: new). Reuse it to retry",
    )
    commission.add_argument(
        "--batch-size", type=int, default=1000, help=f"codes per batch, 1..{MAX_BATCH}"
    )
    commission.add_argument("--target", default=None, help="host:port of the Issuer")
    commission.add_argument("--token", default=None, help="line token (or SEALMARK_TOKEN)")
    add_tls_options(commission)
    commission.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )


@dataclass
class Outcome:
    """What the acks of one run add up to."""

    codes: int = 0
    accepted: int = 0
    already_done: int = 0
    batches: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)

    def add(self, ack: issuer_pb2.ReportSummary) -> None:
        self.batches += 1
        self.accepted += ack.accepted
        self.already_done += ack.already_done
        self.rejected += [
            {"serial": r.serial, "error_code": r.error_code, "reason": r.reason}
            for r in ack.rejected
        ]


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``sealmark codes commission``: 0 when every code is commissioned (now or before),
    1 when the Issuer rejected some (listed), else see :func:`rpc_failed`. Raises
    InvalidArgument naming the option or CODE for input it cannot use."""
    as_json = bool(getattr(args, "json", False))
    if not 1 <= args.batch_size <= MAX_BATCH:
        raise InvalidArgument("--batch-size", f"{args.batch_size}, want 1..{MAX_BATCH}")
    sources = [name for name, given in _sources(args) if given]
    if len(sources) != 1:
        given = ", ".join(sources) or "none"
        raise InvalidArgument("CODE", f"give exactly one of CODE…, --file, --pool (got {given})")
    if args.pool is not None and args.gtin is not None:
        raise InvalidArgument("--gtin", "not with --pool (the pool names its product)")
    where = endpoint(args, settings)
    batch_id = args.batch_id or f"cli-{uuid.uuid4().hex[:16]}"
    outcome, sending = Outcome(), False
    try:
        with open_channel(where.target, args) as channel:
            stub = issuer_pb2_grpc.IssuerStub(channel)
            if args.pool is not None:
                codes = pool_codes(stub, where, args.pool)
            elif args.file is not None:
                codes = read_file(args.file, args.gtin)
            else:
                codes = [parse_code(text, "CODE", args.gtin) for text in args.codes]
            if not codes:
                raise InvalidArgument(sources[0], "no codes in it")
            outcome.codes = len(codes)
            batches = list(_batches(codes, batch_id, args.line, args.pool or "", args.batch_size))
            sending = True
            with tqdm(
                total=len(codes), unit="codes", disable=as_json or not sys.stderr.isatty()
            ) as bar:
                for ack in stub.ReportCommissioned(iter(batches), metadata=where.metadata):
                    outcome.add(ack)
                    bar.update(ack.accepted + ack.already_done + len(ack.rejected))
    except grpc.RpcError as exc:
        status = rpc_failed(exc)
        if sending and exc.code() in UNCERTAIN:
            print(
                f"sealmark: {outcome.batches} of {len(batches)} batches acknowledged; run again"
                f" with --batch-id {batch_id} (a repeat commissions nothing twice)",
                file=sys.stderr,
            )
        return status
    summary = {
        "codes": outcome.codes,
        "commissioned": outcome.accepted,
        "already_commissioned": outcome.already_done,
        "rejected": len(outcome.rejected),
        "batches": outcome.batches,
        "batch_id": batch_id,
    }
    if as_json:
        emit({**summary, "rejected": outcome.rejected}, True)
    else:
        emit(summary, False)
        for r in outcome.rejected:
            print(f"  rejected {r['serial']}: {r['error_code']} {r['reason']}")
    if outcome.rejected:
        print(
            f"sealmark: {len(outcome.rejected)} of {outcome.codes} codes rejected", file=sys.stderr
        )
        return 1
    return 0


def _sources(args: argparse.Namespace) -> list[tuple[str, bool]]:
    return [
        ("CODE", bool(args.codes)),
        ("--file", args.file is not None),
        ("--pool", args.pool is not None),
    ]


def _batches(
    codes: list[tuple[str, str]], batch_id: str, line: str, pool: str, size: int
) -> Iterator[issuer_pb2.CodeBatch]:
    """One CodeBatch per GTIN and ``size`` serials, in the order the codes came."""
    by_gtin: dict[str, list[str]] = {}
    for gtin, serial in codes:
        by_gtin.setdefault(gtin, []).append(serial)
    n = 0
    for gtin, serials in by_gtin.items():
        for start in range(0, len(serials), size):
            n += 1
            yield issuer_pb2.CodeBatch(
                batch_id=f"{batch_id}-{n}",
                gtin=gtin,
                serials=serials[start : start + size],
                line_id=line,
                pool_request_id=pool,
            )


def parse_code(text: str, where: str, gtin: str | None) -> tuple[str, str]:
    """``(gtin14, serial)`` of one code as typed or scanned; with ``gtin``, ``text`` is a bare
    serial. Raises InvalidArgument naming ``where`` (or ``--gtin``)."""
    if gtin is not None:
        if not text:
            raise InvalidArgument(where, "empty serial")
        return normalize_gtin(gtin, "--gtin"), text
    value = text.strip()
    scan = classify_scan(value)
    head, slash, serial = value.partition("/")
    if slash and scan.kind is not ScanKind.DIGITAL_LINK and len(head) <= 14:
        if not serial:
            raise InvalidArgument(where, f"{text!r}: the serial after '/' is empty")
        return normalize_gtin(head, where), serial
    if scan.kind is ScanKind.DIGITAL_LINK:
        pairs = parse_digital_link(scan.body, where)
    elif scan.kind is ScanKind.ELEMENT_STRING:
        pairs = parse_element_string(scan.body, where)
    elif scan.kind is ScanKind.HRI:
        pairs = parse_hri(scan.body, where)
    else:
        raise InvalidArgument(where, f"{text!r}: want {CODE_HELP} (or a serial with --gtin)")
    found = dict(pairs)
    if "01" not in found or "21" not in found:
        raise InvalidArgument(where, f"{text!r}: not a serialised code (needs AI 01 and AI 21)")
    return found["01"], found["21"]


def read_file(path: Path, gtin: str | None) -> list[tuple[str, str]]:
    """The codes in ``path``: ``.jsonl`` and ``.csv`` as ``sealmark issue --out`` writes them
    (a ``serial`` and a ``digital_link`` or ``element_string`` per row), any other file one
    code per line. Raises InvalidArgument naming ``--file`` and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument("--file", f"cannot read {path}: {exc}") from exc
    if path.suffix == ".jsonl":
        return [_row_code(row, f"--file {path}:{n}", gtin) for n, row in _json_rows(text, path)]
    if path.suffix == ".csv":
        rows = csv.DictReader(io.StringIO(text, newline=""))
        if "serial" not in (rows.fieldnames or []):
            raise InvalidArgument("--file", f"{path}: no 'serial' column in the header")
        return [_row_code(row, f"--file {path}:{n}", gtin) for n, row in enumerate(rows, 2)]
    return [
        parse_code(line.strip(" \t\r"), f"--file {path}:{n}", gtin)
        for n, line in enumerate(_lines(text), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _lines(text: str) -> list[str]:
    """Lines split at LF (and CRLF) only: str.splitlines also splits at GS (0x1D), the
    separator inside an element string."""
    return text.replace("\r\n", "\n").split("\n")


def _json_rows(text: str, path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidArgument("--file", f"{path}:{n}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise InvalidArgument("--file", f"{path}:{n}: want a JSON object per line")
        yield n, row


def _row_code(row: dict[str, Any], where: str, gtin: str | None) -> tuple[str, str]:
    serial = row.get("serial")
    if not isinstance(serial, str) or not serial:
        raise InvalidArgument(where, "no 'serial'")
    if gtin is not None:
        return normalize_gtin(gtin, "--gtin"), serial
    if isinstance(row.get("gtin"), str) and row["gtin"]:
        return normalize_gtin(row["gtin"], where), serial
    for key in ("digital_link", "element_string"):
        scanned = row.get(key)
        if isinstance(scanned, str) and scanned:
            found_gtin, found_serial = parse_code(scanned, where, None)
            if found_serial != serial:
                raise InvalidArgument(where, f"'serial' {serial!r} but {key} has {found_serial!r}")
            return found_gtin, serial
    raise InvalidArgument(where, "no 'gtin', 'digital_link' or 'element_string' (or give --gtin)")


def pool_codes(
    stub: issuer_pb2_grpc.IssuerStub, where: Endpoint, request_id: str
) -> list[tuple[str, str]]:
    """Every code of the pool ``request_id``, in order: GetPool for its parameters, then
    IssueCodes with the same request id and parameters, which replays the pool (exactly once
    per request id: never a new code)."""
    pool = stub.GetPool(issuer_pb2.GetPoolRequest(request_id=request_id), metadata=where.metadata)
    if pool.status == issuer_pb2.POOL_STATUS_MINTING:
        raise FailedPrecondition(f"pool {request_id} is still being minted; try again shortly")
    replay = issuer_pb2.IssueCodesRequest(
        request_id=pool.request_id,
        gtin=pool.gtin,
        lot=pool.lot,
        expiry=pool.expiry,
        production_date=pool.production_date,
        quantity=pool.quantity,
        line_id=pool.line_id,
        work_order=pool.work_order,
        batch_size=5000,
    )
    return [
        (response.gtin, code.serial)
        for response in stub.IssueCodes(replay, metadata=where.metadata)
        for code in response.codes
    ]
