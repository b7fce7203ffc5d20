"""The GS1 resolver on the consumer page, on a real socket (port 0): linksets, linkType
redirects and choices, 404 for unknown link types, the product, lot and SSCC pages, the Link
header of every Digital Link answer and the resolver description. The catalog is the
in-memory fake; the verifier the hand-written fake of test_verifier_http."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sealmark.gs1.links import ProductLink
from tests.unit.test_verifier_http import GTIN, LINK, SIGNATURE, FakeVerifier
from verifier.http import VerifyHttp, start_http
from verifier.memory_catalog import MemoryProductCatalog
from verifier.resolver import Resolver

UNKNOWN_GTIN = "09520123456795"
SSCC = "395201230000000012"
PIP_EN = ProductLink("pip", "https://brand.example/en/tonic", "Tonic", "en", "", "text/html")
PIP_ZH = ProductLink("pip", "https://brand.example/zh/tonic", "补品", "zh-CN", "", "text/html")
LEAFLET = ProductLink("epil", "https://brand.example/leaflet?v=2", "Leaflet <b>x</b>")


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def links(self) -> list[str]:
        return [v for k, v in self.headers.items() if k.lower() == "link"]

    def once(self, name: str) -> str:
        """The header's one value (a repeated CORS or cache header is a bug)."""
        (value,) = [v for k, v in self.headers.items() if k.lower() == name.lower()]
        return value


@pytest.fixture(scope="module")
def fake() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture(autouse=True)
def fresh(fake: FakeVerifier) -> None:
    fake.calls.clear()


@pytest.fixture(scope="module")
def server(fake: FakeVerifier) -> Iterator[VerifyHttp]:
    catalog = MemoryProductCatalog()
    catalog.add_tenant("acme", "Acme Drinks", ["952012"])
    catalog.add_product("acme", GTIN, "Demo Tonic 100 ml")
    catalog.set_links("acme", GTIN, [PIP_EN, PIP_ZH, LEAFLET])
    catalog.add_lot("acme", GTIN, "LOT1")
    catalog.add_lot("acme", GTIN, "LOT2")
    catalog.hold_lot("acme", GTIN, "LOT2", "QC retest", True)
    catalog.add_lot("acme", GTIN, "LOT3")
    catalog.recall_lot("acme", GTIN, "LOT3", "glass splinters found")
    running, _ = start_http(fake, "127.0.0.1", 0, resolver=Resolver(catalog))
    yield running
    running.stop()


