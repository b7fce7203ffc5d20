"""IssueCodes end to end: real server, real PostgreSQL, codes checked with outside tools only
(cryptography for signatures, biip for GS1 parsing)."""

from __future__ import annotations

import os
import threading
from datetime import date
from typing import Any

import grpc
import psycopg2
import pytest
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_messages import GS1Message
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealmark.crypto.signature import canonical_bytes, decode_ai8030
from sealmark.v1 import issuer_pb2
from tests.e2e.conftest import _md
from tests.storage_contract import gtin_under

pytestmark = pytest.mark.e2e
Code = grpc.StatusCode
EXPIRY = "301231"


def _issue(world: dict[str, Any], **fields: Any) -> list[issuer_pb2.IssueCodesResponse]:
    base: dict[str, Any] = {
        "request_id": "r-" + os.urandom(6).hex(),
        "gtin": world["gtin"],
        "lot": "LOT-1",
        "expiry": EXPIRY,
        "quantity": 10,
        "line_id": "line-1",
        "work_order": "WO-1",
    }
    base.update(fields)
    return list(
        world["stub"].IssueCodes(
            issuer_pb2.IssueCodesRequest(**base), metadata=_md(world["line"]), timeout=120
        )
    )


def _codes(responses: list[issuer_pb2.IssueCodesResponse]) -> list[issuer_pb2.IssuedCode]:
    return [c for r in responses for c in r.codes]


def _keys(world: dict[str, Any]) -> dict[str, bytes]:
    key_set = world["stub"].GetKeySet(
        issuer_pb2.GetKeySetRequest(), metadata=_md(world["line"]), timeout=5
    )
    return {k.key_id: k.public_key for k in key_set.keys}


def _verify_offline(code: issuer_pb2.IssuedCode, gtin: str, keys: dict[str, bytes]) -> None:
    key_id, signature = decode_ai8030(code.signature)
    message = canonical_bytes(gtin, code.serial, "LOT-1", EXPIRY, key_id)
    Ed25519PublicKey.from_public_bytes(keys[key_id]).verify(signature, message)  # raises if bad


def test_codes_are_unique_signed_and_parse_with_biip(world: dict[str, Any]) -> None:
    responses = _issue(world, quantity=2500, batch_size=1000)
    assert [len(r.codes) for r in responses] == [1000, 1000, 500]
    codes = _codes(responses)
    assert [c.index for c in codes] == list(range(2500))
    assert len({c.serial for c in codes}) == 2500
    keys = _keys(world)
    for code in codes:
        _verify_offline(code, world["gtin"], keys)
        assert len(code.pin) == 6 and code.pin.isdigit()
    for code in codes[:50]:
        link = GS1DigitalLinkURI.parse(code.digital_link)
        parsed = {e.ai.ai: e.value for e in link.element_strings}
        assert parsed == {
            "01": world["gtin"],
            "10": "LOT-1",
            "21": code.serial,
            "17": EXPIRY,
            "8030": code.signature,
        }
        message = {e.ai.ai: e.value for e in GS1Message.parse(code.element_string).element_strings}
        assert message == parsed
        assert link.element_strings[3].date == date(2030, 12, 31)
        assert code.digital_link.startswith("https://id.iss.example/01/")


def test_retry_returns_the_same_codes_and_resume_skips(world: dict[str, Any]) -> None:
    first = _codes(_issue(world, request_id="retry-1", quantity=1200))
    again = _codes(_issue(world, request_id="retry-1", quantity=1200))
    assert [(c.serial, c.pin, c.signature) for c in again] == [
        (c.serial, c.pin, c.signature) for c in first
    ]
    tail = _codes(_issue(world, request_id="retry-1", quantity=1200, resume_from=777))
    assert [c.index for c in tail] == list(range(777, 1200))
    assert [c.serial for c in tail] == [c.serial for c in first[777:]]


