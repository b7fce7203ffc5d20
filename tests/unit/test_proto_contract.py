"""The v1 contract: checked-in stubs are fresh, every RPC has its agreed shape and docs, writes
carry idempotency keys, and no field or enum number is ever reused across the contract's
committed history."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import (
    Descriptor,
    FileDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

from sealmark.protogen import PACKAGE, PROTO_DIR, ROOT, generate, generated_files
from sealmark.v1 import aggregator_pb2, audit_pb2, common_pb2, issuer_pb2, verifier_pb2

FILES: list[FileDescriptor] = [
    m.DESCRIPTOR for m in (common_pb2, issuer_pb2, aggregator_pb2, verifier_pb2, audit_pb2)
]
UNARY, SERVER, CLIENT, BIDI = "unary", "server-stream", "client-stream", "bidi"

# service → rpc → (request, response, stream kind). Adding an RPC means adding it here; an
# entry never changes once released.
EXPECTED_RPCS: dict[str, dict[str, tuple[str, str, str]]] = {
    "Issuer": {
        "GetProduct": ("GetProductRequest", "Product", UNARY),
        "ListProducts": ("ListProductsRequest", "ListProductsResponse", UNARY),
        "IssueCodes": ("IssueCodesRequest", "IssueCodesResponse", SERVER),
        "RequestPool": ("RequestPoolRequest", "Pool", UNARY),
        "GetPool": ("GetPoolRequest", "Pool", UNARY),
        "ReturnCodes": ("CodeBatch", "ReportSummary", BIDI),
        "ReportCommissioned": ("CodeBatch", "ReportSummary", BIDI),
        "ReportScrapped": ("CodeBatch", "ReportSummary", BIDI),
        "Reconcile": ("ReconcileRequest", "Reconciliation", UNARY),
        "HoldLot": ("LotHoldRequest", "LotHold", UNARY),
        "ReleaseLot": ("LotHoldRequest", "LotHold", UNARY),
        "AllocateSsccs": ("AllocateSsccsRequest", "AllocateSsccsResponse", UNARY),
        "GetKeySet": ("GetKeySetRequest", "KeySet", UNARY),
        "RotateKey": ("RotateKeyRequest", "PublicKey", UNARY),
        "GetSerialReport": ("GetSerialReportRequest", "SerialReport", UNARY),
        "SetProductMedia": ("SetProductMediaRequest", "ProductMedia", UNARY),
        "GetProductMedia": ("GetProductMediaRequest", "ProductMediaList", UNARY),
        "SetProductLinks": ("SetProductLinksRequest", "ProductLinks", UNARY),
        "ListProductLinks": ("ListProductLinksRequest", "ProductLinks", UNARY),
        "DeleteProductLink": ("DeleteProductLinkRequest", "ProductLinks", UNARY),
    },
    "Aggregator": {
        "Pack": ("PackRequest", "AggregationResult", UNARY),
        "Unpack": ("UnpackRequest", "AggregationResult", UNARY),
        "Replace": ("ReplaceRequest", "AggregationResult", UNARY),
        "Sample": ("SampleRequest", "AggregationResult", UNARY),
        "Rework": ("ReworkRequest", "AggregationResult", UNARY),
        "PackStream": ("PackStreamRequest", "PackAck", BIDI),
        "Ship": ("ShipRequest", "LogisticsResult", UNARY),
        "Receive": ("ReceiveRequest", "LogisticsResult", UNARY),
        "Decommission": ("DecommissionRequest", "LogisticsResult", UNARY),
        "UndoDecommission": ("UndoDecommissionRequest", "LogisticsResult", UNARY),
        "ListChildren": ("ListChildrenRequest", "ListChildrenResponse", SERVER),
        "GetCounts": ("GetCountsRequest", "GetCountsResponse", UNARY),
        "GetAncestors": ("GetAncestorsRequest", "GetAncestorsResponse", UNARY),
        "GetContainmentHistory": (
            "GetContainmentHistoryRequest",
            "GetContainmentHistoryResponse",
            UNARY,
        ),
    },
    "Verifier": {
        "Verify": ("VerifyRequest", "VerifyResponse", UNARY),
        "GetPublicKeySet": ("GetPublicKeySetRequest", "KeySet", UNARY),
        "VerifyImage": ("VerifyImageRequest", "VerifyImageResponse", UNARY),
    },
    "Audit": {
        "WatchAlerts": ("WatchAlertsRequest", "Alert", SERVER),
        "ListAlerts": ("ListAlertsRequest", "ListAlertsResponse", UNARY),
        "AcknowledgeAlert": ("AlertActionRequest", "Alert", UNARY),
        "ResolveAlert": ("AlertActionRequest", "Alert", UNARY),
        "Trace": ("TraceRequest", "TraceEntry", SERVER),
        "Recall": ("RecallRequest", "RecallReport", UNARY),
        "GetReport": ("ReportRequest", "ReportChunk", SERVER),
        "ExportEpcis": ("ExportEpcisRequest", "ExportChunk", SERVER),
        "GetCheckpoint": ("GetCheckpointRequest", "Checkpoint", UNARY),
        "GetInclusionProof": ("GetInclusionProofRequest", "InclusionProof", UNARY),
        "GetConsistencyProof": ("GetConsistencyProofRequest", "ConsistencyProof", UNARY),
        "GetLogEntries": ("GetLogEntriesRequest", "GetLogEntriesResponse", UNARY),
        "CreateWebhookEndpoint": ("CreateWebhookEndpointRequest", "WebhookEndpointSecret", UNARY),
        "ListWebhookEndpoints": (
            "ListWebhookEndpointsRequest",
            "ListWebhookEndpointsResponse",
            UNARY,
        ),
        "RotateWebhookSecret": ("RotateWebhookSecretRequest", "WebhookEndpointSecret", UNARY),
        "SetWebhookEndpointActive": ("SetWebhookEndpointActiveRequest", "WebhookEndpoint", UNARY),
        "ListWebhookDeliveries": (
            "ListWebhookDeliveriesRequest",
            "ListWebhookDeliveriesResponse",
            UNARY,
        ),
        "RetryWebhookDelivery": ("RetryWebhookDeliveryRequest", "WebhookDelivery", UNARY),
    },
}

# Writes a client may retry, and the request field that makes the retry a no-op. (HoldLot,
# ReleaseLot, AcknowledgeAlert and ResolveAlert are idempotent by the state they set.)
IDEMPOTENCY_KEYS = {
    "Issuer": {
        "IssueCodes": "request_id",
        "RequestPool": "request_id",
        "ReturnCodes": "batch_id",
        "ReportCommissioned": "batch_id",
        "ReportScrapped": "batch_id",
        "AllocateSsccs": "request_id",
        "RotateKey": "request_id",
    },
    "Aggregator": {
        name: "event_id"
        for name in (
            "Pack",
            "Unpack",
            "Replace",
            "Sample",
            "Rework",
            "Ship",
            "Receive",
            "Decommission",
            "UndoDecommission",
        )
    },
    "Audit": {"Recall": "request_id"},
}


def _service(name: str) -> ServiceDescriptor:
    for fd in FILES:
        if name in fd.services_by_name:
            return fd.services_by_name[name]
    raise AssertionError(f"service sealmark.v1.{name} is missing")


def _kind(method: MethodDescriptor) -> str:
    return {
        (False, False): UNARY,
        (False, True): SERVER,
        (True, False): CLIENT,
        (True, True): BIDI,
    }[(method.client_streaming, method.server_streaming)]


# -- (a) the checked-in stubs are what make proto produces ------------------------------------


def test_checked_in_stubs_are_fresh(tmp_path: Path) -> None:
    fresh = {p.name: p.read_bytes() for p in generate(tmp_path)}
    checked_in = {p.name: p.read_bytes() for p in generated_files(ROOT / PACKAGE)}
    missing = sorted(set(fresh) - set(checked_in))
    extra = sorted(set(checked_in) - set(fresh))
    differ = sorted(n for n in set(fresh) & set(checked_in) if fresh[n] != checked_in[n])
    assert (missing, extra, differ) == ([], [], []), (
        f"stubs are stale: run make proto (missing {missing}, extra {extra}, differ {differ})"
    )


def test_every_proto_is_compiled_into_the_stubs() -> None:
    names = {fd.name for fd in FILES}
    on_disk = {p.relative_to(PROTO_DIR).as_posix() for p in (PROTO_DIR / PACKAGE).glob("*.proto")}
    assert names == on_disk


# -- (b) every service and RPC, with its request, response and stream kind -------------------


@pytest.mark.parametrize("service", sorted(EXPECTED_RPCS))
def test_service_has_exactly_the_agreed_rpcs(service: str) -> None:
    found = _service(service)
    assert found.full_name == f"sealmark.v1.{service}"
    actual = {m.name: (m.input_type.name, m.output_type.name, _kind(m)) for m in found.methods}
    assert actual == EXPECTED_RPCS[service]
    for m in found.methods:
        assert m.input_type.full_name.startswith("sealmark.v1."), m.full_name
        assert m.output_type.full_name.startswith("sealmark.v1."), m.full_name


@pytest.mark.parametrize(
    ("service", "rpc", "key"),
    [(s, r, k) for s, rpcs in IDEMPOTENCY_KEYS.items() for r, k in rpcs.items()],
)
def test_retryable_writes_carry_an_idempotency_key(service: str, rpc: str, key: str) -> None:
    request = _service(service).methods_by_name[rpc].input_type
    field = request.fields_by_name.get(key)
    assert field is not None, f"{request.full_name} has no {key}"
    assert field.type == field.TYPE_STRING and not field.is_repeated


def test_every_pack_stream_event_carries_an_event_id() -> None:
    request = aggregator_pb2.PackStreamRequest.DESCRIPTOR
    events = request.oneofs_by_name["event"].fields
    assert {f.name for f in events} >= {"pack", "unpack"}
    for field in events:
        assert field.message_type is not None, field.full_name
        assert "event_id" in field.message_type.fields_by_name, field.full_name
    assert "event_id" in aggregator_pb2.PackAck.DESCRIPTOR.fields_by_name


def test_verdicts_are_the_product_vocabulary() -> None:
    names = [v.name for v in verifier_pb2.Verdict.DESCRIPTOR.values]
    assert names == [
        f"VERDICT_{n}"
        for n in (
            "UNSPECIFIED",
            "AUTHENTIC",
            "AUTHENTIC_SEEN_BEFORE",
            "SUSPECT_CLONE",
            "COUNTERFEIT",
            "RECALLED",
            "EXPIRED",
            "INACTIVE",
            "DIVERTED",
            "INVALID",
        )
    ]


def test_code_ref_is_a_oneof_of_sgtin_and_sscc() -> None:
    oneof = common_pb2.CodeRef.DESCRIPTOR.oneofs_by_name["key"]
    assert {f.name for f in oneof.fields} >= {"sgtin", "sscc"}


def test_presence_is_tracked_where_absent_differs_from_empty() -> None:
    assert verifier_pb2.VerifyRequest.DESCRIPTOR.fields_by_name["pin"].has_presence
    context = verifier_pb2.ClientContext.DESCRIPTOR.fields_by_name
    assert context["latitude"].has_presence and context["longitude"].has_presence


# -- (c) numbering: enums, and no number ever reused across the committed history ---------------


def _messages(descriptor: FileDescriptor | Descriptor) -> Iterator[Descriptor]:
    children = (
        descriptor.message_types_by_name.values()
        if isinstance(descriptor, FileDescriptor)
        else descriptor.nested_types
    )
    for child in children:
        yield child
        yield from _messages(child)


def test_enums_start_unspecified_and_values_carry_the_enum_prefix() -> None:
    count = 0
    for fd in FILES:
        enums = list(fd.enum_types_by_name.values())
        enums += [e for m in _messages(fd) for e in m.enum_types]
        for enum in enums:
            prefix = "".join(
                f"_{c}" if c.isupper() and i else c for i, c in enumerate(enum.name)
            ).upper()
            assert enum.values_by_number[0].name == f"{prefix}_UNSPECIFIED", enum.full_name
            for value in enum.values:
                assert value.name.startswith(f"{prefix}_"), value.name
            count += 1
    assert count >= 10


def _compile(proto_root: Path, out: Path) -> descriptor_pb2.FileDescriptorSet | None:
    """The descriptor set of every .proto under proto_root; None when protoc rejects them."""
    import grpc_tools
    from grpc_tools import protoc

    sources = sorted(p.relative_to(proto_root).as_posix() for p in proto_root.rglob("*.proto"))
    args = [
        "protoc",
        f"-I{proto_root}",
        f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
        f"--descriptor_set_out={out}",
        "--include_source_info",
        *sources,
    ]
    if protoc.main(args) != 0:
        return None
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _compile_current(out: Path) -> descriptor_pb2.FileDescriptorSet:
    compiled = _compile(PROTO_DIR, out)
    assert compiled is not None, "proto/ does not compile (protoc errors above)"
    return compiled


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout


def _historic_sets(tmp_path: Path) -> Iterator[tuple[str, descriptor_pb2.FileDescriptorSet]]:
    """The contract as of every commit that touched it (read-only git; nothing is changed)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("no git checkout: nothing to compare the numbering against")
    commits = _git("log", "--format=%H", "--", "proto/sealmark/v1").split()
    for commit in commits:
        tree = tmp_path / commit
        for path in _git("ls-tree", "-r", "--name-only", commit, "--", "proto/").split():
            if path.endswith(".proto"):
                target = tree / Path(path).relative_to("proto")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(_git("show", f"{commit}:{path}"), encoding="utf-8")
        # A commit that caught the protos half-updated never produced stubs: nothing to keep.
        compiled = _compile(tree, tmp_path / f"{commit}.pb") if tree.exists() else None
        if compiled is not None:
            yield commit[:10], compiled


