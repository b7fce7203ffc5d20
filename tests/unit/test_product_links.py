"""Registered product links: the one validation (sealmark.gs1.links) and the Issuer's use
case (issuer.links) on the in-memory storage: ownership, idempotent writes, nothing written
when one link is bad."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from issuer.links import LinkKey, ProductLinks
from issuer.memory import MemoryIssuerStorage
from sealmark.clock import FixedClock
from sealmark.errors import InvalidArgument, NotFound, PermissionDenied
from sealmark.gs1.links import MAX_LINKS, ProductLink, checked_link, checked_links
from sealmark.storage.memory import MemoryStore
from sealmark.tenancy.model import Principal, Role
from tests.storage_contract import gtin_under
from tests.support.tenants import seed_tenant

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PIP = ProductLink("gs1:pip", "https://brand.example/tonic", "Tonic")


def test_a_link_is_normalised() -> None:
    link = checked_link(
        ProductLink(
            "https://gs1.org/voc/recipeInfo",
            "https://brand.example/r?x=1",
            "  Recipes ",
            "zh-cn",
            "retail",
            "TEXT/HTML",
        ),
        "links[0]",
    )
    assert link == ProductLink(
        "recipeInfo", "https://brand.example/r?x=1", "Recipes", "zh-CN", "retail", "text/html"
    )
    assert link.curie == "gs1:recipeInfo"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"link_type": "gs1:nope"}, "link_type", "GS1 Web Vocabulary"),
        ({"link_type": "schema:url"}, "link_type", "GS1 Web Vocabulary"),
        ({"link_type": "gs1:defaultLink"}, "link_type", "set by the resolver"),
        ({"link_type": "gs1:verificationService"}, "link_type", "set by the resolver"),
        ({"link_type": "gs1:productSustainabilityInfo"}, "link_type", "gs1:sustainabilityInfo"),
        ({"href": "http://brand.example/x"}, "href", "https://"),
        ({"href": "javascript:alert(1)"}, "href", "https://"),
        ({"href": "https://user:pw@brand.example/"}, "href", "password"),
        ({"href": "https://127.0.0.1/x"}, "href", "DNS host name"),
        ({"href": "https://localhost/x"}, "href", "DNS host name"),
        ({"href": "https://brand.example/a b"}, "href", "without spaces"),
        ({"href": 'https://brand.example/"><script>'}, "href", "without spaces"),
        ({"href": "https://brand.example/" + "a" * 1100}, "href", "at most 1024"),
        ({"href": ""}, "href", "required"),
        ({"title": "  "}, "title", "required"),
        ({"title": "x" * 201}, "title", "at most 200"),
        ({"title": "a\x07b"}, "title", "control"),
        ({"lang": "english"}, "lang", "registered BCP 47"),
        ({"lang": "en_GB"}, "lang", "BCP 47"),
        ({"lang": "xx-YY"}, "lang", "registered"),
        ({"context": "a b"}, "context", "A-Z"),
        ({"media_type": "html"}, "media_type", "media type"),
    ],
)
def test_a_bad_link_names_its_field(changes: dict[str, str], field: str, words: str) -> None:
    values = {"link_type": "gs1:pip", "href": "https://brand.example/", "title": "T"}
    values.update(changes)
    with pytest.raises(InvalidArgument) as caught:
        checked_link(ProductLink(**values), "links[3]")
    assert caught.value.field == f"links[3].{field}"
    assert words in caught.value.reason


def test_a_list_refuses_duplicates_and_more_than_the_limit() -> None:
    with pytest.raises(InvalidArgument, match=r"links\[1\].*twice"):
        checked_links([PIP, ProductLink("pip", PIP.href, "Other title")], "links")
    many = [ProductLink("pip", f"https://brand.example/{i}", "T") for i in range(MAX_LINKS + 1)]
    with pytest.raises(InvalidArgument, match="at most 100"):
        checked_links(many, "links")


@pytest.fixture
def world() -> tuple[ProductLinks, Principal, str, MemoryStore]:
    clock = FixedClock(NOW)
    tenancy = MemoryStore(clock)
    brand = seed_tenant(tenancy.unit_of_work, clock, "links", tokens={})
    principal = Principal(brand.tenant_id, frozenset({Role.ADMIN}), token_id="tok-admin")
    return ProductLinks(MemoryIssuerStorage(tenancy), clock), principal, brand.gtin, tenancy


def test_links_are_put_listed_and_deleted(
    world: tuple[ProductLinks, Principal, str, MemoryStore],
) -> None:
    links, admin, gtin, _ = world
    zh = ProductLink("pip", "https://brand.example/zh", "补品", "zh-CN")
    gtin14, now = links.put(admin, gtin, [PIP, zh], replace=False)
    assert gtin14 == gtin and [link.link_type for link in now] == ["pip", "pip"]
    assert links.put(admin, gtin, [PIP, zh], replace=False)[1] == now  # idempotent
    assert links.listed(admin, gtin) == (gtin, now)
    _, after = links.delete(admin, gtin, LinkKey("gs1:pip", "https://brand.example/zh", "zh-CN"))
    assert after == [now[0]]
    assert links.delete(admin, gtin, LinkKey("gs1:pip", "https://brand.example/zh", "zh-CN"))[
        1
    ] == [now[0]]
    _, replaced = links.put(admin, gtin, [], replace=True)
    assert replaced == []


def test_one_bad_link_writes_nothing(
    world: tuple[ProductLinks, Principal, str, MemoryStore],
) -> None:
    links, admin, gtin, _ = world
    bad = ProductLink("pip", "http://brand.example/", "Plain")
    with pytest.raises(InvalidArgument) as caught:
        links.put(admin, gtin, [PIP, bad], replace=False)
    assert caught.value.field == "SetProductLinksRequest.links[1].href"
    assert links.listed(admin, gtin)[1] == []
    with pytest.raises(InvalidArgument, match="at least one"):
        links.put(admin, gtin, [], replace=False)


def test_the_total_per_product_is_bounded(
    world: tuple[ProductLinks, Principal, str, MemoryStore],
) -> None:
    links, admin, gtin, _ = world
    first = [ProductLink("pip", f"https://brand.example/{i}", "T") for i in range(60)]
    more = [ProductLink("faqs", f"https://brand.example/{i}", "T") for i in range(60)]
    links.put(admin, gtin, first, replace=False)
    with pytest.raises(InvalidArgument, match="would have 120 links"):
        links.put(admin, gtin, more, replace=False)
    assert len(links.listed(admin, gtin)[1]) == 60


def test_only_the_owner_sees_or_writes_a_products_links(
    world: tuple[ProductLinks, Principal, str, MemoryStore],
) -> None:
    links, admin, gtin, tenancy = world
    other = seed_tenant(tenancy.unit_of_work, FixedClock(NOW), "other", tokens={})
    intruder = Principal(other.tenant_id, frozenset({Role.ADMIN}), token_id="tok-other")
    with pytest.raises(PermissionDenied):
        links.put(intruder, gtin, [PIP], replace=False)
    with pytest.raises(PermissionDenied):
        links.listed(intruder, gtin)
    # under the owner's prefix (its first product is item reference 0…0), never registered
    unregistered = gtin_under(gtin[1:-1].rstrip("0") + "7")
    assert unregistered != gtin
    with pytest.raises(NotFound):
        links.listed(admin, unregistered)
    with pytest.raises(InvalidArgument):
        links.listed(admin, "123")
