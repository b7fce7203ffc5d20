"""Line reports through gRPC: commission / scrap / return in streamed batches, idempotent per
batch and per code; lot holds; reconciliation; SSCC ranges."""

from __future__ import annotations

import os
from typing import Any

import grpc
import pytest

from sealmark.gs1 import validate_sscc
from sealmark.v1 import issuer_pb2
from tests.e2e.conftest import _md
from tests.e2e.test_issuance import _codes, _issue

pytestmark = pytest.mark.e2e
Code = grpc.StatusCode


def _report(world: dict[str, Any], rpc: str, *batches: issuer_pb2.CodeBatch) -> list[Any]:
    method = getattr(world["stub"], rpc)
    return list(method(iter(batches), metadata=_md(world["line"]), timeout=30))


def _batch(world: dict[str, Any], serials: list[str], **extra: Any) -> issuer_pb2.CodeBatch:
    return issuer_pb2.CodeBatch(
        batch_id="b-" + os.urandom(6).hex(),
        gtin=world["gtin"],
        serials=serials,
        line_id="line-1",
        **extra,
    )


def test_work_order_lifecycle_reconciles(world: dict[str, Any]) -> None:
    wo = "WO-rec-" + os.urandom(3).hex()
    serials = [c.serial for c in _codes(_issue(world, work_order=wo, quantity=20))]
    first = _batch(world, serials[:10])
    acks = _report(world, "ReportCommissioned", first, _batch(world, serials[10:12]))
    assert [(a.accepted, a.already_done, a.duplicate) for a in acks] == [
        (10, 0, False),
        (2, 0, False),
    ]
    again = _report(world, "ReportCommissioned", first)[0]  # resent batch: original ack
    assert (again.accepted, again.duplicate) == (10, True)
    overlap = _report(world, "ReportCommissioned", _batch(world, serials[8:13]))[0]
    assert (overlap.accepted, overlap.already_done) == (1, 4)
    scrapped = _report(world, "ReportScrapped", _batch(world, serials[13:15], reason="smudged"))
    assert scrapped[0].accepted == 2
    # A scrapped code can never be commissioned, a commissioned one never returned.
    bad = _report(world, "ReportCommissioned", _batch(world, serials[13:14]))[0]
    assert bad.accepted == 0 and bad.rejected[0].error_code == "FAILED_PRECONDITION"
    assert "is scrapped" in bad.rejected[0].reason
    ret = _report(
        world, "ReturnCodes", _batch(world, [], pool_request_id="x", all_outstanding=True)
    )
    assert ret[0].accepted == 0  # pool "x" does not exist: nothing outstanding there
    rec = world["stub"].Reconcile(
        issuer_pb2.ReconcileRequest(work_order=wo), metadata=_md(world["line"]), timeout=10
    )
    assert (rec.allocated, rec.commissioned, rec.scrapped, rec.returned, rec.outstanding) == (
        20,
        13,
        2,
        0,
        5,
    )
    assert not rec.balanced


def test_return_all_outstanding_balances_the_work_order(world: dict[str, Any]) -> None:
    wo = "WO-ret-" + os.urandom(3).hex()
    responses = _issue(world, work_order=wo, quantity=8)
    serials = [c.serial for c in _codes(responses)]
    _report(world, "ReportCommissioned", _batch(world, serials[:5]))
    ret = _report(
        world,
        "ReturnCodes",
        _batch(world, [], pool_request_id=responses[0].request_id, all_outstanding=True),
    )[0]
    assert ret.accepted == 3
    rec = world["stub"].Reconcile(
        issuer_pb2.ReconcileRequest(work_order=wo), metadata=_md(world["line"]), timeout=10
    )
    assert (rec.commissioned, rec.returned, rec.outstanding, rec.balanced) == (5, 3, 0, True)
    # Returned codes are never reissued or commissioned.
    late = _report(world, "ReportCommissioned", _batch(world, serials[5:6]))[0]
    assert late.rejected[0].error_code == "FAILED_PRECONDITION"


def test_unknown_and_foreign_codes_are_rejected_per_code(world: dict[str, Any]) -> None:
    ack = _report(world, "ReportCommissioned", _batch(world, ["NEVERISSUED1"]))[0]
    assert ack.accepted == 0 and ack.rejected[0].error_code == "NOT_FOUND"
    with pytest.raises(grpc.RpcError) as caught:
        _report(
            world,
            "ReportCommissioned",
            issuer_pb2.CodeBatch(batch_id="b-x", gtin="04012345111118", serials=["A"]),
        )
    assert caught.value.code() == Code.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("batch", "field"),
    [
        ({"batch_id": ""}, "CodeBatch.batch_id"),
        ({"serials": []}, "CodeBatch.serials"),
        ({"serials": ["has space"]}, "CodeBatch.serials"),
        ({"serials": ["x"] * 10_001}, "CodeBatch.serials"),
        ({"gtin": "123"}, "CodeBatch.gtin"),
    ],
)
def test_bad_batches_name_the_field(
    world: dict[str, Any], batch: dict[str, Any], field: str
) -> None:
    fields: dict[str, Any] = {"batch_id": "bad-1", "gtin": world["gtin"], "serials": ["A1"]}
    fields.update(batch)
    with pytest.raises(grpc.RpcError) as caught:
        _report(world, "ReportCommissioned", issuer_pb2.CodeBatch(**fields))
    assert caught.value.code() == Code.INVALID_ARGUMENT
    assert caught.value.details().startswith(field)


