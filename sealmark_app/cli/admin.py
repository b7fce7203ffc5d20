"""``sealmark tenants|products|tokens``: brand administration, straight against the database."""

from __future__ import annotations

import argparse

from sealmark.tenancy import usecases
from sealmark.tenancy.alphabets import SERIAL_ALPHABETS
from sealmark.tenancy.model import CodeProfile, PackLevel
from sealmark_app.cli.output import emit
from sealmark_app.root.container import Container


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = sub.add_parser("tenants", help="brands and their GS1 company prefixes")
    tsub = tenants.add_subparsers(dest="action", required=True)
    create = tsub.add_parser("create", help="register a brand")
    create.add_argument("tenant_id", help="short id: a-z, 0-9, '-'")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--prefix",
        action="append",
        required=True,
        dest="prefixes",
        help="GS1 Company Prefix (repeat for several)",
    )
    create.add_argument("--resolver-host", required=True, help="host of the Digital Link URLs")
    tsub.add_parser("list", help="all brands")
    show = tsub.add_parser("show", help="one brand")
    show.add_argument("tenant_id")

    products = sub.add_parser("products", help="trade items (GTINs) of a brand")
    psub = products.add_subparsers(dest="action", required=True)
    add = psub.add_parser("add", help="register a product under the brand's prefixes")
    add.add_argument("--tenant", required=True)
    add.add_argument("--gtin", required=True, help="GTIN-8/12/13/14 with its check digit")
    add.add_argument("--name", required=True)
    add.add_argument("--pack-level", default="item", choices=[p.value for p in PackLevel])
    add.add_argument("--market", default=None, help="default market, ISO 3166 (e.g. DE, CN-31)")
    add.add_argument("--serial-alphabet", default="numeric", choices=sorted(SERIAL_ALPHABETS))
    add.add_argument("--serial-length", type=int, default=12)
    add.add_argument("--pin-length", type=int, default=6)
    add.add_argument(
        "--profile",
        default=CodeProfile.SIGNED.value,
        choices=[p.value for p in CodeProfile],
        help="signed: Ed25519 in AI 8030, checkable offline (default); compact: a 64-bit MAC"
        " in AI 92 for labels too small for a signature, checked online only",
    )
    plist = psub.add_parser("list", help="a brand's products")
    plist.add_argument("--tenant", required=True)
    pshow = psub.add_parser("show", help="one product")
    pshow.add_argument("gtin")

    tokens = sub.add_parser("tokens", help="API tokens scoped to one brand and roles")
    ksub = tokens.add_subparsers(dest="action", required=True)
    kcreate = ksub.add_parser("create", help="mint a token (shown once)")
    kcreate.add_argument("--tenant", required=True)
    kcreate.add_argument(
        "--role",
        action="append",
        required=True,
        dest="roles",
        help="line, logistics, auditor or admin (repeat for several)",
    )
    kcreate.add_argument("--name", required=True, help="what the token is for, e.g. 'line 3'")
    klist = ksub.add_parser("list", help="a brand's tokens (never their secrets)")
    klist.add_argument("--tenant", required=True)
    krevoke = ksub.add_parser("revoke", help="revoke a token by id")
    krevoke.add_argument("--tenant", required=True)
    krevoke.add_argument("token_id")


def run(args: argparse.Namespace, container: Container) -> int:
    uow, clock = container.uow, container.clock
    command, action = args.command, args.action
    if command == "tenants":
        if action == "create":
            emit(
                usecases.create_tenant(
                    uow,
                    clock,
                    tenant_id=args.tenant_id,
                    name=args.name,
                    company_prefixes=args.prefixes,
                    resolver_host=args.resolver_host,
                ),
                args.json,
            )
        elif action == "list":
            with uow() as u:
                emit(list(u.tenants.list()), args.json)
        else:
            with uow() as u:
                emit(u.tenants.get(args.tenant_id), args.json)
    elif command == "products":
        if action == "add":
            emit(
                usecases.add_product(
                    uow,
                    clock,
                    tenant_id=args.tenant,
                    gtin=args.gtin,
                    name=args.name,
                    pack_level=args.pack_level,
                    default_market=args.market,
                    serial_alphabet=args.serial_alphabet,
                    serial_length=args.serial_length,
                    pin_length=args.pin_length,
                    code_profile=args.profile,
                ),
                args.json,
            )
        elif action == "list":
            with uow() as u:
                u.tenants.get(args.tenant)
                emit(list(u.products.list(args.tenant)), args.json)
        else:
            from sealmark.gs1 import normalize_gtin

            with uow() as u:
                emit(u.products.get(normalize_gtin(args.gtin, "gtin")), args.json)
    elif action == "create":
        token, value = usecases.create_token(
            uow,
            clock,
            container.random_bytes,
            tenant_id=args.tenant,
            roles=args.roles,
            name=args.name,
        )
        emit(
            {
                "id": token.id,
                "tenant_id": token.tenant_id,
                "roles": token.roles,
                "name": token.name,
                "token": value,
            },
            args.json,
        )
    elif action == "list":
        with uow() as u:
            u.tenants.get(args.tenant)
            emit(list(u.tokens.list(args.tenant)), args.json)
    else:
        usecases.revoke_token(uow, clock, tenant_id=args.tenant, token_id=args.token_id)
        emit({"revoked": args.token_id}, args.json)
    return 0