def test_pins_are_stored_only_as_hashes(world: dict[str, Any]) -> None:
    codes = _codes(_issue(world, request_id="pins-1", quantity=5))
    with psycopg2.connect(world["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT code_key, pin_hash FROM codes WHERE request_id = 'pins-1'")
        rows = cur.fetchall()
        cur.execute("SELECT payload::text FROM domain_events WHERE request_id = 'pins-1'")
        events = " ".join(r[0] for r in cur.fetchall())
    assert len(rows) == 5
    for code in codes:
        assert code.pin not in events
    for _key, pin_hash in rows:
        assert len(bytes(pin_hash)) == 32
        assert all(c.pin.encode() not in bytes(pin_hash) for c in codes)


def test_same_request_id_with_other_parameters_is_refused(world: dict[str, Any]) -> None:
    _issue(world, request_id="reuse-1", quantity=3)
    with pytest.raises(grpc.RpcError) as caught:
        _issue(world, request_id="reuse-1", quantity=4)
    assert caught.value.code() == Code.FAILED_PRECONDITION


def _request_count(world: dict[str, Any]) -> int:
    with psycopg2.connect(world["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), (SELECT count(*) FROM codes) FROM issue_requests")
        row = cur.fetchone()
        assert row is not None
        return int(row[0]) * 10**9 + int(row[1])


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"quantity": 0}, Code.INVALID_ARGUMENT, "IssueCodesRequest.quantity"),
        ({"quantity": 10**9}, Code.INVALID_ARGUMENT, "IssueCodesRequest.quantity"),
        ({"lot": "LOT 1"}, Code.INVALID_ARGUMENT, "IssueCodesRequest.lot"),
        ({"lot": "x" * 21}, Code.INVALID_ARGUMENT, "IssueCodesRequest.lot"),
        ({"expiry": "200101"}, Code.INVALID_ARGUMENT, "IssueCodesRequest.expiry"),
        ({"expiry": "2030-12-31"}, Code.INVALID_ARGUMENT, "IssueCodesRequest.expiry"),
        ({"expiry": "301301"}, Code.INVALID_ARGUMENT, "IssueCodesRequest.expiry"),
        ({"gtin": "09520123456789"}, Code.INVALID_ARGUMENT, "IssueCodesRequest.gtin"),
        ({"gtin": "04012345111118"}, Code.PERMISSION_DENIED, ""),
        ({"request_id": ""}, Code.INVALID_ARGUMENT, "IssueCodesRequest.request_id"),
        ({"request_id": "a b"}, Code.INVALID_ARGUMENT, "IssueCodesRequest.request_id"),
        ({"line_id": "x" * 65}, Code.INVALID_ARGUMENT, "IssueCodesRequest.line_id"),
        ({"batch_size": 6000}, Code.INVALID_ARGUMENT, "IssueCodesRequest.batch_size"),
        ({"quantity": 5, "resume_from": 6}, Code.INVALID_ARGUMENT, "IssueCodesRequest.resume_from"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    world: dict[str, Any], fields: dict[str, Any], code: Code, field: str
) -> None:
    before = _request_count(world)
    with pytest.raises(grpc.RpcError) as caught:
        _issue(world, **fields)
    assert caught.value.code() == code
    assert caught.value.details().startswith(field)
    assert _request_count(world) == before