def get(server: VerifyHttp, path: str, method: str = "GET", **headers: str) -> Reply:
    """One request; redirects are not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            method, path, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def _root(server: VerifyHttp) -> str:
    return f"http://127.0.0.1:{server.port}"


# ------------------------------------------------------------------- Link headers


def test_the_verification_page_links_its_linkset_and_default(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    reply = get(server, LINK)
    assert reply.status == 200 and 'data-verdict="authentic"' in reply.text
    (link,) = reply.links()
    anchor = f"{_root(server)}/01/{GTIN}/10/LOT1/21/ABC123"
    assert f'<{anchor}?linkType=linkset>; rel="linkset"; type="application/linkset+json"' in link
    assert f'<{anchor}?17=301231&8030={SIGNATURE}>; rel="https://gs1.org/voc/defaultLink"' in link
    assert 'rel="gs1:' not in link
    head = get(server, LINK, method="HEAD")
    assert head.status == 200 and head.links() == [link]
    assert len(fake.calls) == 1  # the HEAD verified nothing


def test_the_verification_service_is_the_verification_page(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    reply = get(server, LINK + "&linkType=gs1:verificationService")
    assert reply.status == 200 and 'data-verdict="authentic"' in reply.text
    assert len(fake.calls) == 1
    again = get(server, LINK + "&linkType=gs1:defaultLink")
    assert again.status == 200 and len(fake.calls) == 2


# ---------------------------------------------------------------------------- linkset


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("&linkType=linkset", {}),
        ("&linkType=all", {}),
        ("", {"Accept": "application/linkset+json"}),
    ],
)
def test_a_serialised_items_linkset_walks_up_to_the_product(
    server: VerifyHttp, fake: FakeVerifier, query: str, headers: dict[str, str]
) -> None:
    reply = get(server, LINK + query, **headers)
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"].startswith("application/linkset+json")
    assert reply.once("Access-Control-Allow-Origin") == "*"
    assert reply.once("Cache-Control") == "no-store"
    context = [v for v in reply.links() if "json-ld#context" in v]
    assert context and 'type="application/ld+json"' in context[0]
    entries = reply.json()["linkset"]
    root = _root(server)
    assert [e["anchor"] for e in entries] == [
        f"{root}/01/{GTIN}/10/LOT1/21/ABC123",
        f"{root}/01/{GTIN}/10/LOT1",
        f"{root}/01/{GTIN}",
    ]
    for entry in entries:
        (default,) = entry["https://gs1.org/voc/defaultLink"]
        assert set(default) == {"href", "title"} and default["title"]
        for relation, targets in entry.items():
            if relation.startswith("https://"):
                assert all(t["href"] and t["title"] for t in targets), relation
    serial, _, product = entries
    assert serial["https://gs1.org/voc/defaultLink"][0]["href"].endswith(f"8030={SIGNATURE}")
    assert serial["https://gs1.org/voc/verificationService"][0]["type"] == "text/html"
    assert product["https://gs1.org/voc/pip"] == [
        {"href": PIP_EN.href, "title": "Tonic", "type": "text/html", "hreflang": ["en"]},
        {"href": PIP_ZH.href, "title": "补品", "type": "text/html", "hreflang": ["zh-CN"]},
    ]
    assert product["description"] == "Demo Tonic 100 ml (Acme Drinks)"
    assert fake.calls == []  # asking for links is not a scan


def test_a_plain_json_client_gets_the_linkset_as_json(server: VerifyHttp) -> None:
    reply = get(server, f"/01/{GTIN}?linkType=linkset", Accept="application/json")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert reply.json()["linkset"][0]["anchor"].endswith(f"/01/{GTIN}")


# ------------------------------------------------------------------- linkType selection


def test_a_link_type_redirects_to_the_best_link_with_the_query_passed_on(
    server: VerifyHttp, fake: FakeVerifier
) -> None:
    reply = get(server, f"/01/{GTIN}?linkType=gs1:pip&utm=x", Accept_Language="zh-CN,en;q=0.5")
    assert reply.status == 307
    assert reply.headers["Location"] == PIP_ZH.href + "?utm=x"
    assert reply.once("Access-Control-Allow-Origin") == "*"
    assert "Location" in reply.once("Access-Control-Expose-Headers")
    assert any('rel="linkset"' in v for v in reply.links())
    english = get(server, f"/01/{GTIN}/10/LOT1?linkType=gs1%3Apip", Accept_Language="en-GB")
    assert english.status == 307 and english.headers["Location"] == PIP_EN.href
    uri = get(server, f"/01/{GTIN}?linkType=https://gs1.org/voc/epil")
    assert uri.status == 307 and uri.headers["Location"] == LEAFLET.href
    serial = get(server, LINK + "&linkType=gs1:epil")
    assert serial.status == 307
    assert serial.headers["Location"] == f"{LEAFLET.href}&17=301231&8030={SIGNATURE}"
    assert fake.calls == []


def test_links_that_fit_equally_answer_300_with_the_choices(server: VerifyHttp) -> None:
    reply = get(server, f"/01/{GTIN}?linkType=gs1:pip", Accept_Language="de")
    assert reply.status == 300
    assert PIP_EN.href in reply.text and PIP_ZH.href in reply.text
    assert 'hreflang="zh-CN"' in reply.text
    as_json = get(server, f"/01/{GTIN}?linkType=gs1:pip", Accept="application/json")
    assert as_json.status == 300
    (choice,) = as_json.json()["linkset"]
    assert [t["href"] for t in choice["https://gs1.org/voc/pip"]] == [PIP_EN.href, PIP_ZH.href]


@pytest.mark.parametrize(
    ("link_type", "words"),
    [
        ("gs1:nope", "not a GS1 link type"),
        ("schema:url", "not a GS1 link type"),
        ("gs1:recipeInfo", "no gs1:recipeInfo link"),
    ],
)
def test_an_unknown_or_unregistered_link_type_is_404(
    server: VerifyHttp, fake: FakeVerifier, link_type: str, words: str
) -> None:
    for path in (f"/01/{GTIN}?linkType={link_type}", LINK + f"&linkType={link_type}"):
        page = get(server, path, Accept_Language="en")
        assert page.status == 404, path
        assert "Page not found" in page.text and words in page.text
        assert page.headers["Cache-Control"] == "no-store"
        as_json = get(server, path, Accept="application/json")
        assert as_json.status == 404 and as_json.json()["error"] == "not_found"
        assert words in as_json.json()["message"]
        assert as_json.once("Access-Control-Allow-Origin") == "*"
    assert fake.calls == []


def test_a_link_type_of_an_unregistered_gtin_is_404(server: VerifyHttp) -> None:
    assert get(server, f"/01/{UNKNOWN_GTIN}?linkType=gs1:pip").status == 404
    assert get(server, f"/01/{UNKNOWN_GTIN}?linkType=linkset").status == 404


def test_a_malformed_link_asking_for_links_is_still_400(server: VerifyHttp) -> None:
    for path in (f"/01/{GTIN}/foo?linkType=linkset", f"/01/{GTIN}/21/%ZZ?linkType=gs1:pip"):
        reply = get(server, path, Accept_Language="en")
        assert reply.status == 400 and "This link is not a valid product code" in reply.text


# -------------------------------------------------------------- product and lot pages


def test_a_gtin_answers_its_product_page(server: VerifyHttp, fake: FakeVerifier) -> None:
    reply = get(server, f"/01/{GTIN}", Accept_Language="en")
    assert reply.status == 200 and '<html lang="en">' in reply.text
    page = reply.text
    for fact in ("Demo Tonic 100 ml", "Acme Drinks", GTIN, "No recall is in force"):
        assert fact in page
    assert f'href="{PIP_EN.href}"' in page and 'hreflang="zh-CN" lang="zh-CN"' in page
    assert "Leaflet &lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "only a code with a serial number" in page
    (link,) = reply.links()
    assert f'<{_root(server)}/01/{GTIN}>; rel="https://gs1.org/voc/defaultLink"' in link
    assert get(server, f"/01/{GTIN}/").status == 200  # a trailing slash is the same link
    assert get(server, f"/01/{GTIN[1:]}").status == 200  # GTIN-13
    assert fake.calls == []


def test_the_product_page_as_json(server: VerifyHttp) -> None:
    body = get(server, f"/01/{GTIN}", Accept="application/json").json()
    assert body["kind"] == "product" and body["gtin"] == GTIN
    assert body["name"] == "Demo Tonic 100 ml" and body["brand"] == "Acme Drinks"
    assert body["recalled"] is False
    assert body["links"][0] == {
        "linkType": "gs1:pip",
        "href": PIP_EN.href,
        "title": "Tonic",
        "type": "text/html",
        "hreflang": ["en"],
    }
    assert body["linkset"].endswith(f"/01/{GTIN}?linkType=linkset")


@pytest.mark.parametrize(
    ("lot", "status", "en", "zh"),
    [
        (
            "LOT1",
            "released",
            "No recall or hold is in force for this lot.",
            "该批次目前没有召回或暂停",
        ),
        ("LOT2", "held", "This lot is on hold by the brand", "已暂停放行"),
        ("LOT3", "recalled", "This lot has been recalled. Do not use it.", "该批次已被召回"),
        ("LOT9", "unknown", "The brand has no record of this lot.", "品牌没有该批次的记录"),
    ],
)
def test_a_lot_page_says_its_status_plainly(
    server: VerifyHttp, lot: str, status: str, en: str, zh: str
) -> None:
    page = get(server, f"/01/{GTIN}/10/{lot}", Accept_Language="en")
    assert page.status == 200 and en in page.text and lot in page.text
    assert get(server, f"/01/{GTIN}/10/{lot}", Accept_Language="zh-CN").text.count(zh) == 1
    body = get(server, f"/01/{GTIN}/10/{lot}", Accept="application/json").json()
    assert body["kind"] == "lot" and body["lot"]["status"] == status
    assert body["lot"]["message"].startswith(en) and body["message"] == body["lot"]["message"]
    if status == "recalled":
        assert "glass splinters found" in page.text and 'class="verdict tone-bad"' in page.text
        assert body["lot"]["recall_reason"] == "glass splinters found"
    if status == "held":
        assert "QC retest" in page.text and body["lot"]["hold_reason"] == "QC retest"


def test_an_unregistered_gtin_is_404(server: VerifyHttp) -> None:
    page = get(server, f"/01/{UNKNOWN_GTIN}", Accept_Language="en")
    assert page.status == 404 and "Page not found" in page.text
    assert "no product is registered" in page.text
    as_json = get(server, f"/01/{UNKNOWN_GTIN}/10/L1", Accept="application/json")
    assert as_json.status == 404 and as_json.json()["error"] == "not_found"


def test_an_sscc_answers_a_logistic_unit_page(server: VerifyHttp) -> None:
    page = get(server, f"/00/{SSCC}", Accept_Language="en")
    assert page.status == 200 and "Logistic unit label" in page.text and SSCC in page.text
    assert "Acme Drinks" in page.text
    body = get(server, f"/00/{SSCC}", Accept="application/json").json()
    assert body == {
        "kind": "sscc",
        "sscc": SSCC,
        "brand": "Acme Drinks",
        "linkset": f"{_root(server)}/00/{SSCC}?linkType=linkset",
    }
    entries = get(server, f"/00/{SSCC}?linkType=linkset").json()["linkset"]
    assert [e["anchor"] for e in entries] == [f"{_root(server)}/00/{SSCC}"]
    assert get(server, "/00/312345670000000016").status == 404  # no brand of ours
    assert get(server, f"/00/{SSCC}?10=LOT1").status == 200  # (10) is an attribute of (00)…
    assert get(server, f"/00/{SSCC}/10/LOT1").status == 400  # …not a path qualifier


def test_a_head_of_a_product_page_has_its_headers_and_no_body(server: VerifyHttp) -> None:
    head = get(server, f"/01/{GTIN}", method="HEAD")
    assert head.status == 200 and head.body == b"" and len(head.links()) == 1


def test_the_resolver_description_declares_what_is_answered(server: VerifyHttp) -> None:
    body = get(server, "/.well-known/gs1resolver").json()
    assert body["supportedPrimaryKeys"] == ["01", "00"]
    assert body["resolverRoot"] == _root(server)
    assert body["supportedLinkType"] == [{"namespace": "https://gs1.org/voc/", "prefix": "gs1:"}]
    assert body["linkTypeDefaultCanBeLinkset"] is False
