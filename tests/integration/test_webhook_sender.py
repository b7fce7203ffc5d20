"""The webhook sender (audit/http_webhooks.py) against real sockets: a local receiver that
answers, fails, is slow, answers too much or is not there; and targets it must refuse before
connecting."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from audit.http_webhooks import MAX_RESPONSE_BYTES, HttpSender
from sealmark.webhooks import signing
from tests.support.receiver import Receiver, closed_port

pytestmark = pytest.mark.integration
SECRET = "whsec_sender_test_000000000000000000000"
BODY = b'{"id":"evt_x","type":"recall.created","data":{}}'


def _headers() -> dict[str, str]:
    now = int(time.time())
    return {
        "Content-Type": "application/json",
        signing.EVENT_ID_HEADER: "evt_x",
        signing.HEADER: signing.sign([SECRET], now, BODY),
    }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


def test_a_delivery_arrives_signed(receiver: Receiver) -> None:
    result = HttpSender(allow_private=True).send(receiver.url, _headers(), BODY, 5)
    assert result.delivered and result.status == 200
    [got] = receiver.received
    assert got.signature_ok and got.event_id == "evt_x"


def test_an_error_status_is_not_delivered(receiver: Receiver) -> None:
    receiver.status = 503
    result = HttpSender(allow_private=True).send(receiver.url, _headers(), BODY, 5)
    assert (result.delivered, result.status) == (False, 503)


def test_a_receiver_that_is_down_is_a_failure_not_an_exception() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hooks"
    result = HttpSender(allow_private=True).send(url, _headers(), BODY, 5)
    assert result.status is None and "ConnectionRefused" in result.error


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    receiver.delay_s = 2.0
    started = time.monotonic()
    result = HttpSender(allow_private=True).send(receiver.url, _headers(), BODY, 0.3)
    assert result.status is None and "timed out" in result.error
    assert time.monotonic() - started < 1.5


def test_a_huge_answer_is_read_only_in_part(receiver: Receiver) -> None:
    receiver.answer = b"x" * (MAX_RESPONSE_BYTES * 16)
    result = HttpSender(allow_private=True).send(receiver.url, _headers(), BODY, 5)
    assert result.status == 200


def test_loopback_is_refused_without_the_setting_before_any_connection(
    receiver: Receiver,
) -> None:
    result = HttpSender(allow_private=False).send(receiver.url, _headers(), BODY, 5)
    assert result.status is None and result.error.startswith("refused:")
    assert receiver.hits == 0


def test_a_name_that_resolves_inwards_is_refused_at_send() -> None:
    """DNS rebinding: the URL passed registration with a public-looking name; at send time
    it resolves to a private address, and nothing is connected."""
    sender = HttpSender(allow_private=False, resolver=lambda host, port: ["10.0.0.7"])
    result = sender.send("https://hooks.example.com/in", _headers(), BODY, 5)
    assert result.status is None and "resolves to 10.0.0.7" in result.error
    mixed = HttpSender(allow_private=False, resolver=lambda h, p: ["93.184.216.34", "127.0.0.1"])
    assert mixed.send("https://hooks.example.com/in", _headers(), BODY, 5).error.startswith(
        "refused:"
    )


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.status = 302
    result = HttpSender(allow_private=True).send(receiver.url, _headers(), BODY, 5)
    assert (result.delivered, result.status) == (False, 302)


def test_the_next_address_is_tried_when_one_cannot_be_reached(receiver: Receiver) -> None:
    """A name with two addresses, the first refusing (nothing listens on 127.0.0.2 there)."""
    sender = HttpSender(allow_private=True, resolver=lambda host, port: ["127.0.0.2", "127.0.0.1"])
    url = f"http://localhost:{receiver.port}/hooks"
    assert sender.send(url, _headers(), BODY, 5).status == 200
    assert len(receiver.received) == 1
