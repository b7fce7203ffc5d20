"""The resolver's pure rules (verifier.linkset): what a linkType asks, language and media
type negotiation, link selection (one link: redirect; equal ones: 300), the query passed on,
and the RFC 9264 linkset with one default link per anchor."""

from __future__ import annotations

import pytest

from sealmark.gs1.links import ProductLink
from verifier.linkset import (
    Anchor,
    Ask,
    LinkTypeAsk,
    accept_languages,
    accept_media_types,
    link_header,
    link_types_offered,
    linkset,
    product_anchor,
    read_link_type,
    redirect_target,
    select,
)

EN = ProductLink("pip", "https://b.example/en", "Info", "en")
EN_GB = ProductLink("pip", "https://b.example/gb", "Info (UK)", "en-GB")
ZH = ProductLink("pip", "https://b.example/zh", "信息", "zh-CN")
ANY = ProductLink("pip", "https://b.example/any", "Info")
PDF = ProductLink("epil", "https://b.example/l.pdf", "Leaflet", "", "", "application/pdf")
HTML = ProductLink("epil", "https://b.example/l.html", "Leaflet", "", "", "text/html")
CLINIC = ProductLink("epil", "https://b.example/pro", "Leaflet (pro)", "", "hcp", "text/html")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, LinkTypeAsk(Ask.DEFAULT)),
        ("", LinkTypeAsk(Ask.DEFAULT)),
        ("gs1:defaultLink", LinkTypeAsk(Ask.DEFAULT)),
        ("linkset", LinkTypeAsk(Ask.LINKSET)),
        ("all", LinkTypeAsk(Ask.LINKSET)),
        ("gs1:pip", LinkTypeAsk(Ask.TYPE, "pip")),
        ("https://gs1.org/voc/epil", LinkTypeAsk(Ask.TYPE, "epil")),
        ("https://ref.gs1.org/voc/recipeInfo", LinkTypeAsk(Ask.TYPE, "recipeInfo")),
        ("gs1:verificationService", LinkTypeAsk(Ask.TYPE, "verificationService")),
        ("gs1:nope", LinkTypeAsk(Ask.UNKNOWN, "gs1:nope")),
        ("pip", LinkTypeAsk(Ask.UNKNOWN, "pip")),
        ("schema:url", LinkTypeAsk(Ask.UNKNOWN, "schema:url")),
    ],
)
def test_what_a_link_type_asks(raw: str | None, expected: LinkTypeAsk) -> None:
    assert read_link_type(raw) == expected


def test_accept_language_is_ranked_by_q_then_order() -> None:
    header = "fr;q=0.5, zh-CN, en-GB;q=0.8, de;q=0, *;q=0.1"
    assert accept_languages(header) == ["zh-cn", "en-gb", "fr"]
    assert accept_languages("") == []
    assert accept_languages("en;q=oops") == []


def test_accept_media_types_keep_concrete_wanted_ones() -> None:
    header = "text/html, application/linkset+json;q=0.9, */*;q=0.1, image/png;q=0"
    assert accept_media_types(header) == ["text/html", "application/linkset+json"]


def test_one_fitting_link_is_chosen_by_language() -> None:
    links = [EN, ZH, ANY, PDF]
    assert select(links, "pip", languages=["zh-cn", "en"]) == [ZH]
    assert select(links, "pip", languages=["en-us"]) == [EN]  # en fits an en-US reader
    assert select([EN_GB, ZH], "pip", languages=["en"]) == [EN_GB]
    assert select(links, "pip", languages=["de"]) == [ANY]  # no German: the neutral link
    assert select(links, "pip") == [ANY]


def test_links_that_fit_equally_are_all_returned() -> None:
    assert select([EN, ZH], "pip", languages=["de"]) == [EN, ZH]  # 300: let the reader choose
    assert select([EN, EN_GB], "pip", languages=["en"]) == [EN, EN_GB]


def test_media_type_and_context_narrow_the_choice() -> None:
    links = [PDF, HTML, CLINIC]
    assert select(links, "epil") == [PDF, HTML]
    assert select(links, "epil", media_types=["application/pdf"]) == [PDF]
    assert select(links, "epil", context="hcp") == [CLINIC]
    assert select(links, "epil", context="unknown", media_types=["text/html"]) == [HTML]


def test_no_link_of_the_type_is_none() -> None:
    assert select([EN, PDF], "recipeInfo") == []


@pytest.mark.parametrize(
    ("href", "query", "expected"),
    [
        ("https://b.example/p", "", "https://b.example/p"),
        ("https://b.example/p", "linkType=gs1:pip", "https://b.example/p"),
        ("https://b.example/p", "linkType=gs1:pip&17=301231", "https://b.example/p?17=301231"),
        ("https://b.example/p?x=1", "a=b&linkType=x", "https://b.example/p?x=1&a=b"),
        ("https://b.example/p#top", "a=b", "https://b.example/p?a=b#top"),
    ],
)
def test_the_query_is_passed_on_less_link_type(href: str, query: str, expected: str) -> None:
    assert redirect_target(href, query) == expected


def test_the_linkset_has_one_title_only_default_link_per_anchor() -> None:
    product = product_anchor("https://id.example/01/09520123456788", "Tonic (Acme)", [EN, PDF])
    serial = Anchor("https://id.example/01/09520123456788/21/A1", "Tonic, serial A1")
    serial.add(
        "defaultLink",
        {"href": "https://id.example/01/09520123456788/21/A1?8030=S", "title": "Tonic"},
    )
    body = linkset([serial, product])
    assert [entry["anchor"] for entry in body["linkset"]] == [serial.uri, product.uri]
    for entry in body["linkset"]:
        defaults = entry["https://gs1.org/voc/defaultLink"]
        assert len(defaults) == 1 and set(defaults[0]) == {"href", "title"}
        assert entry["description"] == entry["itemDescription"]
    product_entry = body["linkset"][1]
    assert product_entry["https://gs1.org/voc/pip"] == [
        {"href": EN.href, "title": "Info", "hreflang": ["en"]}
    ]
    assert product_entry["https://gs1.org/voc/epil"] == [
        {"href": PDF.href, "title": "Leaflet", "type": "application/pdf"}
    ]
    assert link_types_offered([PDF, EN, ZH]) == ["gs1:epil", "gs1:pip"]


def test_the_link_header_names_the_linkset_and_the_default() -> None:
    header = link_header("https://id.example/01/1?linkType=linkset", "https://id.example/01/1")
    assert header == (
        '<https://id.example/01/1?linkType=linkset>; rel="linkset";'
        ' type="application/linkset+json", '
        '<https://id.example/01/1>; rel="https://gs1.org/voc/defaultLink"'
    )
    assert 'rel="gs1:' not in header  # CURIE relations in a Link header are deprecated
