"""The pure webhook rules: the signature header, the retry schedule, endpoint URLs (SSRF) and
event ids (sealmark/webhooks/)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from sealmark.webhooks import signing
from sealmark.webhooks.backoff import delay_s
from sealmark.webhooks.events import (
    CLONE_ALERT,
    FIRST_GENUINE_SCAN,
    alert_event,
    event_id,
    fan_out,
    first_genuine_scan,
    recall_event,
)
from sealmark.webhooks.urls import UrlRefused, parse

BODY = b'{"id":"evt_1","type":"code.first_genuine_scan"}'
SECRET = "whsec_test_0123456789abcdef0123456789"
T = 1_764_835_200


# ------------------------------------------------------------------------------ signing
def test_the_header_is_an_hmac_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signing.sign([SECRET], T, BODY) == f"t={T},v1={expected}"


def test_a_receiver_verifies_the_header() -> None:
    header = signing.sign([SECRET], T, BODY)
    assert signing.verify(header, BODY, SECRET, now=T + 10) == T


@pytest.mark.parametrize(
    ("header", "body", "secret", "now", "why"),
    [
        ("sign", BODY + b" ", SECRET, T, "no signature matches"),  # body changed
        ("sign", BODY, SECRET + "x", T, "no signature matches"),  # wrong secret
        ("sign", BODY, SECRET, T + 301, "outside the tolerance"),  # replayed later
        ("sign", BODY, SECRET, T - 301, "outside the tolerance"),
        (f"v1={'0' * 64}", BODY, SECRET, T, "needs t= and v1="),
        (f"t={T}", BODY, SECRET, T, "needs t= and v1="),
        ("t=abc,v1=00", BODY, SECRET, T, "malformed timestamp"),
        ("garbage", BODY, SECRET, T, "malformed"),
    ],
)
def test_a_bad_header_is_refused(header: str, body: bytes, secret: str, now: int, why: str) -> None:
    if header == "sign":
        header = signing.sign([SECRET], T, BODY)
    with pytest.raises(signing.SignatureError, match=why):
        signing.verify(header, body, secret, now=now)


def test_during_a_rotation_both_secrets_sign() -> None:
    old, new = SECRET, "whsec_new_secret_000000000000000000000"
    header = signing.sign([new, old], T, BODY)
    assert header.count("v1=") == 2
    assert signing.verify(header, BODY, old, now=T) == T
    assert signing.verify(header, BODY, new, now=T) == T
    with pytest.raises(ValueError):
        signing.sign([], T, BODY)


# ------------------------------------------------------------------------------ backoff
def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    low = [delay_s(n, 10, 300, lambda: 0.0) for n in range(1, 8)]
    high = [delay_s(n, 10, 300, lambda: 0.999999) for n in range(1, 8)]
    assert low == [5, 10, 20, 40, 80, 150, 150]
    assert [round(h) for h in high] == [10, 20, 40, 80, 160, 300, 300]
    assert delay_s(10_000, 10, 300, lambda: 0.5) == 225  # no overflow far out
    with pytest.raises(ValueError):
        delay_s(0, 10, 300, lambda: 0.5)


# --------------------------------------------------------------------------------- urls
@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/sealmark",
        "https://hooks.example.com:8443/in?brand=acme",
        "https://xn--fiqs8s.example/hook",
    ],
)
def test_public_https_urls_are_accepted(url: str) -> None:
    assert parse(url, allow_private=False).scheme == "https"


# Named vectors: each is a way to reach what a webhook must never reach.
REFUSED = {
    "plain-http-public": ("http://hooks.example.com/", "want https://"),
    "credentials": ("https://user:pw@hooks.example.com/", "no credentials"),
    "at-sign-trick": ("https://hooks.example.com@10.0.0.1/", "no credentials"),
    "fragment": ("https://hooks.example.com/#x", "no fragment"),
    "ftp": ("ftp://hooks.example.com/", "want an https"),
    "no-host": ("https:///path", "a host is required"),
    "loopback": ("https://127.0.0.1/", "loopback"),
    "localhost": ("http://localhost:8080/", "loopback"),
    "loopback-v6": ("https://[::1]/", "loopback"),
    "private-10": ("https://10.1.2.3/", "private"),
    "private-192": ("https://192.168.0.10/", "private"),
    "metadata": ("https://169.254.169.254/latest/meta-data", "private"),
    "v4-mapped": ("https://[::ffff:10.0.0.1]/", "private"),
    "cgnat": ("https://100.64.0.1/", "private"),
    "unspecified": ("https://0.0.0.0/", "not a unicast"),
    "multicast": ("https://224.0.0.1/", "not a unicast"),
    "decimal-ip": ("https://2130706433/", "not a valid host"),
    "hex-ip": ("https://0x7f.0.0.1/", "not a valid host"),
    "space": ("https://hooks.example.com/a b", "visible ASCII"),
    "non-ascii": ("https://hooks.exämple.com/", "visible ASCII"),
    "too-long": ("https://h.example/" + "a" * 2100, "characters"),
    "bad-port": ("https://hooks.example.com:99999/", "not a URL"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_targets_a_webhook_must_not_reach_are_refused(name: str) -> None:
    url, why = REFUSED[name]
    with pytest.raises(UrlRefused, match=why):
        parse(url, allow_private=False)


def test_private_targets_and_http_to_loopback_when_the_operator_allows() -> None:
    assert parse("http://127.0.0.1:8080/in", allow_private=True).port == 8080
    assert parse("https://10.1.2.3/", allow_private=True).host == "10.1.2.3"
    with pytest.raises(UrlRefused, match="want https://"):
        parse("http://10.1.2.3/", allow_private=True)  # plain http stays loopback only
    with pytest.raises(UrlRefused, match="no credentials"):
        parse("http://u:p@127.0.0.1/", allow_private=True)


# ------------------------------------------------------------------------------- events
AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_event_ids_are_a_function_of_the_fact() -> None:
    a = first_genuine_scan("acme", "09526000000017A1", "v-1", "DE", AT)
    b = first_genuine_scan("acme", "09526000000017A1", "v-2", "FR", AT.replace(hour=10))
    assert a.event_id == b.event_id == event_id("acme", FIRST_GENUINE_SCAN, "09526000000017A1")
    assert a.event_id.startswith("evt_") and len(a.event_id) == 36
    assert first_genuine_scan("other", "09526000000017A1", "v-1", "DE", AT).event_id != a.event_id
    assert a.payload["gtin"] == "09526000000017" and a.payload["serial"] == "A1"
    recall = recall_event("acme", "rc-1", {"reason": "glass"}, AT)
    assert recall.event_id == recall_event("acme", "rc-1", {}, AT).event_id
    assert recall.payload["recall_id"] == "rc-1"


def test_only_subscribable_alert_kinds_are_events() -> None:
    clone = alert_event("acme", "suspect_clone", 7, "09526000000017A1", {"r": 1}, AT)
    assert clone is not None and clone.type == CLONE_ALERT
    assert alert_event("acme", "pin_reused", 8, None, {}, AT) is not None
    assert alert_event("acme", "serial_guessing", 9, None, {}, AT) is None
    assert alert_event("acme", "recalled_scan", 10, None, {}, AT) is None


def test_fan_out_keeps_subscribed_endpoints_of_the_same_tenant() -> None:
    event = first_genuine_scan("acme", "09526000000017A1", "v-1", "DE", AT)
    endpoints = [
        ("acme", "we_b", [FIRST_GENUINE_SCAN]),
        ("acme", "we_a", [FIRST_GENUINE_SCAN, CLONE_ALERT]),
        ("acme", "we_c", [CLONE_ALERT]),
        ("other", "we_d", [FIRST_GENUINE_SCAN]),
    ]
    assert fan_out([event], endpoints) == [(event, ["we_a", "we_b"])]
    assert fan_out([event], endpoints[2:]) == []


def test_port_zero_is_refused() -> None:
    with pytest.raises(UrlRefused, match="port 0"):
        parse("https://hooks.example.com:0/", allow_private=False)