def test_held_lot_blocks_commissioning_and_issuance(world: dict[str, Any]) -> None:
    lot = "HOLD-" + os.urandom(2).hex()
    serials = [c.serial for c in _codes(_issue(world, lot=lot, quantity=3))]
    hold = world["stub"].HoldLot(
        issuer_pb2.LotHoldRequest(gtin=world["gtin"], lot=lot, reason="QC: assay pending"),
        metadata=_md(world["line"]),
        timeout=10,
    )
    assert hold.held
    ack = _report(world, "ReportCommissioned", _batch(world, serials))[0]
    assert ack.accepted == 0 and all("on hold" in r.reason for r in ack.rejected)
    with pytest.raises(grpc.RpcError) as caught:
        _issue(world, lot=lot, quantity=2)
    assert caught.value.code() == Code.FAILED_PRECONDITION
    assert caught.value.details().startswith("IssueCodesRequest.lot")
    world["stub"].ReleaseLot(
        issuer_pb2.LotHoldRequest(gtin=world["gtin"], lot=lot),
        metadata=_md(world["line"]),
        timeout=10,
    )
    assert _report(world, "ReportCommissioned", _batch(world, serials))[0].accepted == 3


def test_hold_needs_a_reason(world: dict[str, Any]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        world["stub"].HoldLot(
            issuer_pb2.LotHoldRequest(gtin=world["gtin"], lot="L9"),
            metadata=_md(world["line"]),
            timeout=10,
        )
    assert caught.value.code() == Code.INVALID_ARGUMENT
    assert caught.value.details().startswith("LotHoldRequest.reason")


def test_sscc_ranges_are_unique_valid_and_idempotent(world: dict[str, Any]) -> None:
    prefix = world["gtin"][1:9]
    first = world["stub"].AllocateSsccs(
        issuer_pb2.AllocateSsccsRequest(
            request_id="s-1", company_prefix=prefix, extension_digit=3, quantity=500
        ),
        metadata=_md(world["line"]),
        timeout=10,
    )
    second = world["stub"].AllocateSsccs(
        issuer_pb2.AllocateSsccsRequest(
            request_id="s-2", company_prefix=prefix, extension_digit=3, quantity=500
        ),
        metadata=_md(world["line"]),
        timeout=10,
    )
    retry = world["stub"].AllocateSsccs(
        issuer_pb2.AllocateSsccsRequest(
            request_id="s-1", company_prefix=prefix, extension_digit=3, quantity=500
        ),
        metadata=_md(world["line"]),
        timeout=10,
    )
    every = list(first.ssccs) + list(second.ssccs)
    assert len(set(every)) == 1000 and list(retry.ssccs) == list(first.ssccs)
    for sscc in every:
        assert validate_sscc(sscc) == sscc and sscc.startswith("3" + prefix)
    with pytest.raises(grpc.RpcError) as caught:
        world["stub"].AllocateSsccs(
            issuer_pb2.AllocateSsccsRequest(
                request_id="s-3", company_prefix="4012345", extension_digit=0, quantity=1
            ),
            metadata=_md(world["line"]),
            timeout=10,
        )
    assert caught.value.code() == Code.INVALID_ARGUMENT
    assert caught.value.details().startswith("AllocateSsccsRequest.company_prefix")


def test_offline_pool_is_minted_ahead_then_streamed_and_reconciled(world: dict[str, Any]) -> None:
    request_id = "pool-" + os.urandom(4).hex()
    fields = {
        "request_id": request_id,
        "gtin": world["gtin"],
        "lot": "LOT-1",
        "expiry": "301231",
        "quantity": 1200,
        "line_id": "line-7",
        "work_order": "WO-pool",
    }
    pool = world["stub"].RequestPool(
        issuer_pb2.RequestPoolRequest(**fields), metadata=_md(world["line"]), timeout=60
    )
    assert (pool.minted, pool.outstanding, pool.status) == (
        1200,
        1200,
        issuer_pb2.POOL_STATUS_READY,
    )
    again = world["stub"].RequestPool(
        issuer_pb2.RequestPoolRequest(**fields), metadata=_md(world["line"]), timeout=60
    )
    assert again.minted == 1200
    codes = _codes(_issue(world, **{k: v for k, v in fields.items()}))
    assert len(codes) == 1200
    _report(world, "ReportCommissioned", _batch(world, [c.serial for c in codes[:1000]]))
    _report(
        world, "ReturnCodes", _batch(world, [], pool_request_id=request_id, all_outstanding=True)
    )
    final = world["stub"].GetPool(
        issuer_pb2.GetPoolRequest(request_id=request_id), metadata=_md(world["line"]), timeout=10
    )
    assert (final.commissioned, final.returned, final.outstanding, final.status) == (
        1000,
        200,
        0,
        issuer_pb2.POOL_STATUS_CLOSED,
    )
