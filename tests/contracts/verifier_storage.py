"""The contract of the Verifier's ports (verifier/ports.py), one suite for every adapter: the
in-memory fakes (tests/unit/test_verifier_storage_memory.py) and PostgreSQL with Redis
(tests/integration/test_verifier_storage_postgres.py), and any backend to come.

A subclass provides four fixtures: ``storage`` (a VerifierStorage that is also the ScanSink),
``seed`` (a :class:`Seeder` writing what other services write: tenants, products, codes, keys,
recalls), ``state`` (a ScanStateStore) and ``published`` (the alert notices of a tenant, as
watchers read them). Keys are random, so suites may share servers with other tests."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import pytest

from sealmark.errors import NotFound
from sealmark.gs1.links import ProductLink
from sealmark.webhooks.events import (
    CLONE_ALERT,
    FIRST_GENUINE_SCAN,
    alert_event,
    event_id,
)
from verifier.domain import ClientContext, History, Rules
from verifier.ports import (
    MAX_CODES,
    AlertRow,
    CatalogEntry,
    Limits,
    LotStatus,
    MediaBlob,
    MediaReader,
    MediaRef,
    ProductCatalog,
    PublicKey,
    ScanRow,
    ScanSink,
    ScanStateStore,
    StoredCode,
    VerifierStorage,
)

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
NO_LIMITS = Limits("unlimited", 1_000_000, 1_000_000)


class Seeder(Protocol):
    def tenant(self, name: str) -> tuple[str, str]:
        """A new tenant named ``name`` with a company prefix of its own: (id, prefix)."""

    def product(self, tenant_id: str, gtin: str, name: str, profile: str = "signed") -> None: ...

    def code(self, tenant_id: str, gtin: str, serial: str, stored: StoredCode) -> None:
        """Store code ``gtin + serial`` with the facts of ``stored`` (its tenant_id ignored)."""

    def key(self, tenant_id: str, key: PublicKey) -> None: ...

    def recall(self, tenant_id: str, code_key: str, reason: str) -> None: ...

    def endpoint(self, tenant_id: str, events: list[str]) -> str:
        """An active webhook endpoint of the tenant for ``events`` (as Audit registers one);
        its id."""

    def outbox(self, tenant_id: str) -> list[tuple[str, str, list[str]]]:
        """The tenant's outbox: (event id, type, endpoint ids of its deliveries) per event."""


class Storage(VerifierStorage, ScanSink, Protocol):
    """What the ``storage`` fixture gives: both ports of one database."""


def gtin_of(prefix: str, item: str = "1") -> str:
    """A 14-digit GTIN under ``prefix`` with a valid check digit."""
    body = ("0" + prefix + item).ljust(13, "0")[:13]
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def _code(state: str = "commissioned", **changes: object) -> StoredCode:
    facts: dict[str, object] = {
        "tenant_id": "",
        "state": state,
        "lot": "L1",
        "expiry": date(2030, 1, 31),
        "production_date": date(2025, 6, 1),
        "key_id": None,
        "pin_hash": None,
        "market": None,
    }
    facts.update(changes)
    return StoredCode(**facts)  # type: ignore[arg-type]


def _scan(code_key: str, at: datetime, session: str, **changes: object) -> ScanRow:
    facts: dict[str, object] = {
        "verification_id": "v-" + os.urandom(6).hex(),
        "tenant_id": None,
        "code_key": code_key,
        "verdict": "authentic",
        "reasons": ["no_signature"],
        "risk_score": 0.1,
        "session_key": session,
        "region": "DE",
        "latitude": None,
        "longitude": None,
        "active": True,
        "verified_at": at,
    }
    facts.update(changes)
    return ScanRow(**facts)  # type: ignore[arg-type]


def _key() -> str:
    return "c-" + os.urandom(6).hex()


