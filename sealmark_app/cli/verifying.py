"""``sealmark verify PAYLOAD``: ask the Verifier whether a code is genuine, as a consumer's
phone would (public gRPC, no token); or, with ``--offline --keys FILE``, check only the code's
signature against the brand's published key set, with no network at all.

Exit codes are for scripts: 0 the code passed (online AUTHENTIC or AUTHENTIC_SEEN_BEFORE;
offline a valid signature under a key that is not revoked), 1 the code was judged and did not
pass (any other verdict; offline a bad, missing or unknown-key signature, a revoked key, a
payload that is no code), 2 the question could not be asked (usage, an unreadable key file, a
failed call). A failed call is 2 whatever its status, unlike the other client commands: 1 must
never mean "the server was down".
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf.json_format import MessageToDict

from sealmark.clock import SystemClock
from sealmark.errors import InvalidArgument
from sealmark.settings import Settings
from sealmark.v1 import verifier_pb2, verifier_pb2_grpc
from sealmark_app.cli.output import rpc_failed
from sealmark_app.cli.transport import add_tls_options, open_channel
from sealmark_app.cli.verify_offline import (
    KeySet,
    OfflineCheck,
    Outcome,
    PublishedKey,
    check_offline,
    load_key_set,
    offline_document,
    parse_key_set,
    render_offline,
)

__all__ = [
    "STDIN_LIMIT",
    "KeySet",
    "OfflineCheck",
    "Outcome",
    "PublishedKey",
    "check_offline",
    "default_locale",
    "load_key_set",
    "parse_key_set",
    "render_response",
    "response_document",
    "run",
]

Verify = Callable[[verifier_pb2.VerifyRequest, str], verifier_pb2.VerifyResponse]
TIMEOUT_S = 10.0
STDIN_LIMIT = 65536  # far above any code (the Verifier takes 4096 bytes); bounds a stray pipe
PASSING = frozenset({verifier_pb2.VERDICT_AUTHENTIC, verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE})
KEYS_HELP = """\
key file (--keys), either of:
  - what `sealmark keys export --tenant T --out FILE` writes:
      {"tenant_id": ..., "keys": [{"key_id", "algorithm", "public_key" (hex),
       "created_at", "retired_at", "revoked_at", "revoke_reason"}, ...]}
  - the brand's HTTP key set:
      {"tenant": ..., "keys": [{"key_id", "algorithm", "public_key" (base64url),
       "created_at", "retired_at", "revoked_at"}, ...]}
Only Ed25519 keys. An offline check proves who signed the code, nothing more: the code's
state, recalls and clone signals (sessions, PIN reuse, travel) need the online check.

exit codes: 0 passed, 1 judged and did not pass, 2 usage error, bad key file or failed call
"""

HEADLINES: dict[str, dict[int, str]] = {
    "en": {
        verifier_pb2.VERDICT_AUTHENTIC: "genuine, first verification",
        verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE: "genuine, verified before",
        verifier_pb2.VERDICT_SUSPECT_CLONE: "suspect copy: this code may have been cloned",
        verifier_pb2.VERDICT_COUNTERFEIT: "counterfeit: not a genuine code",
        verifier_pb2.VERDICT_RECALLED: "recalled: do not use",
        verifier_pb2.VERDICT_EXPIRED: "expired",
        verifier_pb2.VERDICT_INACTIVE: "inactive: this item was taken out of circulation",
        verifier_pb2.VERDICT_DIVERTED: "genuine, but outside its destination market",
        verifier_pb2.VERDICT_INVALID: "not a code this verifier knows",
    },
    "zh-CN": {
        verifier_pb2.VERDICT_AUTHENTIC: "正品，首次验证",
        verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE: "正品，此前已验证过",
        verifier_pb2.VERDICT_SUSPECT_CLONE: "疑似复制码：此码可能被仿冒",
        verifier_pb2.VERDICT_COUNTERFEIT: "假冒：不是正品码",
        verifier_pb2.VERDICT_RECALLED: "已召回：请勿使用",
        verifier_pb2.VERDICT_EXPIRED: "已过期",
        verifier_pb2.VERDICT_INACTIVE: "已停用：此商品已退出流通",
        verifier_pb2.VERDICT_DIVERTED: "正品，但不在其目标销售市场（窜货）",
        verifier_pb2.VERDICT_INVALID: "无法识别的码",
    },
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = sub.add_parser(
        "verify",
        help="is this code genuine? (Verifier, gRPC; --offline: signature only)",
        description="Ask the Verifier for the verdict on a scanned code (public, no token),\n"
        "or with --offline --keys FILE check only its signature, without any network.",
        epilog=KEYS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument(
        "payload",
        metavar="PAYLOAD",
        help="as scanned: Digital Link URL, element string (with or without ]d2 / ]Q3, GS or ^ "
        "separators) or HRI text; - reads it from stdin (there also the first line of"
        " `sealmark issue --out codes.jsonl`)",
    )
    verify.add_argument("--pin", default=None, help="the hidden PIN under the scratch-off")
    verify.add_argument("--session", default="", help="session id: sessions are counted, not scans")
    verify.add_argument("--region", default="", help="where the scan happens, ISO 3166 (DE, CN-31)")
    verify.add_argument("--lat", type=float, default=None, help="latitude, WGS 84 (with --lon)")
    verify.add_argument("--lon", type=float, default=None, help="longitude, WGS 84 (with --lat)")
    verify.add_argument(
        "--locale",
        default=None,
        help="language of the answer: zh-CN or en (default from LC_ALL, LC_MESSAGES or LANG)",
    )
    verify.add_argument(
        "--target",
        default=None,
        help="host:port of the Verifier (default SEALMARK_GRPC_HOST:SEALMARK_GRPC_PORT)",
    )
    add_tls_options(verify)
    offline = verify.add_argument_group("offline check (signature only, no network)")
    offline.add_argument(
        "--offline", action="store_true", help="check the signature only, against --keys"
    )
    offline.add_argument(
        "--keys", type=Path, default=None, metavar="FILE", help="the brand's public keys (below)"
    )
    # SUPPRESS: when absent here, a `sealmark --json verify …` still counts.
    verify.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )


def default_locale(environ: Mapping[str, str]) -> str:
    """``zh-CN`` when the first of LC_ALL, LC_MESSAGES, LANG that is set names Chinese, else
    ``en`` (the two languages the Verifier answers in)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return "zh-CN" if value.lower().startswith("zh") else "en"
    return "en"


