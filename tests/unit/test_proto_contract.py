"""The v1 contract: checked-in stubs are fresh, services are complete, field numbers unique."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FileDescriptor

from sealmark.protogen import PACKAGE, ROOT, generate
from sealmark.v1 import aggregator_pb2, audit_pb2, common_pb2, issuer_pb2, verifier_pb2

FILES: list[FileDescriptor] = [
    m.DESCRIPTOR for m in (common_pb2, issuer_pb2, aggregator_pb2, verifier_pb2, audit_pb2)
]

EXPECTED_RPCS = {
    "Issuer": {
        "GetProduct",
        "ListProducts",
        "IssueCodes",
        "RequestPool",
        "GetPool",
        "ReturnCodes",
        "ReportCommissioned",
        "ReportScrapped",
        "Reconcile",
        "HoldLot",
        "ReleaseLot",
        "AllocateSsccs",
        "GetKeySet",
        "RotateKey",
    },
    "Aggregator": {
        "Pack",
        "Unpack",
        "Replace",
        "Sample",
        "Rework",
        "PackStream",
        "Ship",
        "Receive",
        "Decommission",
        "UndoDecommission",
        "ListChildren",
        "GetCounts",
        "GetAncestors",
        "GetContainmentHistory",
    },
    "Verifier": {"Verify", "GetPublicKeySet"},
    "Audit": {
        "WatchAlerts",
        "ListAlerts",
        "AcknowledgeAlert",
        "ResolveAlert",
        "Trace",
        "Recall",
        "GetReport",
        "ExportEpcis",
        "GetCheckpoint",
        "GetInclusionProof",
        "GetConsistencyProof",
        "GetLogEntries",
    },
}


def test_checked_in_stubs_are_fresh(tmp_path: Path) -> None:
    fresh = {p.name: p.read_bytes() for p in generate(tmp_path)}
    checked_in = {p.name: p.read_bytes() for p in (ROOT / PACKAGE).iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(checked_in), "stubs are stale: run make proto"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert stale == [], "stubs are stale: run make proto"


@pytest.mark.parametrize("service", sorted(EXPECTED_RPCS))
def test_services_have_every_rpc(service: str) -> None:
    found = None
    for fd in FILES:
        if service in fd.services_by_name:
            found = fd.services_by_name[service]
    assert found is not None, service
    assert found.full_name == f"sealmark.v1.{service}"
    assert {m.name for m in found.methods} == EXPECTED_RPCS[service]


def _messages(descriptor: FileDescriptor | Descriptor) -> list[Descriptor]:
    children = (
        list(descriptor.message_types_by_name.values())
        if isinstance(descriptor, FileDescriptor)
        else list(descriptor.nested_types)
    )
    out = []
    for child in children:
        out.append(child)
        out.extend(_messages(child))
    return out


def test_field_numbers_and_names_are_unique_and_enums_start_unspecified() -> None:
    seen = 0
    for fd in FILES:
        for message in _messages(fd):
            numbers = [f.number for f in message.fields]
            assert len(numbers) == len(set(numbers)), message.full_name
            seen += len(numbers)
        for enum in fd.enum_types_by_name.values():
            assert enum.values_by_number[0].name.endswith("_UNSPECIFIED"), enum.full_name
    assert seen > 200


def test_streaming_shapes() -> None:
    issuer = issuer_pb2.DESCRIPTOR.services_by_name["Issuer"].methods_by_name
    assert issuer["IssueCodes"].server_streaming and not issuer["IssueCodes"].client_streaming
    assert issuer["ReportCommissioned"].client_streaming
    pack_stream = aggregator_pb2.DESCRIPTOR.services_by_name["Aggregator"].methods_by_name[
        "PackStream"
    ]
    assert pack_stream.client_streaming and pack_stream.server_streaming
    watch = audit_pb2.DESCRIPTOR.services_by_name["Audit"].methods_by_name["WatchAlerts"]
    assert watch.server_streaming
