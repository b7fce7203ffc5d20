"""The Verifier's use case on its in-memory fakes (verifier/memory.py): verdicts and their
reasons, scan counts, limits, named fields and errors, with real signatures and PINs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from nacl.signing import SigningKey

from sealmark.clock import FixedClock
from sealmark.crypto.pins import PinScheme
from sealmark.crypto.signature import canonical_bytes, encode_ai8030
from sealmark.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from sealmark.gs1.code import GS1Code
from tests.contracts.verifier_storage import gtin_of
from verifier import domain, messages
from verifier.domain import ClientContext, Rules, Verdict
from verifier.memory import MemoryScanState, MemoryVerifierStorage
from verifier.ports import ProductFacts, PublicKey, StoredCode
from verifier.scanlog import ScanLog
from verifier.usecases import Verifier

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
PEPPER = b"unit-test-pepper-0123456789"
TENANT, PREFIX = "t-acme", "95201234"
GTIN = gtin_of(PREFIX)
KEY = SigningKey(b"\x07" * 32)
EXPIRY = date(2030, 1, 31)
PHONE = ClientContext(session_id="phone-1", region="DE", client="10.0.0.1")


def signed(serial: str, *, key: SigningKey = KEY, gtin: str = GTIN) -> str:
    """The Digital Link printed on the pack of ``serial``, signed by ``key``."""
    message = canonical_bytes(gtin, serial, "L1", EXPIRY.strftime("%y%m%d"), "K1")
    signature = encode_ai8030("K1", key.sign(message).signature)
    return GS1Code(gtin, serial, "L1", EXPIRY, signature=signature).to_digital_link("id.acme.eu")


def stored(state: str = "commissioned", **changes: object) -> StoredCode:
    code = StoredCode(TENANT, state, "L1", EXPIRY, date(2025, 6, 1), "K1", None, None)
    return replace(code, **changes)  # type: ignore[arg-type]


@dataclass
class World:
    verifier: Verifier
    storage: MemoryVerifierStorage
    state: MemoryScanState
    log: ScanLog
    clock: FixedClock


@pytest.fixture
def world() -> Iterator[World]:
    storage = MemoryVerifierStorage()
    storage.add_tenant(TENANT, [PREFIX])
    storage.add_product(GTIN, ProductFacts("Tonic 100 ml", "Acme"))
    storage.add_key(
        TENANT, PublicKey("K1", bytes(KEY.verify_key), NOW - timedelta(days=30), None, None)
    )
    storage.add_code(GTIN + "S1", stored())
    state = MemoryScanState(clock=lambda: 29_000_000 * 60.0)  # one minute, all test long
    log = ScanLog(storage, every_s=3600)  # flushed when told
    clock = FixedClock(NOW)
    ids = itertools.count(1)
    verifier = Verifier(
        storage,
        state,
        log,
        clock=clock,
        pins=PinScheme(PEPPER),
        macs=None,
        new_id=lambda: f"v-{next(ids)}",
    )
    yield World(verifier, storage, state, log, clock)
    verifier.close()


def codes(result: object) -> list[str]:
    return [r.code for r in result.reasons]  # type: ignore[attr-defined]


def test_a_genuine_code_is_authentic_and_logged(world: World) -> None:
    result = world.verifier.verify(signed("S1"), None, PHONE)
    assert (result.verdict, result.reasons, result.risk_score) == (Verdict.AUTHENTIC, [], 0.0)
    assert (result.verification_id, result.serial, result.tenant_id) == ("v-1", "S1", TENANT)
    assert result.product is not None
    assert (result.product.name, result.product.brand, result.product.lot) == (
        "Tonic 100 ml", "Acme", "L1",
    )  # fmt: skip
    assert (result.session_count, result.first_verified_at, result.degraded) == (1, None, False)
    assert world.verifier.flush() == 1
    (row,) = world.storage.scans
    assert (row.verification_id, row.code_key, row.verdict, row.session_key) == (
        "v-1", GTIN + "S1", "authentic", "phone-1",
    )  # fmt: skip


def test_each_new_session_counts_and_the_first_scan_is_remembered(world: World) -> None:
    world.verifier.verify(signed("S1"), None, PHONE)
    world.clock.advance(minutes=5)
    second = world.verifier.verify(signed("S1"), None, replace(PHONE, session_id="phone-2"))
    assert second.verdict is Verdict.AUTHENTIC_SEEN_BEFORE
    assert codes(second) == ["seen_before"]
    assert second.reasons[0].params == {"first_at": NOW.isoformat(), "first_region": "DE"}
    assert (second.session_count, second.first_verified_at) == (2, NOW)
    again = world.verifier.verify(signed("S1"), None, replace(PHONE, session_id="phone-2"))
    assert again.session_count == 2  # the same phone again is no new session
    third = world.verifier.verify(signed("S1"), None, replace(PHONE, session_id="phone-3"))
    assert third.session_count == 3


def test_too_many_sessions_is_a_suspect_clone(world: World) -> None:
    for n in range(3):
        world.verifier.verify(signed("S1"), None, replace(PHONE, session_id=f"phone-{n}"))
    result = world.verifier.verify(signed("S1"), None, replace(PHONE, session_id="phone-9"))
    assert result.verdict is Verdict.SUSPECT_CLONE
    clone = next(r for r in result.reasons if r.code == "too_many_sessions")
    assert (clone.rule, clone.params) == ("sessions > 3", {"sessions": "4", "limit": "3"})
    assert "suspect_clone" in result.alerts


def test_an_unknown_serial_is_counterfeit_and_alerted(world: World) -> None:
    result = world.verifier.verify(signed("NEVER1"), None, PHONE)
    assert (result.verdict, codes(result)) == (Verdict.COUNTERFEIT, ["never_issued"])
    assert (result.product, result.pin_available) == (None, False)
    assert result.alerts == ["counterfeit"]
    (alert,) = world.storage.alerts
    assert (alert.tenant_id, alert.kind, alert.code_key) == (TENANT, "counterfeit", GTIN + "NEVER1")
    assert alert.details == {"reason": "never_issued", "region": "DE"}
    assert world.state.published == [(TENANT, 1, "counterfeit")]


def test_a_forged_signature_is_counterfeit(world: World) -> None:
    forged = signed("S1", key=SigningKey(b"\x08" * 32))
    result = world.verifier.verify(forged, None, PHONE)
    assert (result.verdict, codes(result), result.risk_score) == (
        Verdict.COUNTERFEIT, ["bad_signature"], 1.0,
    )  # fmt: skip
    assert result.product is None  # answered before the stored code was read


def test_codes_of_no_brand_and_unreadable_payloads_are_invalid(world: World) -> None:
    foreign = world.verifier.verify(signed("S1", gtin=gtin_of("40000001")), None, PHONE)
    assert (foreign.verdict, codes(foreign), foreign.tenant_id) == (
        Verdict.INVALID, ["not_our_code"], "",
    )  # fmt: skip
    junk = world.verifier.verify("hello world", None, PHONE)
    assert (junk.verdict, codes(junk)) == (Verdict.INVALID, ["unparseable"])
    assert junk.reasons[0].params["detail"].startswith("payload")


@pytest.mark.parametrize(
    ("state", "verdict", "reason", "params"),
    [
        ("destroyed", Verdict.INACTIVE, "inactive", {"state": "destroyed"}),
        ("dispensed", Verdict.INACTIVE, "inactive", {"state": "dispensed"}),
        ("allocated", Verdict.COUNTERFEIT, "never_commissioned", {}),
        ("scrapped", Verdict.COUNTERFEIT, "scrapped", {}),
        ("recalled", Verdict.RECALLED, "recalled", {}),
    ],
)
def test_decommissioned_codes_say_why(
    world: World, state: str, verdict: Verdict, reason: str, params: dict[str, str]
) -> None:
    world.storage.set_state(GTIN + "S1", state)
    result = world.verifier.verify(signed("S1"), None, PHONE)
    assert result.verdict is verdict
    assert result.reasons[0].code == reason and result.reasons[0].params == params
    assert result.reasons[0].weight == domain.REASONS[reason].weight


def test_a_recall_gives_the_brands_reason(world: World) -> None:
    world.storage.set_state(GTIN + "S1", "recalled")
    world.storage.recall(GTIN + "S1", "glass splinters in lot L1")
    result = world.verifier.verify(signed("S1"), None, PHONE)
    assert (result.verdict, codes(result)) == (Verdict.RECALLED, ["recalled"])
    assert result.reasons[0].params == {"reason": "glass splinters in lot L1"}
    assert result.alerts == ["recalled_scan"]


def test_an_expired_code_says_when(world: World) -> None:
    world.storage.add_code(GTIN + "S2", stored(expiry=date(2026, 2, 1)))
    result = world.verifier.verify(signed("S2"), None, PHONE)
    assert result.verdict is Verdict.EXPIRED
    assert [(r.code, r.params) for r in result.reasons] == [("expired", {"expiry": "2026-02-01"})]


def test_the_hidden_pin_is_confirmed_once_then_reused(world: World) -> None:
    pin_hash = PinScheme(PEPPER).pin_hash(GTIN + "S1", "482913")
    world.storage.add_code(GTIN + "S1", stored(pin_hash=pin_hash))
    first = world.verifier.verify(signed("S1"), "482913", PHONE)
    assert (first.verdict, codes(first), first.pin_confirmed) == (
        Verdict.AUTHENTIC, ["pin_confirmed"], True,
    )  # fmt: skip
    reload = world.verifier.verify(signed("S1"), "482913", PHONE)
    assert reload.pin_confirmed  # the same session entering it again
    wrong = world.verifier.verify(signed("S1"), "000000", replace(PHONE, session_id="phone-2"))
    assert "pin_wrong" in codes(wrong) and not wrong.pin_confirmed
    copied = world.verifier.verify(signed("S1"), "482913", replace(PHONE, session_id="phone-3"))
    assert copied.verdict is Verdict.SUSPECT_CLONE
    reused = next(r for r in copied.reasons if r.code == "pin_reused")
    assert reused.params == {"first_used_at": NOW.isoformat()}
    assert "pin_reused" in copied.alerts


def test_a_client_over_the_rate_limit_is_refused(world: World) -> None:
    world.verifier.set_rules(TENANT, Rules(rate_per_minute=2))
    for _ in range(2):
        world.verifier.verify(signed("S1"), None, PHONE)
    with pytest.raises(ResourceExhausted, match="more than 2 verifications a minute"):
        world.verifier.verify(signed("S1"), None, PHONE)
    world.verifier.flush()
    assert len(world.storage.scans) == 2  # the refused scan was never recorded
    other = world.verifier.verify(signed("S1"), None, replace(PHONE, client="10.0.0.2"))
    assert other.verdict is Verdict.AUTHENTIC_SEEN_BEFORE  # limits count per client


def test_serial_guessing_is_refused_and_alerted(world: World) -> None:
    world.verifier.set_rules(TENANT, Rules(guess_limit=2, rate_per_minute=1000))
    alerts = [world.verifier.verify(signed(f"G{n}"), None, PHONE).alerts for n in range(3)]
    assert "serial_guessing" in alerts[2]
    with pytest.raises(ResourceExhausted, match="too many unknown serials"):
        world.verifier.verify(signed("S1"), None, PHONE)


@pytest.mark.parametrize(
    ("payload", "pin", "context", "field"),
    [
        ("", None, PHONE, "payload"),
        ("x" * 4097, None, PHONE, "payload"),
        (signed("S1"), "1" * 33, PHONE, "pin"),
        (signed("S1"), None, replace(PHONE, latitude=48.1), "context.latitude"),
        (signed("S1"), None, replace(PHONE, region="Germany"), "context.region"),
        (signed("S1"), None, replace(PHONE, session_id="a\nb"), "context.session_id"),
    ],
)
def test_bad_input_names_the_field(
    world: World, payload: str, pin: str | None, context: ClientContext, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        world.verifier.verify(payload, pin, context)
    assert caught.value.field == field
    assert world.verifier.flush() == 0  # refused before anything was recorded


def test_a_given_parse_is_not_parsed_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    code = GS1Code.from_scan(signed("S1"), today=NOW.date())
    bad = InvalidArgument("payload", "not a GS1 Digital Link, element string or HRI")

    def no_second_parse(*args: object, **kwargs: object) -> GS1Code:
        raise AssertionError("parsed twice")

    monkeypatch.setattr(GS1Code, "from_scan", no_second_parse)
    assert world.verifier.verify(signed("S1"), None, PHONE, parsed=code).verdict is (
        Verdict.AUTHENTIC
    )
    junk = world.verifier.verify("junk", None, PHONE, parsed=bad)
    assert (junk.verdict, codes(junk)) == (Verdict.INVALID, ["unparseable"])


def test_without_redis_the_history_comes_from_the_scan_log(world: World) -> None:
    world.verifier.verify(signed("S1"), None, PHONE)
    world.verifier.flush()
    world.state.available = False
    world.clock.advance(minutes=1)
    queued = world.verifier.verify(signed("S1"), None, replace(PHONE, session_id="phone-2"))
    later = world.verifier.verify(signed("S1"), None, replace(PHONE, session_id="phone-3"))
    assert (queued.degraded, queued.session_count, queued.first_verified_at) == (True, 2, NOW)
    assert later.session_count == 3  # the queued scan of phone-2 counts before it is written
    assert world.verifier.health() == {"status": "degraded", "redis": "down", "postgres": "up"}


def test_a_full_scan_log_is_unavailable(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("verifier.scanlog.MAX_QUEUED", 1)
    world.verifier.verify(signed("S1"), None, PHONE)
    with pytest.raises(Unavailable, match="scan log full"):
        world.verifier.verify(signed("S1"), None, PHONE)


def test_a_refused_batch_stays_queued(world: World) -> None:
    world.verifier.verify(signed("S1"), None, PHONE)
    world.storage.fail_appends = Unavailable("database unavailable: connection refused")
    with pytest.raises(Unavailable):
        world.verifier.flush()
    assert world.verifier.health() == {"status": "degraded", "redis": "up", "postgres": "down"}
    world.storage.fail_appends = None
    assert world.verifier.flush() == 1
    assert world.verifier.health() == {"status": "ok", "redis": "up", "postgres": "up"}
    assert [s.verification_id for s in world.storage.scans] == ["v-1"]


def test_public_keys_of_a_tenant_or_of_a_gtin(world: World) -> None:
    owner, keys = world.verifier.public_keys(None, GTIN)
    assert (owner, [k.key_id for k in keys]) == (TENANT, ["K1"])
    key_set = world.verifier.key_set(TENANT, None)
    assert key_set["tenant"] == TENANT and key_set["keys"][0]["algorithm"] == "Ed25519"
    with pytest.raises(NotFound, match="tenant nobody not found"):
        world.verifier.public_keys("nobody", None)
    with pytest.raises(NotFound, match="no brand owns GTIN"):
        world.verifier.public_keys(None, gtin_of("40000001"))
    with pytest.raises(NotFound):
        world.verifier.set_rules("nobody", Rules())


def test_the_reason_catalogue_and_the_texts_have_the_same_codes() -> None:
    assert set(domain.REASONS) == set(messages.REASON_CODES)


def test_the_ports_and_fakes_import_no_io() -> None:
    """verifier/ports.py and verifier/memory.py are as pure as the domain (STYLE.md habit 1)."""
    from tests.unit.test_architecture import FORBIDDEN, ROOT, imported_names

    for name in ("ports.py", "memory.py", "domain.py"):
        names = imported_names(ROOT / "verifier" / name)
        assert not [n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
        assert not [n for n in names if n.startswith("sealmark_app")]
