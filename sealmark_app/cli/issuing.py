"""``sealmark keys …`` (straight against the database, for operators) and ``sealmark issue``
(through the Issuer's gRPC API with a line token, as a line would)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import uuid
from pathlib import Path
from typing import IO, Any

import grpc
from tqdm import tqdm

from sealmark.errors import InvalidArgument
from sealmark.settings import Settings
from sealmark_app.cli.output import emit
from sealmark_app.cli.transport import add_tls_options, open_channel
from sealmark_app.root.container import Container


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="signing keys of a brand")
    ksub = keys.add_subparsers(dest="action", required=True)
    rotate = ksub.add_parser("rotate", help="add a new signing key; old codes keep verifying")
    rotate.add_argument("--tenant", required=True)
    rotate.add_argument("--request-id", default="", help="idempotency key for retries")
    rotate.add_argument(
        "--revoke-previous",
        action="store_true",
        help="the previous key is compromised: revoke it (offline checks stop trusting it)",
    )
    rotate.add_argument("--reason", default="", help="why (required with --revoke-previous)")
    klist = ksub.add_parser("list", help="the brand's public keys")
    klist.add_argument("--tenant", required=True)
    export = ksub.add_parser("export", help="write the public key set as a JSON file")
    export.add_argument("--tenant", required=True)
    export.add_argument("--out", required=True, type=Path)

    issue = sub.add_parser("issue", help="issue signed codes through the Issuer (gRPC)")
    issue.add_argument("--gtin", required=True)
    issue.add_argument("--lot", required=True)
    issue.add_argument("--expiry", required=True, help="YYMMDD (AI 17) or YYYY-MM-DD")
    issue.add_argument("--production-date", default="", help="YYMMDD (AI 11) or YYYY-MM-DD")
    issue.add_argument("--count", required=True, type=int)
    issue.add_argument("--line", default="cli", help="line id")
    issue.add_argument("--work-order", default="cli")
    issue.add_argument("--request-id", default=None, help="idempotency key (default: new)")
    issue.add_argument("--out", type=Path, default=None, help="codes.jsonl or codes.csv")
    issue.add_argument("--target", default=None, help="host:port of the Issuer")
    issue.add_argument("--token", default=None, help="line token (or SEALMARK_TOKEN)")
    add_tls_options(issue)
    issue.add_argument("--labels", type=Path, default=None, help="also write a label per code here")
    issue.add_argument("--symbology", choices=["qr", "datamatrix"], default="qr")
    issue.add_argument("--format", choices=["png", "svg"], default="png", dest="label_format")
    issue.add_argument("--covert-tenant", default=None, help=_COVERT_HELP)

    label = sub.add_parser("label", help="render one label (QR, GS1 DataMatrix, GS1-128)")
    label.add_argument("data", help="DL URI (qr), element string (datamatrix), 00+SSCC (gs1-128)")
    label.add_argument("--symbology", choices=["qr", "datamatrix", "gs1-128"], required=True)
    label.add_argument("--hri", default="", help="text under the symbol")
    label.add_argument("--out", type=Path, required=True, help="file.png or file.svg")
    label.add_argument("--covert-tenant", default=None, help=_COVERT_HELP)


_COVERT_HELP = (
    "hide this brand's covert mark in each QR (its key is derived from SEALMARK_SECRET_PEPPER);"
    " it shows a code re-generated from a leaked serial list, not a photocopy"
)


def _covert_key(tenant: str | None, settings: Settings) -> bytes | None:
    if tenant is None:
        return None
    from sealmark.crypto.covert import CovertKeys
    from sealmark.secrets import resolve_secrets

    if not tenant:
        raise InvalidArgument("--covert-tenant", "want a tenant id")
    return CovertKeys(resolve_secrets(settings).pepper).for_tenant(tenant)


def run_keys(args: argparse.Namespace, container: Container) -> int:
    from sealmark_app.root.issuer import build_issuer

    issuer = build_issuer(container)
    if args.action == "rotate":
        key = issuer.rotate_key(args.tenant, args.request_id, args.revoke_previous, args.reason)
        emit(
            {"key_id": key.key_id, "public_key": key.public_key, "created_at": key.created_at},
            args.json,
        )
        return 0
    keys = [
        {
            "key_id": k.key_id,
            "algorithm": "Ed25519",
            "public_key": k.public_key.hex(),
            "created_at": k.created_at,
            "retired_at": k.retired_at,
            "revoked_at": k.revoked_at,
            "revoke_reason": k.revoke_reason,
        }
        for k in issuer.key_set(args.tenant)
    ]
    if args.action == "list":
        emit(keys, args.json)
        return 0
    document = {
        "tenant_id": args.tenant,
        "keys": keys,
        "canonical_bytes": "sealmark-code-v1 LF gtin14 LF serial LF lot LF expiry LF key_id",
    }
    args.out.write_text(json.dumps(document, default=str, indent=2))
    emit({"written": str(args.out), "keys": len(keys)}, args.json)
    return 0


def _write_label(
    symbology: str, data: str, hri: str, out: Path, covert_key: bytes | None = None
) -> None:
    from issuer.labels import Label, Symbology, render_png, render_svg

    label = Label(Symbology(symbology), data, hri)
    if out.suffix == ".svg":
        out.write_text(render_svg(label, covert_key=covert_key), encoding="utf-8")
    elif out.suffix == ".png":
        out.write_bytes(render_png(label, covert_key=covert_key))
    else:
        raise InvalidArgument("--out", f"{out.name}: want a .png or .svg file")


def run_label(args: argparse.Namespace, settings: Settings) -> int:
    from sealmark.gs1 import build_hri, parse_digital_link, parse_element_string

    data = args.data.replace("\\x1d", "\x1d").replace("^", "\x1d").lstrip("\x1d")
    hri = args.hri
    if not hri:
        if args.symbology == "qr":
            pairs = parse_digital_link(data, "data")
        else:
            pairs = parse_element_string(data, "data")
        hri = build_hri([p for p in pairs if p[0] != "8030"])
    _write_label(args.symbology, data, hri, args.out, _covert_key(args.covert_tenant, settings))
    emit({"written": str(args.out)}, args.json)
    return 0


def _date_arg(value: str, field: str) -> str:
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value[2:4] + value[5:7] + value[8:10]
    if value and not (len(value) == 6 and value.isdigit()):
        raise InvalidArgument(field, f"{value!r}: want YYMMDD or YYYY-MM-DD")
    return value


def run_issue(args: argparse.Namespace, settings: Settings) -> int:
    from sealmark.v1 import issuer_pb2, issuer_pb2_grpc

    token = args.token or (settings.token.get_secret_value() if settings.token else None)
    if not token and args.cert is None:
        raise InvalidArgument(
            "--token", "a line token is required (or set SEALMARK_TOKEN, or present --cert)"
        )
    metadata = [("authorization", f"Bearer {token}")] if token else []
    target = args.target or f"{settings.grpc_host}:{settings.grpc_port}"
    covert_key = _covert_key(args.covert_tenant, settings)
    if covert_key is not None and (args.labels is None or args.symbology != "qr"):
        raise InvalidArgument("--covert-tenant", "a covert mark needs --labels and --symbology qr")
    out: IO[str] = sys.stdout if args.out is None else args.out.open("w", encoding="utf-8")
    writer: Any = None
    if args.out is not None and args.out.suffix == ".csv":
        writer = csv.writer(out)
        writer.writerow(["index", "serial", "element_string", "digital_link", "hri", "pin"])
    request = issuer_pb2.IssueCodesRequest(
        request_id=args.request_id or f"cli-{uuid.uuid4().hex[:16]}",
        gtin=args.gtin,
        lot=args.lot,
        expiry=_date_arg(args.expiry, "--expiry"),
        production_date=_date_arg(args.production_date, "--production-date"),
        quantity=args.count,
        line_id=args.line,
        work_order=args.work_order,
        batch_size=1000,
    )
    received = 0
    if args.labels is not None:
        args.labels.mkdir(parents=True, exist_ok=True)
    try:
        with (
            open_channel(target, args) as channel,
            tqdm(
                total=args.count, unit="codes", disable=args.out is None or not sys.stderr.isatty()
            ) as bar,
        ):
            stub = issuer_pb2_grpc.IssuerStub(channel)
            for response in stub.IssueCodes(request, metadata=metadata):
                for code in response.codes:
                    row = {
                        "index": code.index,
                        "serial": code.serial,
                        "element_string": code.element_string,
                        "digital_link": code.digital_link,
                        "hri": code.hri,
                        "pin": code.pin,
                    }
                    if args.labels is not None:
                        data = code.digital_link if args.symbology == "qr" else code.element_string
                        name = f"{code.index:07d}-{code.serial}.{args.label_format}"
                        _write_label(args.symbology, data, code.hri, args.labels / name, covert_key)
                    if writer is not None:
                        writer.writerow(row.values())
                    else:
                        out.write(json.dumps(row) + "\n")
                received += len(response.codes)
                bar.update(len(response.codes))
    except grpc.RpcError as exc:
        print(f"sealmark: {exc.code().name}: {exc.details()}", file=sys.stderr)
        print(
            f"sealmark: resume with --request-id {request.request_id} ({received} codes received)",
            file=sys.stderr,
        )
        return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"issued {received} codes (request id {request.request_id})", file=sys.stderr)
    return 0
