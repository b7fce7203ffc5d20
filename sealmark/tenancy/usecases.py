"""Tenancy use cases: register brands and products, mint and check API tokens.

Plain functions that take their ports (a unit-of-work factory, a clock, a randomness source).
Every write appends a domain event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sealmark.clock import Clock
from sealmark.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from sealmark.events import NewEvent
from sealmark.gs1 import normalize_gtin
from sealmark.storage.ports import UnitOfWork, UnitOfWorkFactory
from sealmark.tenancy.model import (
    ApiToken,
    CodeProfile,
    PackLevel,
    Principal,
    Product,
    Role,
    Tenant,
)
from sealmark.tenancy.tokens import RandomBytes, new_token, secret_matches, split_token


def _record(
    uow: UnitOfWork, clock: Clock, tenant_id: str, kind: str, subject: str, **payload: Any
) -> None:
    """Append the domain event of a change, in the change's own transaction."""
    uow.events.append(
        NewEvent(
            tenant_id=tenant_id,
            kind=kind,
            subject=subject,
            occurred_at=clock.now(),
            payload=payload,
        )
    )


def create_tenant(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    tenant_id: str,
    name: str,
    company_prefixes: Iterable[str],
    resolver_host: str,
) -> Tenant:
    """Register a brand. Raises InvalidArgument, or AlreadyExists (id taken, prefix overlap)."""
    tenant = Tenant(
        id=tenant_id,
        name=name,
        company_prefixes=tuple(dict.fromkeys(company_prefixes)),
        resolver_host=resolver_host,
        created_at=clock.now(),
    )
    with uow_factory() as uow:
        uow.tenants.add(tenant)
        _record(
            uow,
            clock,
            tenant.id,
            "tenant.created",
            f"tenant:{tenant.id}",
            name=tenant.name,
            company_prefixes=list(tenant.company_prefixes),
            resolver_host=tenant.resolver_host,
        )
        uow.commit()
    return tenant


def add_product(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    tenant_id: str,
    gtin: str,
    name: str,
    pack_level: str = PackLevel.ITEM.value,
    default_market: str | None = None,
    serial_alphabet: str = "numeric",
    serial_length: int = 12,
    pin_length: int = 6,
    code_profile: str = CodeProfile.SIGNED.value,
) -> Product:
    """Register a product under one of the tenant's prefixes. ``code_profile`` is ``signed``
    (Ed25519, offline-checkable) or ``compact`` (a MAC for small labels, online only).

    Raises InvalidArgument (bad field, or a GTIN outside the tenant's prefixes), NotFound
    (unknown tenant), AlreadyExists (GTIN registered).
    """
    gtin14 = normalize_gtin(gtin, "gtin")
    try:
        level = PackLevel(pack_level)
    except ValueError:
        wanted = ", ".join(p.value for p in PackLevel)
        raise InvalidArgument("pack_level", f"{pack_level!r}, want one of {wanted}") from None
    try:
        profile = CodeProfile(code_profile)
    except ValueError:
        wanted = ", ".join(p.value for p in CodeProfile)
        raise InvalidArgument("code_profile", f"{code_profile!r}, want one of {wanted}") from None
    with uow_factory() as uow:
        tenant = uow.tenants.get(tenant_id)
        if not tenant.owns_gtin(gtin14):
            raise InvalidArgument(
                "gtin",
                f"{gtin14} is not under a company prefix of tenant {tenant.id} "
                f"({', '.join(tenant.company_prefixes)})",
            )
        product = Product(
            tenant_id=tenant.id,
            gtin=gtin14,
            name=name,
            pack_level=level,
            default_market=default_market,
            serial_alphabet=serial_alphabet,
            serial_length=serial_length,
            pin_length=pin_length,
            created_at=clock.now(),
            code_profile=profile,
        )
        uow.products.add(product)
        _record(
            uow,
            clock,
            tenant.id,
            "product.created",
            f"gtin:{gtin14}",
            name=name,
            pack_level=level.value,
            code_profile=product.code_profile.value,
        )
        uow.commit()
    return product


