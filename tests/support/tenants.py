"""One brand for a test: a tenant with a company prefix no other test of the session uses, a
product under it, and tokens.

Each test session works in a database of its own (tests/pg_fixtures.py), so a counter is
enough to keep prefixes apart; random prefixes would collide now and then across modules."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

from sealmark.clock import Clock
from sealmark.storage.ports import UnitOfWorkFactory
from sealmark.tenancy import usecases
from tests.storage_contract import gtin_under

_NUMBERS = itertools.count(1)


def unique_prefix() -> str:
    """An 8-digit GS1 company prefix not handed out before in this process."""
    return f"9526{next(_NUMBERS):04d}"


@dataclass(frozen=True)
class Brand:
    tenant_id: str
    prefix: str
    gtin: str  # the product registered under the prefix
    tokens: dict[str, str]  # token name -> bearer token


def seed_tenant(
    uow: UnitOfWorkFactory,
    clock: Clock,
    slug: str,
    *,
    tokens: dict[str, list[str]] | None = None,
    serial_alphabet: str = "alnum-safe",
    serial_length: int = 12,
    pin_length: int = 6,
) -> Brand:
    """A tenant ``<slug>-<n>-<random>`` with one product and a token per entry of ``tokens``
    (name -> roles; default one ``line`` and one ``admin`` token). The random part keeps
    tenant-scoped Redis keys (rate limits, alert de-duplication) of one run apart from those
    of the runs before it: Redis is shared and outlives the session's database."""
    prefix = unique_prefix()
    tenant = usecases.create_tenant(
        uow,
        clock,
        tenant_id=f"{slug}-{prefix[-4:]}-{os.urandom(3).hex()}",
        name=slug,
        company_prefixes=[prefix],
        resolver_host=f"id.{slug}.example",
    )
    gtin = gtin_under(prefix)
    usecases.add_product(
        uow,
        clock,
        tenant_id=tenant.id,
        gtin=gtin,
        name=f"{slug} product",
        serial_alphabet=serial_alphabet,
        serial_length=serial_length,
        pin_length=pin_length,
    )
    wanted = tokens if tokens is not None else {"line": ["line"], "admin": ["admin"]}
    issued = {
        name: usecases.create_token(
            uow, clock, os.urandom, tenant_id=tenant.id, roles=roles, name=name
        )[1]
        for name, roles in wanted.items()
    }
    return Brand(tenant.id, prefix, gtin, issued)
