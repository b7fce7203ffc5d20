from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from sealmark.clock import FixedClock
from sealmark.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from sealmark.storage.memory import MemoryStore
from sealmark.tenancy import usecases
from sealmark.tenancy.model import Principal, Role
from tests.storage_contract import gtin_under


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    clock = FixedClock(datetime(2026, 11, 1, tzinfo=UTC))
    usecases.create_tenant(
        s.unit_of_work,
        clock,
        tenant_id="acme",
        name="ACME",
        company_prefixes=["9520123"],
        resolver_host="id.acme.example",
    )
    usecases.create_tenant(
        s.unit_of_work,
        clock,
        tenant_id="other",
        name="Other",
        company_prefixes=["4012345"],
        resolver_host="id.other.example",
    )
    return s


CLOCK = FixedClock(datetime(2026, 11, 1, tzinfo=UTC))


def test_add_product_normalises_gtin_and_records_an_event(store: MemoryStore) -> None:
    product = usecases.add_product(
        store.unit_of_work, CLOCK, tenant_id="acme", gtin="9520123456788", name="Tonic"
    )
    assert product.gtin == "09520123456788"
    with store.unit_of_work() as uow:
        kinds = [e.kind for e in uow.events.read("acme")]
    assert kinds == ["tenant.created", "product.created"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"gtin": "04012345111118"}, "gtin"),
        ({"gtin": "09520123456789"}, "gtin"),
        ({"pack_level": "crate"}, "pack_level"),
        ({"serial_length": 30}, "Product.serial_length"),
    ],
)
def test_bad_products_name_the_field_and_write_nothing(
    store: MemoryStore, changes: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {"tenant_id": "acme", "gtin": "09520123456788", "name": "Tonic"}
    args.update(changes)
    with pytest.raises(InvalidArgument) as caught:
        usecases.add_product(store.unit_of_work, CLOCK, **args)  # type: ignore[arg-type]
    assert caught.value.field == field
    with store.unit_of_work() as uow:
        assert uow.products.list("acme") == []
        assert [e.kind for e in uow.events.read("acme")] == ["tenant.created"]


def test_tokens_authenticate_until_revoked(store: MemoryStore) -> None:
    token, value = usecases.create_token(
        store.unit_of_work,
        CLOCK,
        os.urandom,
        tenant_id="acme",
        roles=["line", "auditor"],
        name="l1",
    )
    principal = usecases.authenticate(store.unit_of_work, value)
    assert principal == Principal("acme", frozenset({Role.LINE, Role.AUDITOR}), token.id)
    with pytest.raises(Unauthenticated):
        usecases.authenticate(store.unit_of_work, value[:-1] + ("x" if value[-1] != "x" else "y"))
    with pytest.raises(NotFound):
        usecases.revoke_token(store.unit_of_work, CLOCK, tenant_id="other", token_id=token.id)
    usecases.revoke_token(store.unit_of_work, CLOCK, tenant_id="acme", token_id=token.id)
    with pytest.raises(Unauthenticated, match="invalid or revoked"):
        usecases.authenticate(store.unit_of_work, value)


def test_a_tokens_principal_by_id_until_revoked(store: MemoryStore) -> None:
    """What a dashboard session looks up on each request: the token by id, not its secret."""
    token, _ = usecases.create_token(
        store.unit_of_work, CLOCK, os.urandom, tenant_id="acme", roles=["auditor"], name="a1"
    )
    principal = usecases.principal_of_token(store.unit_of_work, token.id)
    assert principal == Principal("acme", frozenset({Role.AUDITOR}), token.id)
    with pytest.raises(Unauthenticated, match="invalid or revoked"):
        usecases.principal_of_token(store.unit_of_work, "nosuchtoken0")
    usecases.revoke_token(store.unit_of_work, CLOCK, tenant_id="acme", token_id=token.id)
    with pytest.raises(Unauthenticated, match="invalid or revoked"):
        usecases.principal_of_token(store.unit_of_work, token.id)


@pytest.mark.parametrize("roles", [[], ["superuser"]])
def test_bad_roles(store: MemoryStore, roles: list[str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        usecases.create_token(
            store.unit_of_work, CLOCK, os.urandom, tenant_id="acme", roles=roles, name="x"
        )
    assert caught.value.field == "roles"


def test_token_for_unknown_tenant(store: MemoryStore) -> None:
    with pytest.raises(NotFound):
        usecases.create_token(
            store.unit_of_work, CLOCK, os.urandom, tenant_id="ghost", roles=["line"], name="x"
        )


def test_product_for_checks_prefix_before_lookup(store: MemoryStore) -> None:
    usecases.add_product(
        store.unit_of_work, CLOCK, tenant_id="other", gtin="04012345111118", name="Theirs"
    )
    acme = Principal("acme", frozenset({Role.LINE}))
    with pytest.raises(PermissionDenied):
        usecases.product_for(store.unit_of_work, acme, "04012345111118")
    with pytest.raises(PermissionDenied):
        usecases.product_for(store.unit_of_work, acme, gtin_under("40123459"))
    with pytest.raises(NotFound):
        usecases.product_for(store.unit_of_work, acme, "09520123456788")


def test_duplicate_tenant(store: MemoryStore) -> None:
    with pytest.raises(AlreadyExists):
        usecases.create_tenant(
            store.unit_of_work,
            CLOCK,
            tenant_id="acme",
            name="again",
            company_prefixes=["9999999"],
            resolver_host="x.example",
        )
