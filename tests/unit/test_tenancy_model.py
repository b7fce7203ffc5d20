from __future__ import annotations

import pytest

from sealmark.errors import InvalidArgument, PermissionDenied
from sealmark.tenancy.model import PackLevel, Product, Tenant


def tenant(**changes: object) -> Tenant:
    fields: dict[str, object] = {
        "id": "acme",
        "name": "ACME",
        "company_prefixes": ("9520123", "0614141"),
        "resolver_host": "id.acme.example",
    }
    fields.update(changes)
    return Tenant(**fields)  # type: ignore[arg-type]


def test_owns_gtins_under_its_prefixes_only() -> None:
    acme = tenant()
    assert acme.owns_gtin("09520123456788")
    assert acme.owns_gtin("10614141073464")  # indicator digit 1, prefix 0614141
    assert not acme.owns_gtin("09501101531000")
    assert acme.owns_sscc("095201230000000013")
    assert not acme.owns_sscc("106141412345678908"[:1] + "9501101" + "0000000008")


def test_prefix_length_is_the_longest_matching_prefix() -> None:
    acme = tenant(company_prefixes=("952012", "9520123"))
    assert acme.prefix_length_for("09520123456788") == 7
    with pytest.raises(PermissionDenied):
        acme.prefix_length_for("04012345111118")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "ACME"}, "Tenant.id"),
        ({"id": "a"}, "Tenant.id"),
        ({"name": " "}, "Tenant.name"),
        ({"company_prefixes": ()}, "Tenant.company_prefixes"),
        ({"company_prefixes": ("12a456",)}, "Tenant.company_prefixes"),
        ({"company_prefixes": ("123",)}, "Tenant.company_prefixes"),
        ({"resolver_host": "https://id.acme.example"}, "Tenant.resolver_host"),
        ({"resolver_host": "id.acme.example/path"}, "Tenant.resolver_host"),
        ({"resolver_host": "<script>"}, "Tenant.resolver_host"),
    ],
)
def test_bad_tenants_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        tenant(**changes)
    assert caught.value.field == field


def test_resolver_host_may_carry_a_port() -> None:
    assert tenant(resolver_host="localhost:8080").resolver_host == "localhost:8080"


def test_product_serial_space() -> None:
    product = Product(
        "acme", "09520123456788", "Tonic", serial_alphabet="numeric", serial_length=12
    )
    assert product.serial_space == 10**12
    assert product.pack_level is PackLevel.ITEM


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"gtin": "9520123456788"}, "Product.gtin"),
        ({"name": ""}, "Product.name"),
        ({"default_market": "germany"}, "Product.default_market"),
        ({"serial_alphabet": "emoji"}, "Product.serial_alphabet"),
        ({"serial_length": 21}, "Product.serial_length"),
        ({"pin_length": 2}, "Product.pin_length"),
    ],
)
def test_bad_products_name_the_field(changes: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {"tenant_id": "acme", "gtin": "09520123456788", "name": "Tonic"}
    fields.update(changes)
    with pytest.raises(InvalidArgument) as caught:
        Product(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field
