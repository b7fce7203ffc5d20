"""Compact-profile codes end to end: a product registered with the compact profile (CLI and
use case), its codes issued through gRPC with a MAC in AI (92) instead of a signature, printed
and read back from a real GS1 DataMatrix, and verified online by the Verifier."""

from __future__ import annotations

import io
import json
import os
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg2
import pytest
import zxingcpp
from PIL import Image

from issuer.domain.commands import IssueCommand
from issuer.labels import Label, Symbology, render_png
from sealmark.clock import FixedClock
from sealmark.crypto.mac import MacScheme, brand_master_key, decode_mac, product_key
from sealmark.errors import FailedPrecondition
from sealmark.server.app import create_server
from sealmark.tenancy import usecases
from sealmark.tenancy.model import CodeProfile, Principal, Role
from sealmark.v1 import common_pb2, issuer_pb2, issuer_pb2_grpc, verifier_pb2, verifier_pb2_grpc
from sealmark_app.root import binding_for
from sealmark_app.root.issuer import build_issuer
from sealmark_app.root.verifier import build_verifier
from tests.e2e.conftest import _md, make_container
from tests.storage_contract import gtin_under
from tests.support.cli import sealmark
from tests.support.tenants import seed_tenant
from verifier.domain import ClientContext, Rules, Verdict
from verifier.http import start_http

pytestmark = pytest.mark.e2e
V = verifier_pb2
MAC_SECRET = "e2e-test-mac-secret-0123456789abcdef"
GENEROUS = Rules(rate_per_minute=100_000, guess_limit=100_000)


@pytest.fixture(scope="module")
def world(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    clock = FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    container = make_container(pg_dsn, redis_url, SEALMARK_MAC_SECRET=MAC_SECRET)
    container.clock = clock
    brand = seed_tenant(container.uow, clock, "cmp", tokens={"line": ["line"], "admin": ["admin"]})
    tiny = usecases.add_product(
        container.uow,
        clock,
        tenant_id=brand.tenant_id,
        gtin=gtin_under(brand.prefix + "1"),
        name="Tiny vial",
        serial_alphabet="numeric",
        serial_length=12,
        code_profile="compact",
    )
    build_verifier(container).set_rules(brand.tenant_id, GENEROUS)
    running = create_server(
        [binding_for(n, container) for n in ("issuer", "verifier")], container.authenticator
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    world: dict[str, Any] = {
        "container": container,
        "issuer": issuer,
        "verifier": verifier_pb2_grpc.VerifierStub(channel),
        "brand": brand,
        "gtin": tiny.gtin,
        "dsn": pg_dsn,
        "redis": redis_url,
    }
    world["codes"] = _issue(world, "r-" + os.urandom(6).hex(), 8)
    _commission(world, world["codes"])
    yield world
    channel.close()
    running.stop(0)
    container.close()


def _issue(world: dict[str, Any], request_id: str, count: int) -> list[Any]:
    responses = world["issuer"].IssueCodes(
        issuer_pb2.IssueCodesRequest(
            request_id=request_id,
            gtin=world["gtin"],
            lot="LOT-C1",
            expiry="301231",
            quantity=count,
            line_id="line-1",
            work_order="WO-cmp",
        ),
        metadata=_md(world["brand"].tokens["line"]),
        timeout=60,
    )
    return [c for r in responses for c in r.codes]


def _commission(world: dict[str, Any], codes: list[Any]) -> None:
    batch = issuer_pb2.CodeBatch(
        batch_id="c-" + os.urandom(6).hex(), gtin=world["gtin"], serials=[c.serial for c in codes]
    )
    acks = list(
        world["issuer"].ReportCommissioned(
            iter([batch]), metadata=_md(world["brand"].tokens["line"]), timeout=30
        )
    )
    assert acks[0].accepted == len(codes)


def _verify(world: dict[str, Any], payload: str, session: str = "s-1") -> Any:
    request = V.VerifyRequest(payload=payload, context=V.ClientContext(session_id=session))
    return world["verifier"].Verify(request, timeout=10)


def _reasons(response: Any) -> set[str]:
    return {r.code for r in response.reasons}


def test_the_product_reports_its_profile(world: dict[str, Any]) -> None:
    product = world["issuer"].GetProduct(
        issuer_pb2.GetProductRequest(gtin=world["gtin"]),
        metadata=_md(world["brand"].tokens["line"]),
        timeout=10,
    )
    assert product.code_profile == common_pb2.CODE_PROFILE_COMPACT
    signed = world["issuer"].GetProduct(
        issuer_pb2.GetProductRequest(gtin=world["brand"].gtin),
        metadata=_md(world["brand"].tokens["line"]),
        timeout=10,
    )
    assert signed.code_profile == common_pb2.CODE_PROFILE_SIGNED


def test_compact_codes_carry_a_mac_in_ai_92_and_no_signature(world: dict[str, Any]) -> None:
    macs = MacScheme(MAC_SECRET.encode())
    tenant, gtin = world["brand"].tenant_id, world["gtin"]
    for code in world["codes"]:
        assert code.signature == "" and code.key_id == "01"
        assert len(code.serial) == 12 and code.serial.isdigit()
        assert code.element_string == f"01{gtin}21{code.serial}\x1d92{code.mac}"
        assert (
            code.digital_link == f"https://id.cmp.example/01/{gtin}/21/{code.serial}?92={code.mac}"
        )
        assert code.hri == f"(01){gtin}(21){code.serial}"
        key_id, tag = decode_mac(code.mac)
        assert key_id == code.key_id
        assert macs.matches(tenant, gtin, code.serial, key_id, tag)
    with psycopg2.connect(world["dsn"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT lot, expiry, signature FROM codes WHERE code_key = %s",
            (gtin + world["codes"][0].serial,),
        )
        row = cur.fetchone()
    assert row is not None
    lot, expiry, stored = row
    # Lot and expiry stay in the database; the symbol carries GTIN, serial and MAC only.
    assert (lot, expiry.isoformat(), stored) == ("LOT-C1", "2030-12-31", world["codes"][0].mac)


def test_a_retry_returns_the_same_compact_codes(world: dict[str, Any]) -> None:
    request_id = "r-" + os.urandom(6).hex()
    first = _issue(world, request_id, 5)
    again = _issue(world, request_id, 5)
    assert [(c.serial, c.mac, c.pin) for c in first] == [(c.serial, c.mac, c.pin) for c in again]


def test_the_printed_datamatrix_verifies(world: dict[str, Any]) -> None:
    code = world["codes"][0]
    png = render_png(Label(Symbology.DATAMATRIX, code.element_string, code.hri))
    (found,) = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png)), text_mode=zxingcpp.TextMode.Plain
    )
    extra = found.extra
    assert isinstance(extra, dict)
    assert extra["Version"] == "22x22"
    scanned = found.symbology_identifier + found.text
    first = _verify(world, scanned)
    assert first.verdict == V.VERDICT_AUTHENTIC, first
    assert (first.product.gtin, first.product.lot, first.product.expiry) == (
        world["gtin"],
        "LOT-C1",
        "2030-12-31",
    )
    again = _verify(world, code.digital_link)
    assert again.verdict == V.VERDICT_AUTHENTIC_SEEN_BEFORE, again