def read_payload(text: str, stdin: IO[str]) -> str:
    """PAYLOAD, or for ``-`` stdin's content without the line end a scanner or ``echo`` adds
    (a GS inside an element string is kept); a JSON object there is a line of
    ``sealmark issue --out codes.jsonl``, whose ``digital_link`` is the payload. Raises
    InvalidArgument naming PAYLOAD when it is empty, or over STDIN_LIMIT characters on stdin,
    or a JSON line without a code."""
    where = ""
    if text == "-":
        where = " (read from stdin)"
        text = stdin.read(STDIN_LIMIT + 1)
        if len(text) > STDIN_LIMIT:
            raise InvalidArgument("PAYLOAD", f"over {STDIN_LIMIT} characters{where}")
        text = text.rstrip("\r\n")
        if text.lstrip().startswith("{"):
            text = _issued_code(text)
    if not text.strip():
        raise InvalidArgument("PAYLOAD", f"empty{where}")
    return text


def _issued_code(text: str) -> str:
    """The code in a line of ``sealmark issue --out codes.jsonl`` (of several lines, the
    first: ``head -1 codes.jsonl | sealmark verify -``)."""
    line = text.lstrip().split("\n", 1)[0]
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidArgument("PAYLOAD", f"a JSON line that does not parse ({exc.msg})") from exc
    for key in ("digital_link", "element_string"):
        value = row.get(key) if isinstance(row, dict) else None
        if isinstance(value, str) and value:
            return value
    raise InvalidArgument("PAYLOAD", "a JSON line without 'digital_link' or 'element_string'")


def run(
    args: argparse.Namespace,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    verify: Verify | None = None,
    stdin: IO[str] | None = None,
) -> int:
    """Run ``sealmark verify``; see the module docstring for the exit codes. ``verify`` sends
    the request to a target (default: gRPC). Raises InvalidArgument for a usage error or a
    key file it cannot use (``--keys``, naming the file)."""
    if args.offline:
        _check_offline_options(args)  # before waiting on stdin
    elif args.keys is not None:
        raise InvalidArgument("--keys", "only with --offline (online, the Verifier holds the keys)")
    payload = read_payload(args.payload, sys.stdin if stdin is None else stdin)
    if args.offline:
        return _offline(args, payload)
    request = verify_request(args, payload, args.locale or default_locale(environ))
    target = args.target or f"{settings.grpc_host}:{settings.grpc_port}"
    try:
        response = (verify or _grpc_verify(args))(request, target)
    except grpc.RpcError as exc:
        rpc_failed(exc)
        return 2
    if args.json:
        print(json.dumps(response_document(response), ensure_ascii=False, sort_keys=True))
    else:
        sys.stdout.write(
            render_response(response, request.context.locale, pin_entered=request.HasField("pin"))
        )
    return 0 if response.verdict in PASSING else 1