def parse_roles(values: Iterable[str], field_name: str = "roles") -> frozenset[Role]:
    roles: set[Role] = set()
    for value in values:
        try:
            roles.add(Role(value.strip().lower()))
        except ValueError:
            wanted = ", ".join(r.value for r in Role)
            raise InvalidArgument(field_name, f"{value!r}, want one of {wanted}") from None
    if not roles:
        raise InvalidArgument(field_name, "at least one role is required")
    return frozenset(roles)


def create_token(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    random_bytes: RandomBytes,
    *,
    tenant_id: str,
    roles: Iterable[str],
    name: str,
) -> tuple[ApiToken, str]:
    """Mint a token; returns the stored record and the clear value (shown once, never stored)."""
    role_set = parse_roles(roles)
    if not name.strip() or len(name) > 100:
        raise InvalidArgument("name", "must be 1..100 characters")
    issued = new_token(random_bytes)
    token = ApiToken(
        id=issued.id,
        tenant_id=tenant_id,
        roles=role_set,
        name=name,
        secret_hash=issued.secret_hash,
        created_at=clock.now(),
    )
    with uow_factory() as uow:
        uow.tenants.get(tenant_id)
        uow.tokens.add(token)
        _record(
            uow,
            clock,
            tenant_id,
            "token.created",
            f"token:{token.id}",
            name=name,
            roles=sorted(r.value for r in role_set),
        )
        uow.commit()
    return token, issued.value


def revoke_token(
    uow_factory: UnitOfWorkFactory, clock: Clock, *, tenant_id: str, token_id: str
) -> None:
    """Revoke a tenant's token. Raises NotFound (also for another tenant's token)."""
    with uow_factory() as uow:
        token = uow.tokens.get(token_id)
        if token.tenant_id != tenant_id:
            raise NotFound(f"token {token_id} not found")
        uow.tokens.revoke(token_id, clock.now())
        _record(uow, clock, tenant_id, "token.revoked", f"token:{token_id}")
        uow.commit()


def authenticate(uow_factory: UnitOfWorkFactory, bearer: str) -> Principal:
    """Turn a presented token into a Principal. Raises Unauthenticated, with one message for
    every failure (unknown id, wrong secret, revoked) so a caller learns nothing from it."""
    token_id, secret = split_token(bearer)
    with uow_factory() as uow:
        try:
            token = uow.tokens.get(token_id)
        except NotFound:
            raise Unauthenticated("invalid or revoked token") from None
    if token.revoked_at is not None or not secret_matches(secret, token.secret_hash):
        raise Unauthenticated("invalid or revoked token")
    return Principal(tenant_id=token.tenant_id, roles=token.roles, token_id=token.id)


def principal_of_token(uow_factory: UnitOfWorkFactory, token_id: str) -> Principal:
    """The Principal a stored token stands for now, by its id (for a session that was opened
    with the token: the secret is not presented again). Raises Unauthenticated, one message
    for every failure, when the token is unknown or revoked."""
    with uow_factory() as uow:
        try:
            token = uow.tokens.get(token_id)
        except NotFound:
            raise Unauthenticated("invalid or revoked token") from None
    if token.revoked_at is not None:
        raise Unauthenticated("invalid or revoked token")
    return Principal(tenant_id=token.tenant_id, roles=token.roles, token_id=token.id)


def product_for(
    uow_factory: UnitOfWorkFactory, principal: Principal, gtin: str, *, field: str = "gtin"
) -> Product:
    """The caller's product with this GTIN.

    Ownership is decided from the tenant's prefixes *before* any lookup, so another tenant's
    GTIN is PermissionDenied whether or not it is registered: nothing leaks about existence.
    """
    gtin14 = normalize_gtin(gtin, field)
    with uow_factory() as uow:
        tenant = uow.tenants.get(principal.tenant_id)
        if not tenant.owns_gtin(gtin14):
            raise PermissionDenied(f"GTIN {gtin14} is not under your company prefixes")
        product = uow.products.get(gtin14)
    if product.tenant_id != principal.tenant_id:
        raise PermissionDenied(f"GTIN {gtin14} is not under your company prefixes")
    return product


def products_of(uow_factory: UnitOfWorkFactory, principal: Principal) -> list[Product]:
    with uow_factory() as uow:
        return list(uow.products.list(principal.tenant_id))
