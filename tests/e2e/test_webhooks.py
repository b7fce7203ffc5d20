"""Webhooks end to end: real Issuer, Verifier and Audit servers on a real port, a real local
HTTP receiver that checks every signature, and the dispatcher thread of the Audit service.

A brand registers endpoints over gRPC; consumers scan; the receiver is down for a while
(deliveries are retried and then arrive), another one never comes up (dead letter, then
retried by hand); each fact is one event id however many attempts it took; and a server
killed with SIGKILL between committing a fact and sending it loses nothing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg2
import pytest

from audit.dispatch import DispatchLoop
from sealmark.server.app import create_server
from sealmark.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    issuer_pb2,
    issuer_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from sealmark.webhooks.events import CLONE_ALERT, FIRST_GENUINE_SCAN, RECALL
from sealmark_app.root import binding_for
from sealmark_app.root.audit import build_dispatcher, start_dispatch
from sealmark_app.root.verifier import build_verifier
from tests.e2e.conftest import _md, make_container
from tests.support.cli import sealmark
from tests.support.receiver import Receiver, closed_port
from tests.support.servers import ServeProcess
from tests.support.tenants import seed_tenant
from verifier.domain import Rules

pytestmark = pytest.mark.e2e
A = audit_pb2
FAST = {
    "SEALMARK_WEBHOOK_ALLOW_PRIVATE": "true",
    "SEALMARK_WEBHOOK_BACKOFF_S": "0.2",
    "SEALMARK_WEBHOOK_BACKOFF_MAX_S": "0.5",
    "SEALMARK_WEBHOOK_MAX_ATTEMPTS": "4",
    "SEALMARK_WEBHOOK_TIMEOUT_S": "1",
    "SEALMARK_WEBHOOK_POLL_S": "0.1",
}


@pytest.fixture(scope="module")
def brand_world(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    container = make_container(pg_dsn, redis_url, **FAST)
    brand = seed_tenant(
        container.uow,
        container.clock,
        "hook",
        tokens={"line": ["line"], "admin": ["admin"], "auditor": ["auditor"]},
    )
    build_verifier(container).set_rules(
        brand.tenant_id, Rules(rate_per_minute=100_000, guess_limit=100_000)
    )
    running = create_server(
        [binding_for(n, container) for n in ("issuer", "verifier", "audit")],
        container.authenticator,
    )
    world_loop = start_dispatch(container)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    world = {
        "target": f"127.0.0.1:{running.port}",
        "container": container,
        "brand": brand,
        "issuer": issuer,
        "verifier": verifier_pb2_grpc.VerifierStub(channel),
        "audit": audit_pb2_grpc.AuditStub(channel),
        "dsn": pg_dsn,
        "redis_url": redis_url,
        "loop": world_loop,
    }
    yield world
    channel.close()
    running.stop(0)
    container.close()


def _issue(world: dict[str, Any], count: int) -> list[Any]:
    brand = world["brand"]
    line = _md(brand.tokens["line"])
    codes = [
        c
        for r in world["issuer"].IssueCodes(
            issuer_pb2.IssueCodesRequest(
                request_id="r-" + os.urandom(6).hex(),
                gtin=brand.gtin,
                lot="LOT-H",
                expiry="301231",
                quantity=count,
                line_id="line-1",
                work_order="WO-hooks",
            ),
            metadata=line,
            timeout=60,
        )
        for c in r.codes
    ]
    batch = issuer_pb2.CodeBatch(
        batch_id="c-" + os.urandom(6).hex(), gtin=brand.gtin, serials=[c.serial for c in codes]
    )
    list(world["issuer"].ReportCommissioned(iter([batch]), metadata=line, timeout=30))
    return codes


def _scan(world: dict[str, Any], code: Any, session: str = "s-1") -> Any:
    context = verifier_pb2.ClientContext(session_id=session, region="DE")
    return world["verifier"].Verify(
        verifier_pb2.VerifyRequest(payload=code.digital_link, context=context), timeout=10
    )


def _admin(world: dict[str, Any]) -> list[tuple[str, str]]:
    return _md(world["brand"].tokens["admin"])


def _register(world: dict[str, Any], url: str, *events: str) -> tuple[str, str]:
    created = world["audit"].CreateWebhookEndpoint(
        A.CreateWebhookEndpointRequest(url=url, events=list(events), description="e2e"),
        metadata=_admin(world),
        timeout=10,
    )
    return created.endpoint.endpoint_id, created.secret


def _deliveries(world: dict[str, Any], endpoint_id: str, **fields: Any) -> list[Any]:
    answer = world["audit"].ListWebhookDeliveries(
        A.ListWebhookDeliveriesRequest(endpoint_id=endpoint_id, **fields),
        metadata=_md(world["brand"].tokens["auditor"]),
        timeout=10,
    )
    return list(answer.deliveries)


def _until(check: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_deliveries_survive_a_receiver_that_is_down_for_a_while(
    brand_world: dict[str, Any],
) -> None:
    w = brand_world
    receiver = Receiver().start()
    receiver.stop()  # down: its port refuses connections
    endpoint_id, secret = _register(w, receiver.url, FIRST_GENUINE_SCAN, CLONE_ALERT, RECALL)
    receiver.secret = secret
    listed = w["audit"].ListWebhookEndpoints(
        A.ListWebhookEndpointsRequest(), metadata=_md(w["brand"].tokens["auditor"]), timeout=10
    )
    assert secret not in str(listed)  # shown once, at creation, never again
    with psycopg2.connect(w["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT secret FROM webhook_endpoints WHERE endpoint_id = %s", (endpoint_id,))
        stored = cur.fetchone()[0]
    assert stored.startswith("sb1:") and secret not in stored  # sealed at rest
    codes = _issue(w, 3)
    first = _scan(w, codes[0])
    assert first.verdict == verifier_pb2.VERDICT_AUTHENTIC
    again = _scan(w, codes[0], session="s-2")
    assert again.verdict == verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE
    for n in range(4):  # four sessions: a suspected clone, alerted
        _scan(w, codes[1], session=f"clone-{n}")
    retried = _until(
        lambda: [d for d in _deliveries(w, endpoint_id) if d.attempts >= 2], timeout_s=30
    )
    assert retried, "the dispatcher did not retry while the receiver was down"
    assert all(d.state == A.WEBHOOK_DELIVERY_STATE_PENDING for d in retried)
    assert all(d.last_status == 0 and "Refused" in d.last_error for d in retried)
    receiver.start()  # back up, on the same port
    recall = w["audit"].Recall(
        A.RecallRequest(
            request_id="rc-" + os.urandom(4).hex(),
            codes=A.CodeList(
                codes=[{"sgtin": {"gtin": w["brand"].gtin, "serial": codes[2].serial}}]
            ),
            reason="seal broken",
        ),
        metadata=_admin(w),
        timeout=30,
    )
    got = receiver.wait_for(4, timeout_s=40)
    by_type: dict[str, list[Any]] = {}
    for r in got:
        by_type.setdefault(r.event_type, []).append(r)
    assert all(r.signature_ok for r in got)
    scans = by_type[FIRST_GENUINE_SCAN]
    # Exactly one event per fact: codes[0] and codes[1] each had one first genuine scan.
    assert sorted(r.body["data"]["serial"] for r in scans) == sorted(
        [codes[0].serial, codes[1].serial]
    )
    assert len({r.event_id for r in scans}) == 2
    assert by_type[CLONE_ALERT][0].body["data"]["serial"] == codes[1].serial
    assert by_type[RECALL][0].body["data"]["recall_id"] == recall.recall_id
    assert any(r.attempt >= 2 for r in got)  # some arrived only on a retry
    time.sleep(1.0)  # let any duplicate arrive, were there one
    assert len(receiver.received) == 4 == len({r.event_id for r in receiver.received})
    delivered = _deliveries(w, endpoint_id, state=A.WEBHOOK_DELIVERY_STATE_DELIVERED)
    assert len(delivered) == 4
    receiver.stop()


def test_an_endpoint_that_stays_down_is_dead_lettered_then_retried(
    brand_world: dict[str, Any],
) -> None:
    w = brand_world
    port = closed_port()
    endpoint_id, secret = _register(w, f"http://127.0.0.1:{port}/hooks", FIRST_GENUINE_SCAN)
    [code] = _issue(w, 1)
    _scan(w, code)
    dead = _until(
        lambda: _deliveries(w, endpoint_id, state=A.WEBHOOK_DELIVERY_STATE_DEAD), timeout_s=40
    )
    assert len(dead) == 1 and dead[0].attempts == 4
    receiver = Receiver(secret)
    receiver.port = port
    receiver.start()
    try:
        again = w["audit"].RetryWebhookDelivery(
            A.RetryWebhookDeliveryRequest(endpoint_id=endpoint_id, event_id=dead[0].event_id),
            metadata=_admin(w),
            timeout=10,
        )
        assert again.state == A.WEBHOOK_DELIVERY_STATE_PENDING and again.attempts == 0
        [got] = receiver.wait_for(1)
        assert got.event_id == dead[0].event_id and got.signature_ok and got.attempt == 1
    finally:
        receiver.stop()
    with pytest.raises(grpc.RpcError) as caught:  # only a dead letter is retried by hand
        w["audit"].RetryWebhookDelivery(
            A.RetryWebhookDeliveryRequest(endpoint_id=endpoint_id, event_id=dead[0].event_id),
            metadata=_admin(w),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (A.CreateWebhookEndpointRequest(url="http://hooks.example.com/", events=[RECALL]), "url"),
        (A.CreateWebhookEndpointRequest(url="https://u:p@h.example/", events=[RECALL]), "url"),
        (A.CreateWebhookEndpointRequest(url="https://h.example/", events=["nope"]), "events"),
        (
            A.CreateWebhookEndpointRequest(url="https://h.example/", events=[RECALL], secret="s"),
            "secret",
        ),
    ],
)
def test_bad_endpoints_are_refused_naming_the_field(
    brand_world: dict[str, Any], request_: Any, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        brand_world["audit"].CreateWebhookEndpoint(
            request_, metadata=_admin(brand_world), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"CreateWebhookEndpointRequest.{field}" in (caught.value.details() or "")


def test_an_auditor_cannot_register_an_endpoint(brand_world: dict[str, Any]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        brand_world["audit"].CreateWebhookEndpoint(
            A.CreateWebhookEndpointRequest(url="https://h.example/", events=[RECALL]),
            metadata=_md(brand_world["brand"].tokens["auditor"]),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_cli_manages_endpoints_and_shows_dead_letters(
    brand_world: dict[str, Any], tmp_path: Any
) -> None:
    w = brand_world

    def cli(*args: str, role: str = "admin") -> Any:
        done = sealmark(
            "audit",
            "webhooks",
            *args,
            "--target",
            w["target"],
            "--token",
            w["brand"].tokens[role],
            "--json",
            dsn=w["dsn"],
            redis_url=w["redis_url"],
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    secret_file = tmp_path / "secret"
    secret_file.write_text("cli-secret-0123456789-0123456789-xyz\n")
    url = f"http://127.0.0.1:{closed_port()}/in"
    added = cli("add", url, "--event", RECALL, "--secret-file", str(secret_file))
    assert added["secret"] == "cli-secret-0123456789-0123456789-xyz"
    endpoint_id = added["endpoint_id"]
    listed = cli("list", role="auditor")
    assert endpoint_id in {e["endpoint_id"] for e in listed}
    assert "cli-secret" not in json.dumps(listed)
    rotated = cli("rotate", endpoint_id, "--keep-previous", "60")
    assert rotated["secret"].startswith("whsec_") and rotated["previous_secret_until"]
    [code] = _issue(w, 1)
    w["audit"].Recall(
        A.RecallRequest(
            request_id="rc-" + os.urandom(4).hex(),
            codes=A.CodeList(codes=[{"sgtin": {"gtin": w["brand"].gtin, "serial": code.serial}}]),
            reason="cli test",
        ),
        metadata=_admin(w),
        timeout=30,
    )
    assert _until(
        lambda: _deliveries(w, endpoint_id, state=A.WEBHOOK_DELIVERY_STATE_DEAD), timeout_s=40
    )
    dead = cli("deliveries", "--endpoint", endpoint_id, "--dead")
    assert [d["event_type"] for d in dead] == [RECALL] and dead[0]["attempts"] == 4
    assert cli("pause", endpoint_id).get("active", False) is False
    again = cli("retry", endpoint_id, dead[0]["event_id"])
    assert again["state"] == "WEBHOOK_DELIVERY_STATE_PENDING"



def _outbox_of(dsn: str, endpoint_id: str) -> list[tuple[str, str]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_id, state FROM webhook_deliveries WHERE endpoint_id = %s",
            (endpoint_id,),
        )
        return list(cur.fetchall())


def _serve_env(w: dict[str, Any], **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")},
        **FAST,
        "SEALMARK_DATABASE_URL": w["dsn"],
        "SEALMARK_REDIS_URL": w["redis_url"],
        "SEALMARK_SECRET_PEPPER": "e2e-test-pepper-0123456789",
        "SEALMARK_KEY_PASSPHRASE": "e2e-test-passphrase",
        "SEALMARK_GRPC_PORT": "0",
        "SEALMARK_VERIFY_HTTP_PORT": "0",
        "SEALMARK_METRICS_PORT": "0",
        **extra,
    }


def _scan_at(target: str, code: Any, session: str) -> Any:
    channel = grpc.insecure_channel(target)
    try:
        context = verifier_pb2.ClientContext(session_id=session, region="DE")
        return verifier_pb2_grpc.VerifierStub(channel).Verify(
            verifier_pb2.VerifyRequest(payload=code.digital_link, context=context), timeout=10
        )
    finally:
        channel.close()


def _restart_dispatch(w: dict[str, Any]) -> None:
    w["loop"] = DispatchLoop(build_dispatcher(w["container"]), 0.1).start()
    w["container"].closers.append(w["loop"].stop)


def test_a_crash_between_commit_and_send_loses_nothing(brand_world: dict[str, Any]) -> None:
    """A server commits a first genuine scan (and with it the outbox row), then is killed
    with SIGKILL before its dispatcher looks (its rounds are a minute apart, and no other
    dispatcher runs meanwhile). A dispatcher started afterwards delivers it."""
    w = brand_world
    w["loop"].stop()  # only the server under test runs a dispatcher now
    receiver = Receiver().start()
    try:
        endpoint_id, secret = _register(w, receiver.url, FIRST_GENUINE_SCAN)
        receiver.secret = secret
        [code] = _issue(w, 1)
        server = ServeProcess(_serve_env(w, SEALMARK_WEBHOOK_POLL_S="60"), ("verifier", "audit"))
        try:
            assert _scan_at(server.target, code, "crash").verdict == verifier_pb2.VERDICT_AUTHENTIC
            rows = _until(lambda: _outbox_of(w["dsn"], endpoint_id), timeout_s=10)
            assert [state for _, state in rows] == ["pending"]
        finally:
            server.kill()
        assert receiver.hits == 0  # nothing was sent before the crash
        _restart_dispatch(w)
        [got] = receiver.wait_for(1)
        assert got.signature_ok and got.body["data"]["serial"] == code.serial
        assert got.event_id == rows[0][0]
    finally:
        receiver.stop()


def test_a_crash_mid_send_sends_the_same_event_id_again(brand_world: dict[str, Any]) -> None:
    """A server killed while its delivery is on the wire (the receiver got it, the server
    never recorded the answer): when the claim's lease runs out another dispatcher sends it
    again, with the same event id, so the receiver can drop the duplicate."""
    w = brand_world
    w["loop"].stop()
    receiver = Receiver().start()
    receiver.delay_s = 0.6  # answers after the sender is gone
    try:
        endpoint_id, secret = _register(w, receiver.url, FIRST_GENUINE_SCAN)
        receiver.secret = secret
        [code] = _issue(w, 1)
        server = ServeProcess(_serve_env(w), ("verifier", "audit"))
        try:
            _scan_at(server.target, code, "mid-send")
            assert _until(lambda: receiver.hits >= 1, timeout_s=15)
        finally:
            server.kill()
        [(event_id, state)] = _outbox_of(w["dsn"], endpoint_id)
        assert state == "pending"  # the outcome was never recorded
        _restart_dispatch(w)
        got = receiver.wait_for(2, timeout_s=30)  # after the lease (2 x timeout + 5 s)
        assert [r.event_id for r in got] == [event_id, event_id]
        assert all(r.signature_ok for r in got)
        assert _until(
            lambda: _outbox_of(w["dsn"], endpoint_id) == [(event_id, "delivered")], timeout_s=10
        )
    finally:
        receiver.stop()
