"""Product links end to end: a brand registers links through the CLI and the Issuer's gRPC
API (real server, PostgreSQL), and the consumer page's resolver (real HTTP server) lists them
in the linkset, redirects to them by linkType, and shows the product and lot pages from the
same database."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sealmark.server.app import create_server
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.cli.main import main
from sealmark_app.root import binding_for
from sealmark_app.root.verifier import build_resolver, build_verifier
from tests.e2e.conftest import make_container
from tests.support.tenants import seed_tenant
from verifier.http import VerifyHttp, start_http

pytestmark = pytest.mark.e2e


def _md(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.fixture(scope="module")
def world(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(
        container.uow, container.clock, "links", tokens={"line": ["line"], "admin": ["admin"]}
    )
    other = seed_tenant(container.uow, container.clock, "rival", tokens={"admin": ["admin"]})
    running = create_server([binding_for("issuer", container)], container.authenticator)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = issuer_pb2_grpc.IssuerStub(channel)
    stub.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    issued = stub.IssueCodes(
        issuer_pb2.IssueCodesRequest(
            request_id="r-" + os.urandom(6).hex(),
            gtin=brand.gtin,
            lot="LOT-A",
            expiry="301231",
            quantity=2,
            line_id="line-1",
            work_order="WO-links",
        ),
        metadata=_md(brand.tokens["line"]),
        timeout=60,
    )
    codes = [c for r in issued for c in r.codes]
    page, _ = start_http(
        build_verifier(container), "127.0.0.1", 0, resolver=build_resolver(container)
    )
    yield {
        "stub": stub,
        "brand": brand,
        "other": other,
        "target": f"127.0.0.1:{running.port}",
        "page": page,
        "codes": codes,
    }
    page.stop()
    channel.close()
    running.stop(0)
    container.close()


def _get(page: VerifyHttp, path: str, **headers: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", page.port, timeout=10)
    try:
        connection.request(
            "GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def _cli(world: dict[str, Any], *args: str, token: str | None = None) -> int:
    token = token or world["brand"].tokens["admin"]
    return main(["--json", "links", *args, "--target", world["target"], "--token", token])


def test_links_registered_with_the_cli_are_resolved(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gtin, page = world["brand"].gtin, world["page"]
    links = tmp_path / "links.json"
    links.write_text(
        json.dumps(
            [
                {
                    "link_type": "gs1:epil",
                    "href": "https://brand.example/leaflet",
                    "title": "Leaflet",
                },
                {
                    "link_type": "gs1:pip",
                    "href": "https://brand.example/zh",
                    "title": "产品",
                    "lang": "zh-CN",
                },
            ]
        ),
        encoding="utf-8",
    )
    assert (
        _cli(world, "set", gtin, "--link", "gs1:pip", "https://brand.example/en", "Product", "en")
        == 0
    )
    assert _cli(world, "set", gtin, "--file", str(links)) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(row["link_type"], row["lang"]) for row in listed] == [
        ("gs1:pip", "en"),
        ("gs1:epil", ""),
        ("gs1:pip", "zh-CN"),
    ]

    status, headers, _ = _get(page, f"/01/{gtin}?linkType=gs1:pip", Accept_Language="zh-CN")
    assert status == 307 and headers["Location"] == "https://brand.example/zh"
    status, headers, body = _get(page, f"/01/{gtin}?linkType=linkset")
    assert status == 200 and headers["Content-Type"].startswith("application/linkset+json")
    (product,) = json.loads(body)["linkset"]
    assert [t["href"] for t in product["https://gs1.org/voc/pip"]] == [
        "https://brand.example/en",
        "https://brand.example/zh",
    ]
    status, _, body = _get(page, f"/01/{gtin}", Accept="application/json")
    facts = json.loads(body)
    assert status == 200 and facts["name"] and len(facts["links"]) == 3

    assert _cli(world, "delete", gtin, "gs1:epil", "https://brand.example/leaflet") == 0
    assert _get(page, f"/01/{gtin}?linkType=gs1:epil")[0] == 404
    assert _cli(world, "list", gtin) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])) == 2


def test_a_serialised_codes_linkset_and_its_lot_page(world: dict[str, Any]) -> None:
    code, page, gtin = world["codes"][0], world["page"], world["brand"].gtin
    path = code.digital_link.split("://", 1)[1].partition("/")[2]
    status, headers, body = _get(page, "/" + path, Accept="application/linkset+json")
    assert status == 200, body
    anchors = [entry["anchor"] for entry in json.loads(body)["linkset"]]
    assert anchors[0].endswith(f"/21/{code.serial}") and anchors[-1].endswith(f"/01/{gtin}")
    assert any("json-ld#context" in v for v in headers.get_all("Link") or [])
    status, _, body = _get(page, f"/01/{gtin}/10/LOT-A", Accept="application/json")
    assert status == 200 and json.loads(body)["lot"]["status"] == "released"
    world["stub"].HoldLot(
        issuer_pb2.LotHoldRequest(gtin=gtin, lot="LOT-A", reason="QC retest"),
        metadata=_md(world["brand"].tokens["line"]),
        timeout=10,
    )
    status, _, body = _get(page, f"/01/{gtin}/10/LOT-A", Accept_Language="en")
    assert status == 200 and "This lot is on hold" in body.decode() and "QC retest" in body.decode()


def test_bad_links_and_wrong_callers_are_refused(world: dict[str, Any]) -> None:
    stub, brand = world["stub"], world["brand"]
    bad = issuer_pb2.SetProductLinksRequest(
        gtin=brand.gtin,
        links=[
            issuer_pb2.ProductLink(link_type="gs1:pip", href="http://plain.example/", title="T")
        ],
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.SetProductLinks(bad, metadata=_md(brand.tokens["admin"]), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "SetProductLinksRequest.links[0].href" in (caught.value.details() or "")
    good = issuer_pb2.SetProductLinksRequest(
        gtin=brand.gtin,
        links=[issuer_pb2.ProductLink(link_type="gs1:faqs", href="https://b.example/", title="T")],
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.SetProductLinks(good, metadata=_md(brand.tokens["line"]), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListProductLinks(
            issuer_pb2.ListProductLinksRequest(gtin=brand.gtin),
            metadata=_md(world["other"].tokens["admin"]),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _cli(world, "set", brand.gtin, "--link", "gs1:nope", "https://b.example/", "T") == 2