def test_a_wrong_mac_is_counterfeit_and_alerted(world: dict[str, Any]) -> None:
    code = world["codes"][1]
    digit = code.mac[-1]
    forged_mac = code.mac[:-1] + ("1" if digit != "1" else "2")
    forged = code.element_string.replace(code.mac, forged_mac)
    answer = _verify(world, forged)
    assert answer.verdict == V.VERDICT_COUNTERFEIT and _reasons(answer) == {"bad_mac"}
    assert not answer.HasField("product")
    # Another code's (valid) MAC on this serial is no better.
    swapped = code.digital_link.replace(code.mac, world["codes"][2].mac)
    assert _reasons(_verify(world, swapped)) == {"bad_mac"}
    # Nor is a malformed one, or one under a key id the brand never had.
    assert _reasons(_verify(world, forged.replace(forged_mac, forged_mac[:-1]))) == {"bad_mac"}
    unknown = _verify(world, code.element_string.replace(f"92{code.mac}", f"92zz{code.mac[2:]}"))
    assert unknown.verdict == V.VERDICT_COUNTERFEIT and _reasons(unknown) == {"unknown_key"}
    with psycopg2.connect(world["dsn"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT details->>'reason' FROM alerts WHERE tenant_id = %s AND code_key = %s"
            " AND kind = 'counterfeit'",
            (world["brand"].tenant_id, world["gtin"] + code.serial),
        )
        assert ("bad_mac",) in cur.fetchall()
    # The genuine code itself is untouched by the forgeries.
    assert _verify(world, code.element_string, session="owner").verdict == V.VERDICT_AUTHENTIC


def test_typed_in_hri_is_checked_by_serial_only(world: dict[str, Any]) -> None:
    code = world["codes"][3]
    answer = _verify(world, code.hri)
    assert answer.verdict == V.VERDICT_AUTHENTIC and "no_mac" in _reasons(answer)
    guessed = _verify(world, f"(01){world['gtin']}(21)000000000000")
    assert guessed.verdict == V.VERDICT_COUNTERFEIT and _reasons(guessed) == {"never_issued"}


def test_a_signature_on_a_compact_code_is_counterfeit(world: dict[str, Any]) -> None:
    code = world["codes"][4]
    payload = f"{code.element_string}\x1d8030{'01' + 'A' * 86}"
    answer = _verify(world, payload)
    assert answer.verdict == V.VERDICT_COUNTERFEIT and _reasons(answer) == {"bad_signature"}


def test_the_secret_and_keys_are_never_returned_or_logged(
    world: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    tenant, gtin = world["brand"].tenant_id, world["gtin"]
    master = brand_master_key(MAC_SECRET.encode(), tenant, "01")
    secrets = [MAC_SECRET, master.hex(), product_key(master, gtin).hex()]
    responses = [c.SerializeToString() for c in _issue(world, "r-" + os.urandom(6).hex(), 3)]
    responses.append(
        world["verifier"]
        .GetPublicKeySet(V.GetPublicKeySetRequest(gtin=gtin), timeout=10)
        .SerializeToString()
    )
    responses.append(
        _verify(world, world["codes"][5].element_string[:-1] + "0").SerializeToString()
    )
    container = world["container"]
    assert MAC_SECRET not in repr(container.secrets)
    out, err = capfd.readouterr()
    for secret in secrets:
        assert all(secret.encode() not in r for r in responses)
        assert all(bytes.fromhex(secret) not in r for r in responses if len(secret) == 64)
        assert secret not in out + err


def test_without_the_secret_compact_codes_are_refused(world: dict[str, Any]) -> None:
    container = make_container(world["dsn"], world["redis"])  # no SEALMARK_MAC_SECRET
    try:
        assert container.secrets.mac_secret is None
        line = Principal(world["brand"].tenant_id, frozenset({Role.LINE}))
        request_id = "r-" + os.urandom(6).hex()
        command = IssueCommand(request_id, world["gtin"], "LOT-C2", "301231", 3, "line-1", "WO")
        with pytest.raises(FailedPrecondition, match="SEALMARK_MAC_SECRET"):
            list(build_issuer(container).issue(line, command))
        with psycopg2.connect(world["dsn"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM issue_requests WHERE request_id = %s", (request_id,))
            assert cur.fetchone() == (0,)  # nothing written
        verifier = build_verifier(container)
        try:
            with pytest.raises(FailedPrecondition, match="SEALMARK_MAC_SECRET"):
                verifier.verify(world["codes"][6].element_string, None, ClientContext())
        finally:
            verifier.close()
    finally:
        container.close()


def test_the_cli_registers_a_compact_product(world: dict[str, Any]) -> None:
    gtin = gtin_under(world["brand"].prefix + "2")
    added = sealmark(
        "--json",
        "products",
        "add",
        "--tenant",
        world["brand"].tenant_id,
        "--gtin",
        gtin,
        "--name",
        "Sample sachet",
        "--profile",
        "compact",
        dsn=world["dsn"],
        redis_url=world["redis"],
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["code_profile"] == "compact"
    with world["container"].uow() as uow:
        assert uow.products.get(gtin).code_profile is CodeProfile.COMPACT
    bad = sealmark(
        "products",
        "add",
        "--tenant",
        world["brand"].tenant_id,
        "--gtin",
        gtin_under(world["brand"].prefix + "3"),
        "--name",
        "x",
        "--profile",
        "tiny",
        dsn=world["dsn"],
        redis_url=world["redis"],
    )
    assert bad.returncode != 0 and "--profile" in bad.stderr


def test_a_verdict_names_the_mac_rule(world: dict[str, Any]) -> None:
    verifier = build_verifier(world["container"])
    code = world["codes"][7]
    forged = code.element_string[:-1] + ("1" if code.element_string[-1] != "1" else "2")
    answer = verifier.verify(forged, None, ClientContext(session_id="rule"))
    assert answer.verdict is Verdict.COUNTERFEIT
    assert [r.rule for r in answer.reasons] == ["MAC over GTIN, serial and key id (compact code)"]


def test_a_key_rotation_rotates_the_mac_keys_and_old_codes_still_verify(
    world: dict[str, Any],
) -> None:
    # Leaves key 02 active for the tenant: no test after it issues codes.
    world["issuer"].RotateKey(
        issuer_pb2.RotateKeyRequest(), metadata=_md(world["brand"].tokens["admin"]), timeout=10
    )
    fresh = _issue(world, "r-" + os.urandom(6).hex(), 2)
    _commission(world, fresh)
    assert {c.key_id for c in fresh} == {"02"} and all(c.mac.startswith("02") for c in fresh)
    # The same serial's MAC under the old generation is a different number.
    old_macs = MacScheme(MAC_SECRET.encode()).encoder(world["brand"].tenant_id, "01", world["gtin"])
    assert old_macs(fresh[0].serial)[2:] != fresh[0].mac[2:]
    assert _verify(world, fresh[0].element_string, "rot").verdict == V.VERDICT_AUTHENTIC
    old = world["codes"][6]
    assert _verify(world, old.digital_link, "rot").verdict in (
        V.VERDICT_AUTHENTIC,
        V.VERDICT_AUTHENTIC_SEEN_BEFORE,
    )


def test_the_consumer_page_answers_a_compact_digital_link(world: dict[str, Any]) -> None:
    running, port = start_http(build_verifier(world["container"]), "127.0.0.1", 0)
    try:
        code = world["codes"][5]
        path = code.digital_link.removeprefix("https://id.cmp.example")
        answers = {}
        for name, link in (("genuine", path), ("forged", path[:-1] + str(9 - int(path[-1])))):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{link}", headers={"Accept": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                answers[name] = json.loads(response.read())
    finally:
        running.stop()
    assert answers["genuine"]["verdict"] in ("authentic", "authentic_seen_before")
    assert answers["forged"]["verdict"] == "counterfeit"
    assert [r["code"] for r in answers["forged"]["reasons"]] == ["bad_mac"]
