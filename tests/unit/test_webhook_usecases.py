"""Webhook use cases on the fakes: registering and managing endpoints (audit/webhooks.py),
and the dispatcher's rounds (audit/dispatch.py) with a fake sender and a fixed clock: signed
at least once, retried with backoff, dead-lettered, redriven; and the Verifier's first
genuine scan reaching the outbox with its scan batch."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from audit.dispatch import Dispatcher, DispatchLoop, DispatchPolicy
from audit.domain import RecallScope
from audit.memory import MemoryAudit
from audit.usecases import Auditor
from audit.webhook_ports import DeliveryState, SendResult
from audit.webhooks import MAX_ENDPOINTS, Webhooks
from sealmark.clock import FixedClock
from sealmark.crypto.sealing import SecretBox
from sealmark.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from sealmark.tenancy.model import Principal, Role
from sealmark.webhooks import signing
from sealmark.webhooks.events import CLONE_ALERT, FIRST_GENUINE_SCAN, RECALL
from tests.storage_contract import gtin_under, tenant

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BOX = SecretBox(b"unit-test-passphrase", "webhook endpoint secret")
URL = "https://hooks.example.com/sealmark"


@dataclass
class Sent:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeSender:
    """Answers each send with the next of ``answers`` (the last one repeats)."""

    answers: list[SendResult] = field(default_factory=lambda: [SendResult(200)])
    sent: list[Sent] = field(default_factory=list)

    def send(self, url: str, headers: dict[str, str], body: bytes, timeout_s: float) -> SendResult:
        self.sent.append(Sent(url, dict(headers), body))
        answer = self.answers[0]
        if len(self.answers) > 1:
            self.answers.pop(0)
        return answer


class Setup:
    def __init__(self, max_attempts: int = 4) -> None:
        self.clock = FixedClock(T0)
        self.world = MemoryAudit(self.clock.now)
        brand = tenant()
        self.world.add_tenant(brand)
        self.tenant = brand.id
        self.gtin = gtin_under(brand.company_prefixes[0])
        self.world.add_product(self.tenant, self.gtin)
        self.admin = Principal(self.tenant, frozenset({Role.ADMIN}), token_id="tok-admin")
        self.auditor = Principal(self.tenant, frozenset({Role.AUDITOR}), token_id="tok-aud")
        counter = iter(range(1, 10_000))
        self.hooks = Webhooks(
            self.world.webhooks, self.clock, lambda n: bytes([next(counter)]) * n, BOX.seal
        )
        self.audit = Auditor(self.world.storage, self.world.wake, self.clock)
        self.sender = FakeSender()
        self.policy = DispatchPolicy(
            max_attempts=max_attempts, backoff_base_s=10, backoff_cap_s=60, timeout_s=5
        )
        self.dispatcher = Dispatcher(
            self.world.webhooks, self.sender, self.clock, self.policy, BOX.open, random=lambda: 0.0
        )

    def recall(self, serial: str = "A1") -> str:
        self.world.add_code(self.tenant, self.gtin, serial, lot="L1")
        report = self.audit.recall(
            self.admin, f"req-{serial}", RecallScope("codes", keys=[self.gtin + serial]), "glass"
        )
        return report.recall_id

    def deliveries(self, state: DeliveryState | None = None) -> list[object]:
        return self.hooks.deliveries(self.auditor, state=state)[0]  # type: ignore[return-value]


@pytest.fixture
def s() -> Setup:
    return Setup()


# ---------------------------------------------------------------------------- endpoints
def test_an_endpoint_is_registered_and_its_secret_shown_once(s: Setup) -> None:
    created = s.hooks.create(s.admin, URL, [RECALL, CLONE_ALERT, RECALL], "ops")
    assert created.secret.startswith("whsec_") and len(created.secret) > 40
    assert created.endpoint.events == (RECALL, CLONE_ALERT)
    listed = s.hooks.endpoints(s.auditor)
    assert [e.endpoint_id for e in listed] == [created.endpoint.endpoint_id]
    assert created.secret not in repr(listed)  # the listing has no secret to show
    own = s.hooks.create(s.admin, URL, [RECALL], secret="b" * 32)
    assert own.secret == "b" * 32


@pytest.mark.parametrize(
    ("url", "events", "secret", "field"),
    [
        ("http://hooks.example.com/", [RECALL], "", "CreateWebhookEndpointRequest.url"),
        ("https://10.0.0.8/", [RECALL], "", "CreateWebhookEndpointRequest.url"),
        ("https://u:p@hooks.example.com/", [RECALL], "", "CreateWebhookEndpointRequest.url"),
        (URL, [], "", "CreateWebhookEndpointRequest.events"),
        (URL, ["code.scanned"], "", "CreateWebhookEndpointRequest.events"),
        (URL, [RECALL], "short", "CreateWebhookEndpointRequest.secret"),
        (URL, [RECALL], "x" * 31 + " ", "CreateWebhookEndpointRequest.secret"),
    ],
)
def test_bad_registrations_name_the_field_and_store_nothing(
    s: Setup, url: str, events: list[str], secret: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        s.hooks.create(s.admin, url, events, secret=secret)
    assert caught.value.field == field
    if secret:
        assert secret not in str(caught.value)  # a secret is never echoed, even a bad one
    assert s.hooks.endpoints(s.auditor) == []


def test_roles_and_limits(s: Setup) -> None:
    with pytest.raises(PermissionDenied):
        s.hooks.create(s.auditor, URL, [RECALL])
    for _ in range(MAX_ENDPOINTS):
        s.hooks.create(s.admin, URL, [RECALL])
    with pytest.raises(FailedPrecondition):
        s.hooks.create(s.admin, URL, [RECALL])
    other = Principal("t-other", frozenset({Role.ADMIN}))
    endpoint_id = s.hooks.endpoints(s.auditor)[0].endpoint_id
    with pytest.raises(NotFound):
        s.hooks.rotate(other, endpoint_id)  # another brand's endpoint does not exist for it


# ---------------------------------------------------------------------------- delivery
def test_a_recall_is_delivered_signed_with_its_event_id(s: Setup) -> None:
    created = s.hooks.create(s.admin, URL, [RECALL])
    recall_id = s.recall()
    assert s.dispatcher.run_once() == 1
    [sent] = s.sender.sent
    body = json.loads(sent.body)
    assert (body["type"], body["data"]["recall_id"], body["tenant"]) == (
        RECALL,
        recall_id,
        s.tenant,
    )
    assert sent.headers[signing.EVENT_ID_HEADER] == body["id"]
    assert sent.headers[signing.ATTEMPT_HEADER] == "1"
    stamp = signing.verify(
        sent.headers[signing.HEADER], sent.body, created.secret, int(T0.timestamp())
    )
    assert stamp == int(T0.timestamp())
    [done] = s.hooks.deliveries(s.auditor)[0]
    assert (done.state, done.attempts, done.last_status) == (DeliveryState.DELIVERED, 1, 200)
    assert s.dispatcher.run_once() == 0  # delivered: never again


def test_a_recall_that_fails_writes_no_event(s: Setup) -> None:
    s.hooks.create(s.admin, URL, [RECALL])
    with pytest.raises(NotFound):
        s.audit.recall(s.admin, "req-x", RecallScope("codes", keys=[s.gtin + "NOPE"]), "x")
    assert s.dispatcher.run_once() == 0 and s.deliveries() == []


def test_failures_back_off_then_succeed_with_the_same_event_id_and_body(s: Setup) -> None:
    s.hooks.create(s.admin, URL, [RECALL])
    s.sender.answers = [
        SendResult(503),
        SendResult(None, "ConnectionRefusedError"),
        SendResult(204),
    ]
    s.recall()
    assert s.dispatcher.run_once() == 1
    [first] = s.hooks.deliveries(s.auditor)[0]
    assert (first.state, first.attempts, first.last_status) == (DeliveryState.PENDING, 1, 503)
    assert first.next_at == T0 + timedelta(seconds=5)  # base 10 s, jitter 0 → half
    assert s.dispatcher.run_once() == 0  # not due yet
    s.clock.advance(seconds=5)
    assert s.dispatcher.run_once() == 1
    [second] = s.hooks.deliveries(s.auditor)[0]
    assert second.last_error == "ConnectionRefusedError" and second.last_status is None
    assert second.next_at == s.clock.now() + timedelta(seconds=10)  # doubled
    s.clock.advance(seconds=10)
    assert s.dispatcher.run_once() == 1
    assert s.hooks.deliveries(s.auditor)[0][0].state is DeliveryState.DELIVERED
    ids = {x.headers[signing.EVENT_ID_HEADER] for x in s.sender.sent}
    assert len(s.sender.sent) == 3 and len(ids) == 1
    assert len({x.body for x in s.sender.sent}) == 1
    assert [x.headers[signing.ATTEMPT_HEADER] for x in s.sender.sent] == ["1", "2", "3"]


def test_out_of_attempts_is_a_dead_letter_until_redriven(s: Setup) -> None:
    created = s.hooks.create(s.admin, URL, [RECALL])
    s.sender.answers = [SendResult(500)]
    s.recall()
    for _ in range(10):
        s.dispatcher.run_once()
        s.clock.advance(seconds=120)
    assert len(s.sender.sent) == s.policy.max_attempts
    [dead] = s.hooks.deliveries(s.auditor, state=DeliveryState.DEAD)[0]
    assert (dead.attempts, dead.last_error) == (s.policy.max_attempts, "HTTP 500")
    with pytest.raises(InvalidArgument) as caught:
        s.hooks.redrive(s.admin, created.endpoint.endpoint_id, "not-an-id")
    assert caught.value.field == "RetryWebhookDeliveryRequest.event_id"
    s.sender.answers = [SendResult(200)]
    again = s.hooks.redrive(s.admin, dead.endpoint_id, dead.event_id)
    assert (again.state, again.attempts) == (DeliveryState.PENDING, 0)
    assert s.dispatcher.run_once() == 1
    assert s.hooks.deliveries(s.auditor, state=DeliveryState.DELIVERED)[0][0].event_id == (
        dead.event_id
    )
    with pytest.raises(FailedPrecondition):
        s.hooks.redrive(s.admin, dead.endpoint_id, dead.event_id)


def test_not_found_for_an_unknown_delivery(s: Setup) -> None:
    created = s.hooks.create(s.admin, URL, [RECALL])
    with pytest.raises(NotFound):
        s.hooks.redrive(s.admin, created.endpoint.endpoint_id, "evt_" + "0" * 32)


def test_a_send_that_never_recorded_goes_out_again_after_its_lease(s: Setup) -> None:
    """A dispatcher that died between its send and its record: the claim's lease ends and
    the same event goes out again (at least once)."""
    s.hooks.create(s.admin, URL, [RECALL])
    s.recall()
    with s.world.webhooks.transaction() as store:  # the dead dispatcher's claim
        lost = store.claim(s.tenant, T0, T0 + timedelta(seconds=s.policy.lease_s), 10)
    assert len(lost) == 1
    assert s.dispatcher.run_once() == 0  # leased
    s.clock.advance(seconds=s.policy.lease_s)
    assert s.dispatcher.run_once() == 1
    assert s.sender.sent[0].headers[signing.EVENT_ID_HEADER] == lost[0].delivery.event_id


def test_a_paused_endpoint_waits_and_a_rotated_secret_signs_with_both(s: Setup) -> None:
    created = s.hooks.create(s.admin, URL, [RECALL])
    endpoint_id = created.endpoint.endpoint_id
    s.recall("A1")
    assert not s.hooks.set_active(s.admin, endpoint_id, False).active
    assert s.dispatcher.run_once() == 0  # its delivery waits
    s.recall("A2")  # a paused endpoint gets no new deliveries
    assert len(s.deliveries()) == 1
    rotated = s.hooks.rotate(s.admin, endpoint_id, keep_previous_s=3600)
    assert rotated.secret != created.secret
    assert rotated.endpoint.previous_until == T0 + timedelta(hours=1)
    s.hooks.set_active(s.admin, endpoint_id, True)
    assert s.dispatcher.run_once() == 1
    header, body = s.sender.sent[0].headers[signing.HEADER], s.sender.sent[0].body
    now = int(T0.timestamp())
    assert signing.verify(header, body, rotated.secret, now) == now
    assert signing.verify(header, body, created.secret, now) == now
    with pytest.raises(InvalidArgument) as caught:
        s.hooks.rotate(s.admin, endpoint_id, keep_previous_s=10**9)
    assert caught.value.field == "RotateWebhookSecretRequest.keep_previous_s"


def test_a_sender_that_raises_is_a_failed_attempt(s: Setup) -> None:
    class Broken:
        def send(self, *args: object) -> SendResult:
            raise RuntimeError("bug")

    s.hooks.create(s.admin, URL, [RECALL])
    s.recall()
    dispatcher = Dispatcher(s.world.webhooks, Broken(), s.clock, s.policy, BOX.open)  # type: ignore[arg-type]
    assert dispatcher.run_once() == 1
    [failed] = s.hooks.deliveries(s.auditor)[0]
    assert failed.last_error == "sender error: RuntimeError" and failed.attempts == 1


def test_the_loop_runs_rounds_until_stopped(s: Setup) -> None:
    s.hooks.create(s.admin, URL, [RECALL])
    s.recall()
    loop = DispatchLoop(s.dispatcher, every_s=0.01).start()
    try:
        for _ in range(500):
            if s.sender.sent:
                break
            time.sleep(0.01)
    finally:
        loop.stop()
        loop.stop()  # twice is fine
    assert len(s.sender.sent) == 1


def test_deliveries_page_and_refuse_bad_tokens(s: Setup) -> None:
    s.hooks.create(s.admin, URL, [RECALL])
    s.hooks.create(s.admin, URL, [RECALL])
    s.recall("A1")
    s.recall("A2")
    page, token = s.hooks.deliveries(s.auditor, size=3)
    assert len(page) == 3 and token == "3"
    rest, last = s.hooks.deliveries(s.auditor, size=3, token=token)
    assert len(rest) == 1 and last == ""
    with pytest.raises(InvalidArgument) as caught:
        s.hooks.deliveries(s.auditor, token="x")
    assert caught.value.field == "ListWebhookDeliveriesRequest.page.page_token"
    with pytest.raises(InvalidArgument):
        s.hooks.deliveries(s.auditor, size=5000)


# ------------------------------------------------------------------- the verifier's side
def test_a_first_genuine_scan_is_queued_with_its_scan_batch() -> None:
    from verifier.memory import MemoryVerifierStorage
    from verifier.ports import ScanRow

    storage = MemoryVerifierStorage()
    storage.add_endpoint("acme", "we_a", [FIRST_GENUINE_SCAN])
    scan = ScanRow(
        "v-1", "acme", "09526000000017A1", "authentic", [], 0.0, "s", "DE", None, None, True, T0
    )
    again = ScanRow(
        "v-2",
        "acme",
        "09526000000017A1",
        "authentic_seen_before",
        ["seen_before"],
        0.05,
        "s",
        "DE",
        None,
        None,
        True,
        T0,
    )
    storage.append_scans([scan, again])
    [(event, endpoints)] = storage.outbox("acme")
    assert event.type == FIRST_GENUINE_SCAN and endpoints == ["we_a"]
    assert event.payload["verification_id"] == "v-1"


def test_secrets_are_stored_sealed(s: Setup) -> None:
    created = s.hooks.create(s.admin, URL, [RECALL])
    with s.world.webhooks.reads() as store:
        store.endpoints(s.tenant)  # the listing has no secret; the claim carries the stored one
    s.recall()
    with s.world.webhooks.transaction() as store:
        [due] = store.claim(s.tenant, T0, T0 + timedelta(seconds=1), 10)
    assert created.secret not in due.secrets[0] and BOX.open(due.secrets[0]) == created.secret


def test_a_secret_that_does_not_open_is_a_failed_attempt_never_unsigned(s: Setup) -> None:
    s.hooks.create(s.admin, URL, [RECALL])
    s.recall()
    wrong = SecretBox(b"a-changed-passphrase", "webhook endpoint secret")
    dispatcher = Dispatcher(s.world.webhooks, s.sender, s.clock, s.policy, wrong.open)
    assert dispatcher.run_once() == 1
    assert s.sender.sent == []
    [failed] = s.hooks.deliveries(s.auditor)[0]
    assert "SEALMARK_KEY_PASSPHRASE" in failed.last_error and failed.attempts == 1