def verify_request(
    args: argparse.Namespace, payload: str, locale: str
) -> verifier_pb2.VerifyRequest:
    """The VerifyRequest of the parsed options. Raises InvalidArgument naming whichever of
    ``--lat`` / ``--lon`` is missing when only one is given; the rest is the server's to
    check."""
    if (args.lat is None) != (args.lon is None):
        missing = "--lon" if args.lon is None else "--lat"
        raise InvalidArgument(missing, "missing: give --lat and --lon together")
    context = verifier_pb2.ClientContext(session_id=args.session, region=args.region, locale=locale)
    if args.lat is not None:
        context.latitude, context.longitude = args.lat, args.lon
    request = verifier_pb2.VerifyRequest(payload=payload, context=context)
    if args.pin is not None:
        request.pin = args.pin
    return request


def _grpc_verify(args: argparse.Namespace) -> Verify:
    """Verify over gRPC, plaintext or TLS as ``args`` say (:mod:`sealmark_app.cli.transport`)."""

    def send(request: verifier_pb2.VerifyRequest, target: str) -> verifier_pb2.VerifyResponse:
        with open_channel(target, args) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            response: verifier_pb2.VerifyResponse = stub.Verify(request, timeout=TIMEOUT_S)
            return response

    return send


def response_document(response: verifier_pb2.VerifyResponse) -> dict[str, Any]:
    """What ``--json`` prints online: the response as proto JSON with its own field names,
    scalar fields always present (``session_count: 0`` rather than nothing)."""
    return MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def render_response(
    response: verifier_pb2.VerifyResponse, locale: str, *, pin_entered: bool = False
) -> str:
    """The verdict for people: a headline (underlined) first, then why, the product, the
    serial's history and the verification id to quote to support. ``pin_entered``: the
    request carried a PIN (so an unconfirmed one is not prompted for again)."""
    name = _verdict_name(response.verdict)
    headlines = HEADLINES["zh-CN" if locale.lower().startswith("zh") else "en"]
    headline = f"{name}: {headlines.get(response.verdict, 'no verdict')}"
    lines = [headline, "=" * _display_width(headline)]
    if response.reasons:
        lines.append("reasons:")
        lines += [f"  - {r.message or r.code}  [{r.rule or r.code}]" for r in response.reasons]
    rows: list[tuple[str, str]] = []
    if response.HasField("product"):
        p = response.product
        facts = [
            ("product", p.name),
            ("brand", p.brand),
            ("gtin", p.gtin),
            ("lot", p.lot),
            ("expiry", p.expiry),
            ("produced", p.production_date),
        ]
        rows += [(label, value) for label, value in facts if value]
    if response.serial:
        rows.append(("serial", response.serial))
    if response.HasField("first_verified_at"):
        first = response.first_verified_at.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")
        where = f" in {response.first_verified_region}" if response.first_verified_region else ""
        rows.append(("first verified", first + where))
    elif response.verdict == verifier_pb2.VERDICT_AUTHENTIC:
        rows.append(("first verified", "now: this is the first verification"))
    if response.session_count:
        rows.append(("sessions", str(response.session_count)))
    if response.pin_confirmed:
        rows.append(("pin", "confirmed: first opening"))
    elif pin_entered:
        rows.append(("pin", "entered, not confirmed (see the reasons)"))
    elif response.pin_available:
        rows.append(("pin", "this item has a hidden PIN: verify again with --pin"))
    rows.append(("risk score", f"{response.risk_score:.2f}"))
    rows.append(("verification id", response.verification_id or "-"))
    width = max(len(label) for label, _ in rows)
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    if response.degraded:
        lines.append("note: answered in degraded mode (without its cache); the verdict stands")
    return "\n".join(lines) + "\n"


def _verdict_name(value: int) -> str:
    try:
        name: str = verifier_pb2.Verdict.Name(verifier_pb2.Verdict.ValueType(value))
    except ValueError:
        return f"VERDICT {value}"
    return name.removeprefix("VERDICT_")


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _check_offline_options(args: argparse.Namespace) -> None:
    for option, value in (
        ("--pin", args.pin),
        ("--session", args.session),
        ("--region", args.region),
        ("--lat", args.lat),
        ("--lon", args.lon),
        ("--locale", args.locale),
        ("--target", args.target),
        ("--ca", args.ca),
        ("--cert", args.cert),
        ("--key", args.key),
        ("--tls", args.tls or None),
    ):
        if value is not None and value != "":
            raise InvalidArgument(option, "not used by --offline: only the signature is checked")
    if args.keys is None:
        raise InvalidArgument("--keys", "--offline needs the brand's public keys: --keys FILE")


def _offline(args: argparse.Namespace, payload: str) -> int:
    keys = load_key_set(args.keys)
    check = check_offline(payload, keys, today=SystemClock().now().date())
    if args.json:
        print(json.dumps(offline_document(check, keys), ensure_ascii=False, sort_keys=True))
    else:
        sys.stdout.write(render_offline(check, keys))
    return 0 if check.trusted else 1
