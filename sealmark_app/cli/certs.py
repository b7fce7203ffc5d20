"""``sealmark certs add|list|revoke``: client certificates that stand for a brand and roles
(mutual TLS, see docs/tls.md), straight against the database, like ``sealmark tokens``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from cryptography import x509

from sealmark.errors import InvalidArgument
from sealmark.tenancy import cert_usecases
from sealmark.tenancy.certs import SAN_TYPES, MatchKind
from sealmark_app.cli.output import emit
from sealmark_app.root.container import Container


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = sub.add_parser("certs", help="client certificates (mutual TLS) of a brand and roles")
    csub = certs.add_subparsers(dest="action", required=True)
    add = csub.add_parser("add", help="register a certificate identity for a brand and roles")
    add.add_argument("--tenant", required=True)
    add.add_argument(
        "--role",
        action="append",
        required=True,
        dest="roles",
        help="line, logistics, auditor or admin (repeat for several)",
    )
    add.add_argument("--name", required=True, help="what the certificate is for, e.g. 'line 3'")
    which = add.add_mutually_exclusive_group(required=True)
    which.add_argument("--subject", help="subject DN, most specific first: 'CN=line-3,O=Acme'")
    typed = ", ".join(t + ":…" for t in SAN_TYPES)
    which.add_argument("--san", help=f"one subject alternative name, typed: {typed}")
    which.add_argument(
        "--from-cert", type=Path, metavar="PEM", help="take the subject DN of this certificate"
    )
    clist = csub.add_parser("list", help="a brand's registered certificates, revoked ones too")
    clist.add_argument("--tenant", required=True)
    revoke = csub.add_parser("revoke", help="revoke a registration by id (crt_…)")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("cert_id")


def run(args: argparse.Namespace, container: Container) -> int:
    uow, clock = container.uow, container.clock
    if args.action == "add":
        kind, value = _identity(args)
        emit(
            cert_usecases.register_client_cert(
                uow,
                clock,
                container.random_bytes,
                tenant_id=args.tenant,
                roles=args.roles,
                name=args.name,
                kind=kind,
                value=value,
            ),
            args.json,
        )
    elif args.action == "list":
        emit(cert_usecases.client_certs_of(uow, args.tenant), args.json)
    else:
        cert_usecases.revoke_client_cert(uow, clock, tenant_id=args.tenant, cert_id=args.cert_id)
        emit({"revoked": args.cert_id}, args.json)
    return 0


def _identity(args: argparse.Namespace) -> tuple[MatchKind, str]:
    if args.san is not None:
        return MatchKind.SAN, args.san
    if args.subject is not None:
        return MatchKind.SUBJECT, normalize_subject(args.subject, "--subject")
    path: Path = args.from_cert
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise InvalidArgument("--from-cert", f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise InvalidArgument("--from-cert", f"{path} holds no PEM certificate") from None
    return MatchKind.SUBJECT, cert.subject.rfc4514_string()


def normalize_subject(value: str, option: str) -> str:
    """The DN as TLS reports it (RFC 4514, OpenSSL's spelling): 'CN=a, O=b' → 'CN=a,O=b'.
    Raises InvalidArgument naming ``option``."""
    compact = re.sub(r"(?<!\\),\s+", ",", value.strip())
    try:
        return x509.Name.from_rfc4514_string(compact).rfc4514_string()
    except ValueError:
        raise InvalidArgument(option, f"{value!r} is not a DN like 'CN=line-3,O=Acme'") from None