class VerifierStorageContract:
    # ------------------------------------------------------------------ codes and products
    def test_codes_answers_the_stored_keys_only(self, storage: Storage, seed: Seeder) -> None:
        tenant, prefix = seed.tenant("codes")
        gtin = gtin_of(prefix)
        seed.product(tenant, gtin, "Tonic")
        seed.code(tenant, gtin, "A1", _code())
        seed.code(
            tenant,
            gtin,
            "A2",
            _code("recalled", lot="", expiry=None, production_date=None, market="FR-75",
                  pin_hash=b"\x01\x02"),
        )  # fmt: skip
        with storage.reads() as store:
            found = store.codes([gtin + "A2", gtin + "NOPE", gtin + "A1", gtin + "A1"])
            assert store.codes([]) == {}
        assert sorted(found) == [gtin + "A1", gtin + "A2"]
        assert found[gtin + "A1"] == _code(tenant_id=tenant)
        a2 = found[gtin + "A2"]
        assert (a2.tenant_id, a2.state, a2.lot, a2.expiry, a2.production_date) == (
            tenant, "recalled", "", None, None,
        )  # fmt: skip
        assert (a2.pin_hash, a2.market) == (b"\x01\x02", "FR-75")

    def test_codes_refuses_more_keys_than_a_batch(self, storage: Storage) -> None:
        with storage.reads() as store, pytest.raises(ValueError, match="at most 16"):
            store.codes([f"{n:020d}" for n in range(MAX_CODES + 1)])

    def test_product_facts_name_the_brand(self, storage: Storage, seed: Seeder) -> None:
        tenant, prefix = seed.tenant("Acme Pharma")
        signed, compact = gtin_of(prefix, "1"), gtin_of(prefix, "2")
        seed.product(tenant, signed, "Tonic 100 ml")
        seed.product(tenant, compact, "Sachet", "compact")
        with storage.reads() as store:
            tonic, sachet = store.product(signed), store.product(compact)
            assert store.product(gtin_of("99999999", "9")) is None
        assert (tonic.name, tonic.brand, tonic.code_profile) == (
            "Tonic 100 ml",
            "Acme Pharma",
            "signed",
        )
        assert (sachet.name, sachet.code_profile) == ("Sachet", "compact")

    def test_prefixes_map_to_their_tenant(self, storage: Storage, seed: Seeder) -> None:
        first, second = seed.tenant("one"), seed.tenant("two")
        with storage.reads() as store:
            prefixes = store.prefixes()
        assert prefixes[first[1]] == first[0] and prefixes[second[1]] == second[0]

    def test_an_unknown_tenant_is_not_found(self, storage: Storage, seed: Seeder) -> None:
        tenant, _ = seed.tenant("known")
        with storage.reads() as store:
            store.check_tenant(tenant)
            with pytest.raises(NotFound, match="tenant nobody-here not found"):
                store.check_tenant("nobody-here")

    def test_recall_reason(self, storage: Storage, seed: Seeder) -> None:
        tenant, prefix = seed.tenant("recalls")
        gtin = gtin_of(prefix)
        seed.product(tenant, gtin, "Tonic")
        seed.code(tenant, gtin, "R1", _code("recalled"))
        seed.code(tenant, gtin, "R2", _code())
        seed.recall(tenant, gtin + "R1", "contamination in lot L1")
        with storage.reads() as store:
            assert store.recall_reason(gtin + "R1") == "contamination in lot L1"
            assert store.recall_reason(gtin + "R2") is None

    # ---------------------------------------------------------------------- keys and rules
    def test_public_keys_oldest_first(self, storage: Storage, seed: Seeder) -> None:
        tenant, _ = seed.tenant("keys")
        later = PublicKey("K2", b"\x02" * 32, AT + timedelta(days=1), None, None)
        tie = PublicKey("K1", b"\x01" * 32, AT + timedelta(days=1), AT + timedelta(days=2), None)
        first = PublicKey("K3", b"\x03" * 32, AT, AT + timedelta(days=1), AT + timedelta(days=3))
        for key in (later, tie, first):
            seed.key(tenant, key)
        with storage.reads() as store:
            assert store.public_keys(tenant) == [first, tie, later]
            assert store.public_keys("nobody-here") == []

    def test_rules_default_then_replaced(self, storage: Storage, seed: Seeder) -> None:
        tenant, _ = seed.tenant("rules")
        with storage.reads() as store:
            assert store.rules(tenant) == Rules()
        strict = Rules(2, 500.0, 20.0, 5, 60, 30)
        with storage.transaction() as store:
            store.set_rules(tenant, strict, AT)
        with storage.reads() as store:
            assert store.rules(tenant) == strict
        with storage.transaction() as store:
            store.set_rules(tenant, Rules(rate_per_minute=7), AT)
        with storage.reads() as store:
            assert store.rules(tenant) == Rules(rate_per_minute=7)

    def test_a_transaction_that_raises_writes_nothing(self, storage: Storage, seed: Seeder) -> None:
        tenant, _ = seed.tenant("rollback")
        with pytest.raises(KeyError), storage.transaction() as store:
            store.set_rules(tenant, Rules(max_sessions=9), AT)
            store.claim_pin("rollback-key", tenant, "v-1", "s-1", "DE", AT)
            raise KeyError("boom")
        with storage.reads() as store:
            assert store.rules(tenant) == Rules()
        with storage.transaction() as store:
            assert store.claim_pin("rollback-key", tenant, "v-2", "s-2", "DE", AT) is None

    def test_reads_write_nothing(self, storage: Storage, seed: Seeder) -> None:
        tenant, _ = seed.tenant("readonly")
        with storage.reads() as store, pytest.raises(RuntimeError):
            store.set_rules(tenant, Rules(max_sessions=9), AT)
        with storage.reads() as store:
            assert store.rules(tenant) == Rules()

    # ----------------------------------------------------------------- PINs and alerts
    def test_the_first_pin_entry_is_kept(self, storage: Storage, seed: Seeder) -> None:
        tenant, _ = seed.tenant("pins")
        key = _key()
        with storage.transaction() as store:
            assert store.claim_pin(key, tenant, "v-1", "phone-1", "DE", AT) is None
        later = AT + timedelta(hours=2)
        with storage.transaction() as store:
            assert store.claim_pin(key, tenant, "v-2", "phone-2", "FR", later) == (AT, "phone-1")
            assert store.claim_pin(key, tenant, "v-3", "phone-1", "DE", later) == (AT, "phone-1")

    def test_concurrent_first_pin_entries_have_one_winner(
        self, storage: Storage, seed: Seeder
    ) -> None:
        tenant, _ = seed.tenant("pin-race")
        key, start = _key(), threading.Barrier(6)
        answers: list[tuple[datetime, str] | None] = []

        def enter(n: int) -> None:
            start.wait()
            with storage.transaction() as store:
                answers.append(store.claim_pin(key, tenant, f"v-{n}", f"s-{n}", "DE", AT))

        threads = [threading.Thread(target=enter, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        winners = [a for a in answers if a is None]
        assert len(answers) == 6 and len(winners) == 1
        assert len({a for a in answers if a is not None}) == 1  # every loser sees the winner

    def test_alert_ids_increase(self, storage: Storage, seed: Seeder) -> None:
        tenant, _ = seed.tenant("alerts")
        ids = []
        for kind in ("counterfeit", "pin_reused", "diversion"):
            alert = AlertRow(tenant, kind, _key(), "v-1", {"reason": "bad_signature"}, AT)
            with storage.transaction() as store:
                ids.append(store.add_alert(alert))
        assert ids == sorted(ids) and len(set(ids)) == 3

    # ------------------------------------------------------------------ scan log, history
    def test_history_of_a_serial_never_scanned_is_empty(self, storage: Storage) -> None:
        with storage.reads() as store:
            assert store.history(_key()) == (History(), set())

    def test_history_from_the_scan_log(self, storage: Storage) -> None:
        key = _key()
        storage.append_scans(
            [
                _scan(key, AT, "s-inactive", active=False, region="PL"),
                _scan(key, AT + timedelta(minutes=5), "s-1", region="FR"),
                _scan(key, AT + timedelta(minutes=9), "s-2", latitude=48.85, longitude=2.35),
                _scan(key, AT + timedelta(minutes=20), "s-1", latitude=52.52, longitude=13.4),
                _scan(key, AT + timedelta(minutes=30), "s-2", region="IT"),
                _scan(_key(), AT - timedelta(days=1), "s-other"),  # another serial
            ]
        )
        with storage.reads() as store:
            history, sessions = store.history(key)
        assert sessions == {"s-inactive", "s-1", "s-2"}
        assert history == History(
            first_at=AT + timedelta(minutes=5),
            first_region="FR",
            last_at=AT + timedelta(minutes=20),
            last_latitude=52.52,
            last_longitude=13.4,
            sessions=3,
        )

    def test_a_scan_stored_twice_counts_once(self, storage: Storage) -> None:
        key = _key()
        scan = _scan(key, AT, "s-1")
        storage.append_scans([scan])
        storage.append_scans([scan, _scan(key, AT, "s-2")])
        retried = replace(scan, session_key="s-3")  # the same verification id
        storage.append_scans([retried])
        with storage.reads() as store:
            assert store.history(key)[1] == {"s-1", "s-2"}

    # ------------------------------------------------------------------------ scan state
    def test_an_unknown_serial_is_seeded_from_the_rebuild(self, state: ScanStateStore) -> None:
        key, calls = _key(), []
        earlier = AT - timedelta(days=3)

        def rebuild(code_key: str) -> tuple[History, set[str]]:
            calls.append(code_key)
            return History(first_at=earlier, first_region="FR", sessions=1), {"old"}

        first = state.record(key, ClientContext(region="DE"), "new", True, AT, rebuild, NO_LIMITS)
        assert first == (History(first_at=earlier, first_region="FR", sessions=2), True, "")
        second = state.record(key, ClientContext(), "third", True, AT, rebuild, NO_LIMITS)
        assert second[0].sessions == 3 and second[0].first_at == earlier
        assert calls == [key]  # seeded once
        assert not state.degraded

    def test_the_first_active_scan_is_the_first_verification(self, state: ScanStateStore) -> None:
        key, at = _key(), AT.replace(microsecond=123000)

        def rebuild(_: str) -> tuple[History, set[str]]:
            return History(), set()

        empty = state.record(key, ClientContext(region="PL"), "s-1", False, at, rebuild, NO_LIMITS)
        assert empty[0] == History(sessions=1)
        state.record(key, ClientContext(region="FR"), "s-2", True, at, rebuild, NO_LIMITS)
        later = at + timedelta(minutes=1)
        state.record(key, ClientContext(region="IT"), "s-3", True, later, rebuild, NO_LIMITS)
        history, _, _ = state.record(key, ClientContext(), "s-2", True, later, rebuild, NO_LIMITS)
        assert (history.first_at, history.first_region, history.sessions) == (at, "FR", 3)

    def test_the_last_located_scan_is_kept(self, state: ScanStateStore) -> None:
        key = _key()

        def rebuild(_: str) -> tuple[History, set[str]]:
            return History(), set()

        paris = ClientContext(latitude=48.85, longitude=2.35)
        state.record(key, paris, "s-1", True, AT, rebuild, NO_LIMITS)
        state.record(
            key, ClientContext(), "s-1", True, AT + timedelta(minutes=1), rebuild, NO_LIMITS
        )
        history, _, _ = state.record(key, ClientContext(), "s-1", True, AT, rebuild, NO_LIMITS)
        assert (history.last_at, history.last_latitude, history.last_longitude) == (
            AT, 48.85, 2.35,
        )  # fmt: skip

    def test_a_client_over_its_minute_is_refused_and_nothing_recorded(
        self, state: ScanStateStore
    ) -> None:
        def rebuild(_: str) -> tuple[History, set[str]]:
            return History(), set()

        for _ in range(3):  # a minute boundary in the middle resets the count: try again
            minute = int(time.time() // 60)
            key, limits = _key(), Limits(_key(), 2, 100)
            answers = [
                state.record(key, ClientContext(), f"s-{n}", True, AT, rebuild, limits)
                for n in range(3)
            ]
            if int(time.time() // 60) == minute:
                break
        assert [a[2] for a in answers[:2]] == ["", ""]
        assert answers[2] == (
            History(), True, "more than 2 verifications a minute from this client",
        )  # fmt: skip
        admitted = Limits(limits.client, -1, limits.guesses)  # admitted already: not counted
        after = state.record(key, ClientContext(), "s-9", True, AT, rebuild, admitted)
        assert after[2] == "" and after[0].sessions == 3  # s-0, s-1 and s-9: not s-2

    def test_admit_counts_requests_and_guesses(self, state: ScanStateStore) -> None:
        for _ in range(3):
            minute = int(time.time() // 60)
            client = _key()
            answers = [state.admit(Limits(client, 2, 1)) for _ in range(3)]
            if int(time.time() // 60) == minute:
                break
        assert answers == ["", "", "more than 2 verifications a minute from this client"]
        guesser = _key()
        assert [state.guessed(guesser, 600) for _ in range(3)] == [1, 2, 3]
        assert state.admit(Limits(guesser, 100, 3)) == ""
        assert state.guessed(guesser, 600) == 4
        assert state.admit(Limits(guesser, 100, 3)) == (
            "too many unknown serials or wrong PINs from this client"
        )

    def test_first_time_once_per_ttl(self, state: ScanStateStore) -> None:
        key = _key()
        assert state.first_time(key, 3600) is True
        assert state.first_time(key, 3600) is False
        assert state.first_time(_key(), 3600) is True

    def test_alerts_are_published_to_the_tenant(
        self, state: ScanStateStore, published: Callable[[str], list[tuple[int, str]]]
    ) -> None:
        tenant = "t-" + os.urandom(4).hex()
        state.publish_alert(tenant, 41, "counterfeit")
        state.publish_alert(tenant, 42, "pin_reused")
        assert published(tenant) == [(41, "counterfeit"), (42, "pin_reused")]
        assert published("t-" + os.urandom(4).hex()) == []

    # ------------------------------------------------------------------- webhook outbox
    def test_first_genuine_scans_reach_the_outbox_with_their_batch(
        self, storage: Storage, seed: Seeder
    ) -> None:
        tenant, _ = seed.tenant("hooks")
        quiet, _ = seed.tenant("no hooks")
        endpoint = seed.endpoint(tenant, [FIRST_GENUINE_SCAN])
        seed.endpoint(tenant, [CLONE_ALERT])  # not subscribed to first scans
        first, seen, inactive, foreign = _key(), _key(), _key(), _key()
        batch = [
            _scan(first, AT, "s-1", tenant_id=tenant),
            _scan(first, AT, "s-2", tenant_id=tenant),  # a racing second "first" scan
            _scan(seen, AT, "s-1", tenant_id=tenant, verdict="authentic_seen_before"),
            _scan(inactive, AT, "s-1", tenant_id=tenant, active=False),
            _scan(foreign, AT, "s-1", tenant_id=quiet),
        ]
        storage.append_scans(batch)
        storage.append_scans(batch)  # a batch sent again after an unknown outcome
        expected = event_id(tenant, FIRST_GENUINE_SCAN, first)
        assert seed.outbox(tenant) == [(expected, FIRST_GENUINE_SCAN, [endpoint])]
        assert seed.outbox(quiet) == []

    def test_an_alert_event_commits_with_its_transaction(
        self, storage: Storage, seed: Seeder
    ) -> None:
        tenant, _ = seed.tenant("alert hooks")
        endpoint = seed.endpoint(tenant, [CLONE_ALERT])
        alert = AlertRow(tenant, "suspect_clone", _key(), "v-1", {"reason": "x"}, AT)
        with pytest.raises(RuntimeError), storage.transaction() as store:
            alert_id = store.add_alert(alert)
            event = alert_event(tenant, alert.kind, alert_id, alert.code_key, {}, AT)
            assert event is not None
            store.add_outbox([event])
            raise RuntimeError("rolled back after both writes")
        assert seed.outbox(tenant) == []
        with storage.transaction() as store:
            alert_id = store.add_alert(alert)
            event = alert_event(tenant, alert.kind, alert_id, alert.code_key, {}, AT)
            assert event is not None
            assert store.add_outbox([event]) == 1
            assert store.add_outbox([event]) == 0
        assert seed.outbox(tenant) == [(event.event_id, CLONE_ALERT, [endpoint])]


# ------------------------------------------------------------------- the page's pictures

MediaSeed = Callable[[str, MediaRef, bytes], None]


def _ref(kind: str, gtin: str, body: bytes, media_type: str = "image/png") -> MediaRef:
    return MediaRef(kind, gtin, hashlib.sha256(body).hexdigest(), media_type, 64, 48, "")


class MediaReaderContract:
    """:class:`verifier.ports.MediaReader`. A subclass provides ``media_reader`` and
    ``seed_media`` (writes a row as the Issuer's SetProductMedia would)."""

    def test_a_product_has_its_own_pictures_and_its_brands_logo(
        self, media_reader: MediaReader, seed_media: MediaSeed
    ) -> None:
        tenant_id, gtin = f"m-{os.urandom(4).hex()}", gtin_of("95201", "7")
        brand_logo = _ref("logo", "", b"brand logo " + os.urandom(8))
        image = _ref("image", gtin, b"image " + os.urandom(8), "image/webp")
        other_image = _ref("image", gtin_of("95201", "8"), b"other " + os.urandom(8))
        for ref in (brand_logo, image, other_image):
            seed_media(tenant_id, ref, b"x")
        refs = media_reader.media_refs(tenant_id, gtin)
        assert refs == [brand_logo, image]  # GTIN "" first, then by kind
        assert media_reader.media_refs(f"other-{tenant_id}", gtin) == []
        assert media_reader.media_refs(tenant_id, gtin_of("95201", "9")) == [brand_logo]

    def test_bytes_are_found_by_their_digest(
        self, media_reader: MediaReader, seed_media: MediaSeed
    ) -> None:
        tenant_id, gtin = f"m-{os.urandom(4).hex()}", gtin_of("95202", "1")
        body = b"\x89PNG picture " + os.urandom(16)
        ref = _ref("logo", gtin, body)
        seed_media(tenant_id, ref, body)
        assert media_reader.media_blob(ref.sha256) == MediaBlob(ref.sha256, "image/png", body)
        assert media_reader.media_blob(hashlib.sha256(b"nobody's").hexdigest()) is None


# ------------------------------------------------------------------ the resolver's catalog


class CatalogSeeder(Protocol):
    """What the Issuer, the Audit and tenancy write that the resolver's catalog reads."""

    def tenant(self, name: str) -> tuple[str, str]:
        """A new tenant named ``name`` with a company prefix of its own: (id, prefix)."""

    def product(self, tenant_id: str, gtin: str, name: str) -> None: ...

    def links(self, tenant_id: str, gtin: str, links: list[ProductLink]) -> None:
        """The brand registered ``links`` for the product, in this order."""

    def lot(self, tenant_id: str, gtin: str, lot: str) -> None:
        """A code of the lot was issued."""

    def hold(self, tenant_id: str, gtin: str, lot: str, reason: str) -> None: ...

    def recall_lot(self, tenant_id: str, gtin: str, lot: str, reason: str) -> None: ...

    def recall_product(self, tenant_id: str, gtin: str, reason: str) -> None: ...


class ProductCatalogContract:
    """The :class:`~verifier.ports.ProductCatalog` contract. A subclass provides ``catalog``
    and ``catalog_seed`` (a :class:`CatalogSeeder` writing where ``catalog`` reads)."""

    def test_an_entry_names_its_tenant_and_brand(
        self, catalog: ProductCatalog, catalog_seed: CatalogSeeder
    ) -> None:
        tenant, prefix = catalog_seed.tenant("Acme Drinks")
        gtin = gtin_of(prefix)
        catalog_seed.product(tenant, gtin, "Tonic 100 ml")
        assert catalog.entry(gtin) == CatalogEntry(tenant, gtin, "Tonic 100 ml", "Acme Drinks")
        assert catalog.entry(gtin_of(prefix, "2")) is None

    def test_links_come_in_registration_order_for_their_tenant_only(
        self, catalog: ProductCatalog, catalog_seed: CatalogSeeder
    ) -> None:
        tenant, prefix = catalog_seed.tenant("links")
        gtin, bare = gtin_of(prefix), gtin_of(prefix, "3")
        catalog_seed.product(tenant, gtin, "Tonic")
        catalog_seed.product(tenant, bare, "Water")
        links = [
            ProductLink("recipeInfo", "https://brand.example/recipes", "Recipes"),
            ProductLink("pip", "https://brand.example/en", "Info", "en", "", "text/html"),
            ProductLink("pip", "https://brand.example/zh", "信息", "zh-CN", "retail"),
        ]
        catalog_seed.links(tenant, gtin, links)
        assert catalog.links(tenant, gtin) == links
        assert catalog.links(tenant, bare) == []
        other, _ = catalog_seed.tenant("other")
        assert catalog.links(other, gtin) == []

    def test_lot_status_says_issued_held_and_recalled(
        self, catalog: ProductCatalog, catalog_seed: CatalogSeeder
    ) -> None:
        tenant, prefix = catalog_seed.tenant("lots")
        gtin = gtin_of(prefix)
        catalog_seed.product(tenant, gtin, "Tonic")
        catalog_seed.lot(tenant, gtin, "L1")
        catalog_seed.lot(tenant, gtin, "L2")
        catalog_seed.hold(tenant, gtin, "L2", "QC sample failed")
        catalog_seed.lot(tenant, gtin, "L3")
        catalog_seed.recall_lot(tenant, gtin, "L3", "glass splinters")
        assert catalog.lot_status(tenant, gtin, "L1") == LotStatus(issued=True)
        assert catalog.lot_status(tenant, gtin, "L2") == LotStatus(
            issued=True, held=True, hold_reason="QC sample failed"
        )
        assert catalog.lot_status(tenant, gtin, "L3") == LotStatus(
            issued=True, recalled=True, recall_reason="glass splinters"
        )
        assert catalog.lot_status(tenant, gtin, "L9") == LotStatus()
        other, _ = catalog_seed.tenant("other lots")
        assert catalog.lot_status(other, gtin, "L3") == LotStatus()
        assert catalog.product_recall(tenant, gtin) is None

    def test_a_product_recall_recalls_every_lot(
        self, catalog: ProductCatalog, catalog_seed: CatalogSeeder
    ) -> None:
        tenant, prefix = catalog_seed.tenant("recalled")
        gtin = gtin_of(prefix)
        catalog_seed.product(tenant, gtin, "Tonic")
        catalog_seed.lot(tenant, gtin, "L1")
        catalog_seed.recall_product(tenant, gtin, "undeclared allergen")
        assert catalog.product_recall(tenant, gtin) == "undeclared allergen"
        status = catalog.lot_status(tenant, gtin, "L1")
        assert status.recalled and status.recall_reason == "undeclared allergen"
        assert catalog.lot_status(tenant, gtin, "L7").recalled

    def test_a_prefix_finds_its_brand(
        self, catalog: ProductCatalog, catalog_seed: CatalogSeeder
    ) -> None:
        tenant, prefix = catalog_seed.tenant("Pallet Brand")
        assert catalog.brand_of_prefix(prefix + "0000012") == (tenant, "Pallet Brand")
        assert catalog.brand_of_prefix("0000000000000000") is None
        assert catalog.brand_of_prefix("12") is None
