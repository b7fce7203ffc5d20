"""Identity and error mapping through a real gRPC server on a real port, with real storage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sealmark.errors import InvalidArgument
from sealmark.server.app import RunningServer, ServiceBinding, create_server
from sealmark.server.interceptor import PUBLIC
from sealmark.settings import SERVICES
from sealmark.tenancy import usecases
from sealmark.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    issuer_pb2,
    issuer_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from sealmark_app.root import binding_for
from tests.e2e.conftest import make_container
from tests.storage_contract import gtin_under
from tests.support.tenants import unique_prefix

pytestmark = pytest.mark.e2e
Code = grpc.StatusCode


def _boom(request: bytes, context: Any) -> bytes:
    raise ValueError("secret internals: password=hunter2")


def _invalid(request: bytes, context: Any) -> bytes:
    raise InvalidArgument("Test.field", "is wrong")


def _stream_then_fail(request: bytes, context: Any) -> Iterator[bytes]:
    yield b"one"
    raise InvalidArgument("Test.stream", "broke after one")


def _test_binding() -> ServiceBinding:
    def register(server: grpc.Server) -> None:
        ident = lambda b: b  # noqa: E731
        handler = grpc.method_handlers_generic_handler(
            "sealmark.v1.Test",
            {
                "Boom": grpc.unary_unary_rpc_method_handler(_boom, ident, ident),
                "Invalid": grpc.unary_unary_rpc_method_handler(_invalid, ident, ident),
                "Stream": grpc.unary_stream_rpc_method_handler(_stream_then_fail, ident, ident),
            },
        )
        server.add_generic_rpc_handlers((handler,))

    methods = ("Boom", "Invalid", "Stream")
    return ServiceBinding(
        "test", "sealmark.v1.Test", register, {f"/sealmark.v1.Test/{m}": PUBLIC for m in methods}
    )


@pytest.fixture(scope="module")
def world(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    container = make_container(pg_dsn, redis_url)
    clock, uow = container.clock, container.uow
    suffix = os.urandom(3).hex()
    prefix_a, prefix_b = unique_prefix(), unique_prefix()
    a = usecases.create_tenant(
        uow,
        clock,
        tenant_id=f"a-{suffix}",
        name="A",
        company_prefixes=[prefix_a],
        resolver_host="id.a.example",
    )
    b = usecases.create_tenant(
        uow,
        clock,
        tenant_id=f"b-{suffix}",
        name="B",
        company_prefixes=[prefix_b],
        resolver_host="id.b.example",
    )
    gtin_a, gtin_b = gtin_under(prefix_a), gtin_under(prefix_b)
    usecases.add_product(uow, clock, tenant_id=a.id, gtin=gtin_a, name="A product")
    usecases.add_product(uow, clock, tenant_id=b.id, gtin=gtin_b, name="B product")
    tokens = {}
    for role in ("line", "auditor", "admin"):
        tokens[role] = usecases.create_token(
            uow, clock, os.urandom, tenant_id=a.id, roles=[role], name=role
        )[1]
    revoked, tokens["revoked"] = usecases.create_token(
        uow, clock, os.urandom, tenant_id=a.id, roles=["admin"], name="old"
    )
    usecases.revoke_token(uow, clock, tenant_id=a.id, token_id=revoked.id)
    running: RunningServer = create_server(
        [*(binding_for(n, container) for n in SERVICES), _test_binding()],
        container.authenticator,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield {
        "channel": channel,
        "tokens": tokens,
        "gtin_a": gtin_a,
        "gtin_b": gtin_b,
        "unregistered_b": gtin_under(prefix_b + "9"),
        "unregistered_a": gtin_under(prefix_a + "9"),
    }
    channel.close()
    running.stop(0)
    container.close()


def _md(token: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token else []


def _code(call: Any) -> tuple[Code, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_own_product_with_any_role(world: dict[str, Any]) -> None:
    issuer = issuer_pb2_grpc.IssuerStub(world["channel"])
    for role in ("line", "auditor", "admin"):
        product = issuer.GetProduct(
            issuer_pb2.GetProductRequest(gtin=world["gtin_a"]),
            metadata=_md(world["tokens"][role]),
            timeout=5,
        )
        assert product.gtin == world["gtin_a"] and product.name == "A product"
    listed = issuer.ListProducts(
        issuer_pb2.ListProductsRequest(), metadata=_md(world["tokens"]["auditor"]), timeout=5
    )
    assert [p.gtin for p in listed.products] == [world["gtin_a"]]


@pytest.mark.parametrize("token", [None, "garbage", "smk_aaaaaaaaaaaa_" + "b" * 43, "revoked"])
def test_missing_or_bad_token_is_unauthenticated(world: dict[str, Any], token: str | None) -> None:
    issuer = issuer_pb2_grpc.IssuerStub(world["channel"])
    value = world["tokens"].get(token or "", token)
    code, _ = _code(
        lambda: issuer.GetProduct(
            issuer_pb2.GetProductRequest(gtin=world["gtin_a"]), metadata=_md(value), timeout=5
        )
    )
    assert code == Code.UNAUTHENTICATED


def test_non_bearer_scheme_is_unauthenticated(world: dict[str, Any]) -> None:
    issuer = issuer_pb2_grpc.IssuerStub(world["channel"])
    code, _ = _code(
        lambda: issuer.ListProducts(
            issuer_pb2.ListProductsRequest(), metadata=[("authorization", "Basic abc")], timeout=5
        )
    )
    assert code == Code.UNAUTHENTICATED


def test_wrong_role_is_permission_denied(world: dict[str, Any]) -> None:
    issuer = issuer_pb2_grpc.IssuerStub(world["channel"])
    audit = audit_pb2_grpc.AuditStub(world["channel"])
    code, details = _code(
        lambda: list(
            issuer.IssueCodes(
                issuer_pb2.IssueCodesRequest(gtin=world["gtin_a"]),
                metadata=_md(world["tokens"]["auditor"]),
                timeout=5,
            )
        )
    )
    assert code == Code.PERMISSION_DENIED and "line" in details
    code, _ = _code(
        lambda: audit.Recall(
            audit_pb2.RecallRequest(), metadata=_md(world["tokens"]["line"]), timeout=5
        )
    )
    assert code == Code.PERMISSION_DENIED


def test_other_tenants_gtin_never_leaks_existence(world: dict[str, Any]) -> None:
    issuer = issuer_pb2_grpc.IssuerStub(world["channel"])
    token = world["tokens"]["admin"]
    answers = []
    for gtin in (world["gtin_b"], world["unregistered_b"]):
        code, details = _code(
            lambda g=gtin: issuer.GetProduct(
                issuer_pb2.GetProductRequest(gtin=g), metadata=_md(token), timeout=5
            )
        )
        answers.append((code, details.replace(gtin, "<gtin>")))
    assert answers[0] == answers[1]
    assert answers[0][0] == Code.PERMISSION_DENIED


def test_own_unregistered_gtin_is_not_found(world: dict[str, Any]) -> None:
    issuer = issuer_pb2_grpc.IssuerStub(world["channel"])
    code, _ = _code(
        lambda: issuer.GetProduct(
            issuer_pb2.GetProductRequest(gtin=world["unregistered_a"]),
            metadata=_md(world["tokens"]["line"]),
            timeout=5,
        )
    )
    assert code == Code.NOT_FOUND


@pytest.mark.parametrize("gtin", ["", "09520123456789", "abc", "1" * 200])
def test_bad_gtin_names_the_field(world: dict[str, Any], gtin: str) -> None:
    issuer = issuer_pb2_grpc.IssuerStub(world["channel"])
    code, details = _code(
        lambda: issuer.GetProduct(
            issuer_pb2.GetProductRequest(gtin=gtin),
            metadata=_md(world["tokens"]["line"]),
            timeout=5,
        )
    )
    assert code == Code.INVALID_ARGUMENT
    assert details.startswith("GetProductRequest.gtin")


def test_list_products_page_size_bound(world: dict[str, Any]) -> None:
    issuer = issuer_pb2_grpc.IssuerStub(world["channel"])
    request = issuer_pb2.ListProductsRequest()
    request.page.page_size = 5000
    code, details = _code(
        lambda: issuer.ListProducts(request, metadata=_md(world["tokens"]["line"]), timeout=5)
    )
    assert code == Code.INVALID_ARGUMENT and "page_size" in details


def test_public_verification_needs_no_token(world: dict[str, Any]) -> None:
    verifier = verifier_pb2_grpc.VerifierStub(world["channel"])
    answer = verifier.Verify(verifier_pb2.VerifyRequest(payload="not a code"), timeout=5)
    assert answer.verdict == verifier_pb2.VERDICT_INVALID  # answered, no token asked for


def test_the_right_role_passes_the_policy(world: dict[str, Any]) -> None:
    audit = audit_pb2_grpc.AuditStub(world["channel"])
    checkpoint = audit.GetCheckpoint(
        audit_pb2.GetCheckpointRequest(), metadata=_md(world["tokens"]["auditor"]), timeout=10
    )
    assert checkpoint.signed_note.startswith(checkpoint.origin + "\n")


def test_unexpected_error_is_internal_without_details(world: dict[str, Any]) -> None:
    boom = world["channel"].unary_unary("/sealmark.v1.Test/Boom")
    code, details = _code(lambda: boom(b"", timeout=5))
    assert code == Code.INTERNAL
    assert "hunter2" not in details and "ValueError" not in details
    assert details.startswith("internal error (incident ")


def test_domain_error_maps_once(world: dict[str, Any]) -> None:
    invalid = world["channel"].unary_unary("/sealmark.v1.Test/Invalid")
    assert _code(lambda: invalid(b"", timeout=5)) == (Code.INVALID_ARGUMENT, "Test.field: is wrong")


def test_error_mid_stream_keeps_what_was_sent(world: dict[str, Any]) -> None:
    stream = world["channel"].unary_stream("/sealmark.v1.Test/Stream")
    received: list[bytes] = []
    with pytest.raises(grpc.RpcError) as caught:
        for item in stream(b"", timeout=5):
            received.append(item)
    assert received == [b"one"]
    assert caught.value.code() == Code.INVALID_ARGUMENT


def test_reflection_lists_every_service(world: dict[str, Any]) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(world["channel"])
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {
        "sealmark.v1.Issuer",
        "sealmark.v1.Aggregator",
        "sealmark.v1.Verifier",
        "sealmark.v1.Audit",
        "grpc.health.v1.Health",
    } <= names


def test_graceful_shutdown_drains_a_running_stream(world: dict[str, Any]) -> None:
    import threading
    import time

    def slow(request: bytes, context: Any) -> Iterator[bytes]:
        for i in range(5):
            time.sleep(0.2)
            yield bytes([i])

    def register(server: grpc.Server) -> None:
        ident = lambda b: b  # noqa: E731
        handler = grpc.method_handlers_generic_handler(
            "sealmark.v1.Slow", {"Run": grpc.unary_stream_rpc_method_handler(slow, ident, ident)}
        )
        server.add_generic_rpc_handlers((handler,))

    binding = ServiceBinding(
        "slow", "sealmark.v1.Slow", register, {"/sealmark.v1.Slow/Run": PUBLIC}
    )
    running = create_server([binding], lambda _b: (_ for _ in ()).throw(AssertionError()))
    received: list[bytes] = []
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stream = channel.unary_stream("/sealmark.v1.Slow/Run")(b"", timeout=10)
        received.append(next(stream))
        stopper = threading.Thread(target=running.stop, args=(5.0,))
        stopper.start()
        received.extend(stream)
        stopper.join(timeout=10)
    assert received == [bytes([i]) for i in range(5)]
