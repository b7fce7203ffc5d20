"""A product's code profile: signed by default, compact on request, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sealmark.clock import FixedClock
from sealmark.errors import InvalidArgument
from sealmark.storage.memory import MemoryStore
from sealmark.tenancy import usecases
from sealmark.tenancy.model import CodeProfile, Product

CLOCK = FixedClock(datetime(2026, 11, 1, tzinfo=UTC))


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    usecases.create_tenant(
        s.unit_of_work,
        CLOCK,
        tenant_id="acme",
        name="ACME",
        company_prefixes=["9520123"],
        resolver_host="id.acme.example",
    )
    return s


def test_products_are_signed_unless_registered_compact(store: MemoryStore) -> None:
    signed = usecases.add_product(
        store.unit_of_work, CLOCK, tenant_id="acme", gtin="9520123456788", name="Tonic"
    )
    compact = usecases.add_product(
        store.unit_of_work,
        CLOCK,
        tenant_id="acme",
        gtin="9520123000011",
        name="Vial",
        code_profile="compact",
    )
    assert signed.code_profile is CodeProfile.SIGNED
    assert compact.code_profile is CodeProfile.COMPACT
    with store.unit_of_work() as uow:
        assert uow.products.get(compact.gtin).code_profile is CodeProfile.COMPACT
        events = [e for e in uow.events.read("acme") if e.kind == "product.created"]
    assert [e.payload["code_profile"] for e in events] == ["signed", "compact"]


def test_an_unknown_profile_is_refused_naming_the_field(store: MemoryStore) -> None:
    with pytest.raises(InvalidArgument) as caught:
        usecases.add_product(
            store.unit_of_work,
            CLOCK,
            tenant_id="acme",
            gtin="9520123456788",
            name="Tonic",
            code_profile="tiny",
        )
    assert caught.value.field == "code_profile" and "signed, compact" in caught.value.reason
    with store.unit_of_work() as uow:
        assert list(uow.products.list("acme")) == []  # nothing written
    with pytest.raises(InvalidArgument) as direct:
        Product("acme", "09520123456788", "Tonic", code_profile="tiny")  # type: ignore[arg-type]
    assert direct.value.field == "Product.code_profile"
    # A stored row's text becomes the enum.
    from_text = Product("acme", "09520123456788", "x", code_profile="compact")  # type: ignore[arg-type]
    assert from_text.code_profile is CodeProfile.COMPACT