Numbered = dict[str, dict[int, tuple[str, ...]]]


def _numbering(fds: descriptor_pb2.FileDescriptorSet) -> tuple[Numbered, dict[str, set[int]]]:
    """Per message / enum full name: number → identity, and the reserved numbers."""
    numbered: Numbered = {}
    reserved: dict[str, set[int]] = {}

    def enum(prefix: str, e: descriptor_pb2.EnumDescriptorProto) -> None:
        name = f"{prefix}.{e.name}"
        numbered[name] = {v.number: (v.name,) for v in e.value}
        reserved[name] = {n for r in e.reserved_range for n in range(r.start, r.end + 1)}

    def message(prefix: str, m: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{m.name}"
        repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
        numbered[name] = {
            f.number: (f.name, str(f.type), f.type_name, str(f.label == repeated)) for f in m.field
        }
        reserved[name] = {n for r in m.reserved_range for n in range(r.start, r.end)}
        for nested in m.nested_type:
            message(name, nested)
        for e in m.enum_type:
            enum(name, e)

    for fd in fds.file:
        if fd.package != "sealmark.v1":
            continue
        for m in fd.message_type:
            message(".sealmark.v1", m)
        for e in fd.enum_type:
            enum(".sealmark.v1", e)
    return numbered, reserved


def test_no_field_or_enum_number_is_ever_reused(tmp_path: Path) -> None:
    current, reserved = _numbering(_compile_current(tmp_path / "current.pb"))
    problems = []
    compared = 0
    for commit, old_set in _historic_sets(tmp_path):
        old, _ = _numbering(old_set)
        for name, numbers in old.items():
            if name not in current:
                continue  # a removed type keeps its name out of use by review, not by wire
            for number, identity in numbers.items():
                compared += 1
                now = current[name].get(number)
                if now is None and number not in reserved[name]:
                    problems.append(f"{name} #{number} {identity[0]} removed without reserved")
                elif now is not None and now != identity:
                    problems.append(f"{name} #{number} was {identity} at {commit}, now {now}")
    assert problems == []
    assert compared > 0


def test_every_service_and_rpc_is_documented(tmp_path: Path) -> None:
    fds = _compile_current(tmp_path / "docs.pb")
    undocumented = []
    for fd in fds.file:
        comments = {
            tuple(loc.path): loc.leading_comments + "".join(loc.leading_detached_comments)
            for loc in fd.source_code_info.location
        }
        for i, service in enumerate(fd.service):
            if not comments.get((6, i), "").strip():
                undocumented.append(service.name)
            for j, method in enumerate(service.method):
                if not comments.get((6, i, 2, j), "").strip():
                    undocumented.append(f"{service.name}.{method.name}")
    assert undocumented == []