def test_unknown_gtin_under_own_prefix_is_not_found(world: dict[str, Any]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _issue(world, gtin=gtin_under(world["gtin"][1:9] + "77"))
    assert caught.value.code() == Code.NOT_FOUND


def test_guess_bound_refuses_and_writes_nothing(world: dict[str, Any]) -> None:
    before = _request_count(world)
    with pytest.raises(grpc.RpcError) as caught:
        _issue(world, gtin=world["small"], quantity=100)  # 100 / 10^6 = 1e-4: at the bound
    assert caught.value.code() == Code.RESOURCE_EXHAUSTED
    assert _request_count(world) == before
    assert len(_codes(_issue(world, gtin=world["small"], quantity=99))) == 99


def test_reported_guess_probability_matches_the_arithmetic(world: dict[str, Any]) -> None:
    product = world["stub"].GetProduct(
        issuer_pb2.GetProductRequest(gtin=world["gtin"]), metadata=_md(world["line"]), timeout=5
    )
    with psycopg2.connect(world["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM codes WHERE gtin = %s", (world["gtin"],))
        stored = cur.fetchone()
    assert stored is not None and product.serials_issued == stored[0] > 0
    assert product.guess_probability == pytest.approx(stored[0] / 56**12)


def test_concurrent_work_orders_never_share_a_serial(world: dict[str, Any]) -> None:
    results: dict[int, list[str]] = {}

    def run(n: int) -> None:
        codes = _codes(
            _issue(
                world,
                request_id=f"conc-{n}-{os.urandom(2).hex()}",
                work_order=f"WO-{n}",
                quantity=1500,
            )
        )
        results[n] = [c.serial for c in codes]

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == list(range(8))
    everything = [s for serials in results.values() for s in serials]
    assert len(everything) == 8 * 1500 == len(set(everything))


def test_rotation_keeps_old_codes_verifying(world: dict[str, Any]) -> None:
    before = _codes(_issue(world, quantity=3))
    rotated = world["stub"].RotateKey(
        issuer_pb2.RotateKeyRequest(), metadata=_md(world["admin"]), timeout=5
    )
    after = _codes(_issue(world, quantity=3))
    assert {c.key_id for c in after} == {rotated.key_id} != {c.key_id for c in before}
    keys = _keys(world)
    for code in before + after:
        _verify_offline(code, world["gtin"], keys)


def test_rotation_is_idempotent_by_request_id(world: dict[str, Any]) -> None:
    request_id = "rot-" + os.urandom(4).hex()
    first = world["stub"].RotateKey(
        issuer_pb2.RotateKeyRequest(request_id=request_id), metadata=_md(world["admin"]), timeout=5
    )
    again = world["stub"].RotateKey(
        issuer_pb2.RotateKeyRequest(request_id=request_id), metadata=_md(world["admin"]), timeout=5
    )
    assert again == first
    assert [k.key_id for k in _keys_full(world)].count(first.key_id) == 1
    with pytest.raises(grpc.RpcError) as caught:
        world["stub"].RotateKey(
            issuer_pb2.RotateKeyRequest(request_id=request_id, revoke_previous=True, reason="x"),
            metadata=_md(world["admin"]),
            timeout=5,
        )
    assert caught.value.code() == Code.ALREADY_EXISTS
    assert "RotateKeyRequest.request_id" in caught.value.details()


def test_revoking_a_key_stops_its_requests_and_shows_in_the_key_set(world: dict[str, Any]) -> None:
    request_id = "rev-" + os.urandom(4).hex()
    before = _codes(_issue(world, request_id=request_id, quantity=5))
    with pytest.raises(grpc.RpcError) as caught:
        world["stub"].RotateKey(
            issuer_pb2.RotateKeyRequest(revoke_previous=True),
            metadata=_md(world["admin"]),
            timeout=5,
        )
    assert caught.value.code() == Code.INVALID_ARGUMENT
    assert "RotateKeyRequest.reason" in caught.value.details()

    world["stub"].RotateKey(
        issuer_pb2.RotateKeyRequest(revoke_previous=True, reason="key file leaked"),
        metadata=_md(world["admin"]),
        timeout=5,
    )
    revoked = {k.key_id: k for k in _keys_full(world)}[before[0].key_id]
    assert revoked.HasField("revoked_at") and revoked.HasField("retired_at")
    with pytest.raises(grpc.RpcError) as caught:
        _issue(world, request_id=request_id, quantity=5)  # the line retries the old request
    assert caught.value.code() == Code.FAILED_PRECONDITION
    assert f"signing key {before[0].key_id} was revoked" in caught.value.details()
    fresh = _codes(_issue(world, quantity=2))
    assert fresh[0].key_id != before[0].key_id
    _verify_offline(fresh[0], world["gtin"], _keys(world))


def _keys_full(world: dict[str, Any]) -> list[Any]:
    key_set = world["stub"].GetKeySet(
        issuer_pb2.GetKeySetRequest(), metadata=_md(world["line"]), timeout=5
    )
    return list(key_set.keys)


def test_rotation_needs_admin(world: dict[str, Any]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        world["stub"].RotateKey(
            issuer_pb2.RotateKeyRequest(), metadata=_md(world["line"]), timeout=5
        )
    assert caught.value.code() == Code.PERMISSION_DENIED


def test_serial_report_matches_the_arithmetic(world: dict[str, Any]) -> None:
    def small() -> Any:
        report = world["stub"].GetSerialReport(
            issuer_pb2.GetSerialReportRequest(), metadata=_md(world["line"]), timeout=5
        )
        return next(p for p in report.products if p.gtin == world["small"])

    before = small()
    assert before.serial_space == 10**6 and before.bound == 1e-4
    assert before.guess_probability == pytest.approx(before.serials_issued / 10**6)
    assert before.remaining == 99 - before.serials_issued
    if before.remaining:
        _issue(world, gtin=world["small"], quantity=before.remaining)  # exactly up to the bound
    after = small()
    assert (after.serials_issued, after.remaining) == (99, 0)
    with pytest.raises(grpc.RpcError) as caught:
        _issue(world, gtin=world["small"], quantity=1)
    assert caught.value.code() == Code.RESOURCE_EXHAUSTED
