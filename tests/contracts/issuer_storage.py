"""The Issuer's storage contract (:mod:`issuer.ports`), for every adapter: the in-memory fake
in unit tests, PostgreSQL in integration tests, and any later backend (a Citus coordinator).

A subclass provides the ``backend`` fixture: an :class:`IssuerBackend` over an empty (or at
least shared-nothing) store. Every test makes its own tenant, so stores may be shared."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import pytest

from issuer.domain.media import MediaKind, StoredMedia
from issuer.domain.records import IssueRequestRow, Minted, MintSpec
from issuer.minting import mint
from issuer.ports import IssuerStorage, ProductMediaStorage
from sealmark.crypto.keys import SealedKey
from sealmark.crypto.pins import PinScheme
from sealmark.errors import AlreadyExists, NotFound
from sealmark.events import NewEvent
from sealmark.gs1.links import ProductLink
from sealmark.storage.ports import UnitOfWorkFactory
from sealmark.tenancy.alphabets import SERIAL_ALPHABETS
from sealmark.tenancy.model import Product
from tests.storage_contract import gtin_under, tenant

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PINS = PinScheme(b"contract-pepper-0123456789")


class IssuerBackend(Protocol):
    """One adapter under test, with the hooks that stand in for other services' writes."""

    @property
    def storage(self) -> IssuerStorage: ...

    @property
    def tenancy(self) -> UnitOfWorkFactory:
        """To seed tenants and products, and to read the event log."""

    def pack(self, tenant_id: str, child_key: str, parent_key: str) -> None:
        """The Aggregator packed ``child_key`` in ``parent_key``."""

    def recall_lot(self, tenant_id: str, gtin: str, lot: str) -> None:
        """The Audit recalled the lot."""


def _brand(backend: IssuerBackend | MediaBackend, products: int = 1) -> tuple[str, list[str]]:
    """A new tenant with ``products`` products: (tenant id, GTINs)."""
    brand = tenant()
    gtins = [gtin_under(brand.company_prefixes[0] + str(i)) for i in range(products)]
    with backend.tenancy() as uow:
        uow.tenants.add(brand)
        for gtin in gtins:
            uow.products.add(Product(brand.id, gtin, "Tonic"))
        uow.commit()
    return brand.id, gtins


def _sealed(key_id: str, fill: int) -> SealedKey:
    return SealedKey(key_id, bytes([fill]) * 32, b"-----PEM " + key_id.encode() + b"-----")


def _request(
    tenant_id: str, gtin: str, request_id: str = "r1", **changes: object
) -> IssueRequestRow:
    fields: dict[str, object] = {
        "tenant_id": tenant_id,
        "request_id": request_id,
        "gtin": gtin,
        "lot": "LOT1",
        "expiry": date(2030, 12, 31),
        "production_date": None,
        "quantity": 10,
        "line_id": "L1",
        "work_order": "WO1",
        "key_id": "AB",
        "generated": 0,
    }
    fields.update(changes)
    return IssueRequestRow(**fields)


def _minted(request: IssueRequestRow, seqs: list[int], seed: int) -> Minted:
    spec = MintSpec(
        request.tenant_id,
        request.request_id,
        request.gtin,
        request.lot,
        request.expiry,
        request.production_date,
        request.key_id,
        request.work_order,
        request.line_id,
        SERIAL_ALPHABETS["numeric"],
        12,
        6,
    )

    def sign_many(messages: list[bytes]) -> list[bytes]:
        return [bytes(64) for _ in messages]

    return mint(spec, seqs, sign_many, PINS, random.Random(seed).randbytes, T0)


def _stored_request(backend: IssuerBackend, row: IssueRequestRow) -> None:
    with backend.storage.transaction() as tx:
        assert tx.issuance.create_request(row)
        tx.commit()


def _issue(backend: IssuerBackend, row: IssueRequestRow, seed: int) -> Minted:
    """Store ``row`` and all its codes (none colliding); return them."""
    _stored_request(backend, row)
    minted = _minted(row, list(range(row.quantity)), seed)
    with backend.storage.transaction() as tx:
        assert tx.issuance.insert_codes(row, minted) == set()
        tx.issuance.set_generated(row.tenant_id, row.request_id, row.quantity)
        tx.commit()
    return minted


class IssuerStorageContract:
    """Tests every adapter of the Issuer's storage port must pass."""

    # -- keys -------------------------------------------------------------------------------
    def test_keys_rotate_retire_and_revoke(self, backend: IssuerBackend) -> None:
        tenant_id, _ = _brand(backend)
        storage = backend.storage
        with storage.transaction() as tx:
            with pytest.raises(NotFound, match="keys rotate"):
                tx.issuance.active_key(tenant_id)
            assert tx.issuance.lock_tenant_keys(tenant_id) == 0
            assert tx.issuance.add_key(tenant_id, _sealed("AA", 1), T0) is None
            tx.commit()
        t1, t2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
        with storage.transaction() as tx:
            assert tx.issuance.lock_tenant_keys(tenant_id) == 1
            assert tx.issuance.add_key(tenant_id, _sealed("AB", 2), t1, request_id="rot-1") == "AA"
            tx.commit()
        with storage.transaction() as tx:
            retired = tx.issuance.add_key(
                tenant_id, _sealed("AC", 3), t2, request_id="rot-2", revoke_reason="leaked"
            )
            assert retired == "AB"
            tx.commit()
        with storage.transaction() as tx:
            store = tx.issuance
            assert store.active_key(tenant_id) == _sealed("AC", 3)
            assert store.sealed_key(tenant_id, "AA") == _sealed("AA", 1)
            keys = store.keys(tenant_id)
            assert [k.key_id for k in keys] == ["AA", "AB", "AC"]
            assert [k.public_key for k in keys] == [bytes([n]) * 32 for n in (1, 2, 3)]
            assert [k.created_at for k in keys] == [T0, t1, t2]
            assert [k.retired_at for k in keys] == [t1, t2, None]
            assert [k.revoked_at for k in keys] == [None, t2, None]
            assert [k.revoke_reason for k in keys] == [None, "leaked", None]
            assert store.revocation(tenant_id, "AB") == (t2, "leaked")
            assert store.revocation(tenant_id, "AA") is None
            assert store.revocation(tenant_id, "AC") is None
            assert store.rotation(tenant_id, "rot-1") == ("AB", False)
            assert store.rotation(tenant_id, "rot-2") == ("AC", True)
            assert store.rotation(tenant_id, "rot-3") is None
            assert store.lock_tenant_keys(tenant_id) == 3
            with pytest.raises(NotFound):
                store.sealed_key(tenant_id, "ZZ")

    def test_a_token_key_keeps_its_label(self, backend: IssuerBackend) -> None:
        tenant_id, _ = _brand(backend)
        key = SealedKey("HS", bytes(range(32)), None, "pkcs11", "sealmark-HS")
        with backend.storage.transaction() as tx:
            tx.issuance.add_key(tenant_id, key, T0)
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.issuance.active_key(tenant_id) == key

    def test_a_duplicate_key_or_rotation_id_is_already_exists(self, backend: IssuerBackend) -> None:
        tenant_id, _ = _brand(backend)
        with backend.storage.transaction() as tx:
            tx.issuance.add_key(tenant_id, _sealed("AA", 1), T0, request_id="rot-1")
            tx.commit()
        with pytest.raises(AlreadyExists), backend.storage.transaction() as tx:
            tx.issuance.add_key(tenant_id, _sealed("AA", 2), T0 + timedelta(1))
        with pytest.raises(AlreadyExists), backend.storage.transaction() as tx:
            tx.issuance.add_key(tenant_id, _sealed("AB", 2), T0 + timedelta(1), request_id="rot-1")
        with backend.storage.transaction() as tx:
            assert [k.key_id for k in tx.issuance.keys(tenant_id)] == ["AA"]
            assert tx.issuance.active_key(tenant_id).public_key == bytes([1]) * 32

    def test_keys_are_per_tenant(self, backend: IssuerBackend) -> None:
        mine, _ = _brand(backend)
        theirs, _ = _brand(backend)
        with backend.storage.transaction() as tx:
            tx.issuance.add_key(mine, _sealed("AA", 1), T0)
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.issuance.keys(theirs) == []
            with pytest.raises(NotFound):
                tx.issuance.sealed_key(theirs, "AA")

    # -- requests ---------------------------------------------------------------------------
    def test_a_request_is_created_once(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        row = _request(tenant_id, gtin, quantity=7, production_date=date(2026, 10, 1))
        with backend.storage.transaction() as tx:
            assert tx.issuance.create_request(row) is True
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.issuance.create_request(_request(tenant_id, gtin, quantity=9)) is False
            tx.commit()
        with backend.storage.transaction() as tx:
            stored = tx.issuance.request(tenant_id, "r1")
            assert stored.created_at is not None
            assert stored == IssueRequestRow(**{**vars(row), "created_at": stored.created_at})
            with pytest.raises(NotFound):
                tx.issuance.request(tenant_id, "r2")
            other, _ = _brand(backend)
            with pytest.raises(NotFound):
                tx.issuance.request(other, "r1")

    def test_generated_advances(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        _stored_request(backend, _request(tenant_id, gtin))
        with backend.storage.transaction() as tx:
            tx.issuance.set_generated(tenant_id, "r1", 4)
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.issuance.request(tenant_id, "r1", lock=True).generated == 4

    def test_nothing_is_kept_without_commit(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        row = _request(tenant_id, gtin)
        with backend.storage.transaction() as tx:
            tx.issuance.create_request(row)
            tx.issuance.reserve_serials(gtin, 10)
            tx.issuance.add_key(tenant_id, _sealed("AA", 1), T0)
            tx.events.append(NewEvent(tenant_id, "codes.issued", "issue:r1", T0, {}))
            tx.lines.set_hold(tenant_id, gtin, "LOT1", True, "QC", T0, "tok")
            tx.lines.store_summary(tenant_id, "b1", "commissioned", {"accepted": 1})
            tx.lines.reserve_references(tenant_id, "s1", "9520000001", 0, 5)
        stored = _request(tenant_id, gtin, "r2", quantity=3)
        minted = _minted(stored, [0, 1, 2], seed=41)
        _stored_request(backend, stored)
        with backend.storage.transaction() as tx:
            assert tx.issuance.insert_codes(stored, minted) == set()
            tx.issuance.set_generated(tenant_id, "r2", 3)
        with backend.storage.transaction() as tx:
            with pytest.raises(NotFound):
                tx.issuance.request(tenant_id, "r1")
            assert tx.issuance.issued_count(gtin) == 0
            assert tx.issuance.keys(tenant_id) == []
            assert tx.lines.held_lots(gtin, ["LOT1"]) == set()
            assert tx.lines.stored_summary(tenant_id, "b1") is None
            assert tx.lines.allocation(tenant_id, "s1") is None
            assert tx.issuance.codes(tenant_id, "r2", 0, 3) == []
            assert tx.issuance.request(tenant_id, "r2").generated == 0
            # The codes left nothing behind: drawn again, they are stored.
            assert tx.issuance.insert_codes(stored, minted) == set()
        with backend.tenancy() as uow:
            assert list(uow.events.read(tenant_id)) == []

    def test_events_commit_with_the_writes(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        with backend.storage.transaction() as tx:
            assert tx.tenants.get(tenant_id).id == tenant_id
            assert tx.products.get(gtin).tenant_id == tenant_id
            tx.issuance.create_request(_request(tenant_id, gtin))
            first = tx.events.append(NewEvent(tenant_id, "codes.issued", "issue:r1", T0, {"n": 1}))
            second = tx.events.append(NewEvent(tenant_id, "codes.issued", "issue:r1", T0, {}))
            assert second > first
            tx.commit()
        with backend.tenancy() as uow:
            events = list(uow.events.read(tenant_id))
        assert [(e.id, e.kind, e.payload) for e in events] == [
            (first, "codes.issued", {"n": 1}),
            (second, "codes.issued", {}),
        ]

    def test_a_locked_request_waits_for_the_holder(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        _stored_request(backend, _request(tenant_id, gtin))
        locked, seen = threading.Event(), []

        def second() -> None:
            locked.wait(10)
            with backend.storage.transaction() as tx:
                seen.append(tx.issuance.request(tenant_id, "r1", lock=True).generated)
                tx.commit()

        thread = threading.Thread(target=second)
        thread.start()
        with backend.storage.transaction() as tx:
            tx.issuance.request(tenant_id, "r1", lock=True)
            locked.set()
            time.sleep(0.3)
            assert seen == []  # still waiting for this transaction
            tx.issuance.set_generated(tenant_id, "r1", 5)
            tx.commit()
        thread.join(10)
        assert seen == [5]

    def test_serials_are_reserved_per_gtin(self, backend: IssuerBackend) -> None:
        _, (gtin, other) = _brand(backend, products=2)
        with backend.storage.transaction() as tx:
            assert tx.issuance.issued_count(gtin) == 0
            assert tx.issuance.reserve_serials(gtin, 100) == 0
            assert tx.issuance.reserve_serials(gtin, 50) == 100
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.issuance.reserve_serials(gtin, 1) == 150
            assert tx.issuance.issued_count(other) == 0
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.issuance.issued_count(gtin) == 151

    # -- codes ------------------------------------------------------------------------------
    def test_codes_are_stored_and_read_back_by_seq(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        row = _request(tenant_id, gtin)
        minted = _issue(backend, row, seed=1)
        with backend.storage.transaction() as tx:
            stored = tx.issuance.codes(tenant_id, "r1", 0, 10)
            assert [c.seq for c in stored] == list(range(10))
            assert [c.serial for c in stored] == minted.serials
            assert [c.signature for c in stored] == minted.signatures
            assert all(c.pin is None for c in stored)
            assert [c.seq for c in tx.issuance.codes(tenant_id, "r1", 3, 6)] == [3, 4, 5]
            assert tx.issuance.codes(tenant_id, "r1", 10, 20) == []
            assert tx.issuance.state_counts(tenant_id, "r1") == {"allocated": 10}
            assert tx.issuance.state_counts(tenant_id, "r2") == {}

    def test_a_stored_serial_collides_for_any_request_or_tenant(
        self, backend: IssuerBackend
    ) -> None:
        tenant_id, (gtin,) = _brand(backend)
        first = _issue(backend, _request(tenant_id, gtin, quantity=6), seed=7)
        again = _request(tenant_id, gtin, "r2", quantity=9)
        _stored_request(backend, again)
        # The same seed draws the same six serials first, then three new ones.
        minted = _minted(again, list(range(9)), seed=7)
        assert minted.serials[:6] == first.serials
        with backend.storage.transaction() as tx:
            collided = tx.issuance.insert_codes(again, minted)
            assert collided == {gtin + s for s in first.serials}
            tx.commit()
        with backend.storage.transaction() as tx:
            stored = tx.issuance.codes(tenant_id, "r2", 0, 9)
            assert [(c.seq, c.serial) for c in stored] == [
                (seq, serial) for seq, serial in zip(range(6, 9), minted.serials[6:], strict=True)
            ]
            assert [c.serial for c in tx.issuance.codes(tenant_id, "r1", 0, 6)] == first.serials

    def test_collisions_leave_the_first_owner_untouched(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        first = _issue(backend, _request(tenant_id, gtin, quantity=3), seed=11)
        with backend.storage.transaction() as tx:
            tx.lines.set_state([gtin + first.serials[0]], "commissioned", T0)
            tx.commit()
        late = _request(tenant_id, gtin, "r2", quantity=3, lot="LOT2")
        _stored_request(backend, late)
        with backend.storage.transaction() as tx:
            assert len(tx.issuance.insert_codes(late, _minted(late, [0, 1, 2], seed=11))) == 3
            tx.commit()
        with backend.storage.transaction() as tx:
            found = tx.lines.lock_codes(tenant_id, [gtin + s for s in first.serials])
        assert sorted(found.values()) == [
            ("allocated", "LOT1", "r1"),
            ("allocated", "LOT1", "r1"),
            ("commissioned", "LOT1", "r1"),
        ]

    # -- lines ------------------------------------------------------------------------------
    def test_a_report_summary_is_stored_once(self, backend: IssuerBackend) -> None:
        tenant_id, _ = _brand(backend)
        summary = {"batch_id": "b1", "accepted": 2, "rejected": [("S1", "why", "NOT_FOUND")]}
        with backend.storage.transaction() as tx:
            assert tx.lines.stored_summary(tenant_id, "b1") is None
            tx.lines.store_summary(tenant_id, "b1", "commissioned", summary)
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.lines.stored_summary(tenant_id, "b1") == {
                "batch_id": "b1",
                "accepted": 2,
                "rejected": [["S1", "why", "NOT_FOUND"]],
            }
            other, _ = _brand(backend)
            assert tx.lines.stored_summary(other, "b1") is None
        with pytest.raises(AlreadyExists), backend.storage.transaction() as tx:
            tx.lines.store_summary(tenant_id, "b1", "scrapped", {})

    def test_codes_are_found_only_for_their_tenant(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        minted = _issue(backend, _request(tenant_id, gtin, quantity=3), seed=3)
        keys = [gtin + s for s in minted.serials]
        other, _ = _brand(backend)
        with backend.storage.transaction() as tx:
            found = tx.lines.lock_codes(tenant_id, [*keys, gtin + "999"])
            assert found == {key: ("allocated", "LOT1", "r1") for key in keys}
            assert tx.lines.lock_codes(other, keys) == {}
            facts = tx.lines.lot_facts(tenant_id, keys)
            assert facts == {s: ("LOT1", date(2030, 12, 31)) for s in minted.serials}
            assert tx.lines.lot_facts(other, keys) == {}

    def test_states_move_and_outstanding_follows(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        minted = _issue(backend, _request(tenant_id, gtin, quantity=5), seed=5)
        keys = [gtin + s for s in minted.serials]
        with backend.storage.transaction() as tx:
            assert tx.lines.outstanding(tenant_id, "r1") == minted.serials
            tx.lines.set_state([keys[1], keys[3]], "commissioned", T0)
            tx.lines.set_state([keys[4]], "scrapped", T0)
            tx.lines.set_state([], "returned", T0)
            tx.commit()
        with backend.storage.transaction() as tx:
            outstanding = tx.lines.outstanding(tenant_id, "r1")
            assert outstanding == [minted.serials[0], minted.serials[2]]
            counts = tx.issuance.state_counts(tenant_id, "r1")
            assert counts == {"allocated": 2, "commissioned": 2, "scrapped": 1}
            assert tx.lines.lock_codes(tenant_id, [keys[4]]) == {
                keys[4]: ("scrapped", "LOT1", "r1")
            }

    def test_reconcile_counts_a_work_order(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        a = _issue(backend, _request(tenant_id, gtin, "r1", quantity=4), seed=21)
        _issue(backend, _request(tenant_id, gtin, "r2", quantity=3), seed=22)
        _issue(backend, _request(tenant_id, gtin, "r3", quantity=2, work_order="WO2"), seed=23)
        _stored_request(backend, _request(tenant_id, gtin, "r4", quantity=5))  # nothing minted
        with backend.storage.transaction() as tx:
            tx.lines.set_state([gtin + a.serials[0]], "commissioned", T0)
            tx.lines.set_state([gtin + a.serials[1]], "returned", T0)
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.lines.reconcile(tenant_id, "WO1") == (
                3,
                {"allocated": 5, "commissioned": 1, "returned": 1},
            )
            assert tx.lines.reconcile(tenant_id, "WO2") == (1, {"allocated": 2})
            assert tx.lines.reconcile(tenant_id, "WO9") == (0, {})
            other, _ = _brand(backend)
            assert tx.lines.reconcile(other, "WO1") == (0, {})

    def test_lot_holds_are_set_replaced_and_released(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin, other_gtin) = _brand(backend, products=2)
        with backend.storage.transaction() as tx:
            assert tx.lines.held_lots(gtin, ["L1", "L2"]) == set()
            tx.lines.set_hold(tenant_id, gtin, "L1", True, "QC", T0, "tok")
            tx.lines.set_hold(tenant_id, gtin, "L2", True, "QC", T0, "tok")
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.lines.held_lots(gtin, ["L1", "L2", "L3"]) == {"L1", "L2"}
            assert tx.lines.held_lots(other_gtin, ["L1"]) == set()
            tx.lines.set_hold(tenant_id, gtin, "L2", False, "", T0 + timedelta(1), "tok")
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.lines.held_lots(gtin, ["L1", "L2"]) == {"L1"}
            assert tx.lines.held_lots(gtin, []) == set()

    def test_holding_a_lot_of_an_unknown_product_is_not_found(self, backend: IssuerBackend) -> None:
        tenant_id, _ = _brand(backend)
        unknown = gtin_under("95299999999")
        with pytest.raises(NotFound), backend.storage.transaction() as tx:
            tx.lines.set_hold(tenant_id, unknown, "L1", True, "QC", T0, "tok")

    def test_recalled_lots_are_seen(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        backend.recall_lot(tenant_id, gtin, "L1")
        with backend.storage.transaction() as tx:
            assert tx.lines.recalled_lot(tenant_id, gtin, "L1") is True
            assert tx.lines.recalled_lot(tenant_id, gtin, "L2") is False
            other, _ = _brand(backend)
            assert tx.lines.recalled_lot(other, gtin, "L1") is False

    def test_packed_names_parents_and_holders(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        minted = _issue(backend, _request(tenant_id, gtin, quantity=3), seed=31)
        item, loose, case = (gtin + s for s in minted.serials)
        pallet = "sscc:395200000000000017"
        backend.pack(tenant_id, item, case)
        backend.pack(tenant_id, case, pallet)
        with backend.storage.transaction() as tx:
            assert tx.lines.packed([item, loose]) == {item: case}
            assert tx.lines.packed([pallet]) == {pallet: ""}
            assert tx.lines.packed([loose]) == {}

    def test_sscc_ranges_follow_each_other(self, backend: IssuerBackend) -> None:
        tenant_id, _ = _brand(backend)
        prefix = "95" + str(random.randrange(10**9)).zfill(9)  # a prefix no other test uses
        with backend.storage.transaction() as tx:
            assert tx.lines.allocation(tenant_id, "s1") is None
            assert tx.lines.reserve_references(tenant_id, "s1", prefix, 3, 100) == 0
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.lines.reserve_references(tenant_id, "s2", prefix, 3, 10) == 100
            assert tx.lines.reserve_references(tenant_id, "s3", prefix, 4, 10) == 0
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.lines.allocation(tenant_id, "s1") == (prefix, 3, 0, 100)
            assert tx.lines.allocation(tenant_id, "s2") == (prefix, 3, 100, 10)
            assert tx.lines.allocation(tenant_id, "s3") == (prefix, 4, 0, 10)
        with pytest.raises(AlreadyExists), backend.storage.transaction() as tx:
            tx.lines.reserve_references(tenant_id, "s1", prefix, 3, 5)

    # -- retries ----------------------------------------------------------------------------
    # -- product links (migration 0022)

    def test_product_links_are_put_in_order_and_updated_in_place(
        self, backend: IssuerBackend
    ) -> None:
        tenant_id, (gtin, other_gtin) = _brand(backend, products=2)
        pip_en = ProductLink("pip", "https://brand.example/en", "Info", "en", "", "text/html")
        pip_zh = ProductLink("pip", "https://brand.example/zh", "信息", "zh-CN")
        leaflet = ProductLink("epil", "https://brand.example/leaflet.pdf", "Leaflet")
        with backend.storage.transaction() as tx:
            assert tx.links.links(tenant_id, gtin) == []
            tx.links.put_links(tenant_id, gtin, [pip_en, pip_zh], replace=False, at=T0, by="t")
            tx.commit()
        renamed = ProductLink("pip", "https://brand.example/en", "Product info", "en")
        with backend.storage.transaction() as tx:
            tx.links.put_links(tenant_id, gtin, [leaflet, renamed], replace=False, at=T0, by="t")
            tx.commit()
        with backend.storage.transaction() as tx:
            # the updated link keeps its place, the new one comes last
            assert tx.links.links(tenant_id, gtin) == [renamed, pip_zh, leaflet]
            assert tx.links.links(tenant_id, other_gtin) == []
            other, _ = _brand(backend)
            assert tx.links.links(other, gtin) == []

    def test_product_links_replace_and_delete(self, backend: IssuerBackend) -> None:
        tenant_id, (gtin,) = _brand(backend)
        a = ProductLink("pip", "https://brand.example/a", "A")
        b = ProductLink("pip", "https://brand.example/b", "B", "", "retail")
        c = ProductLink("recipeInfo", "https://brand.example/c", "C", "de")
        with backend.storage.transaction() as tx:
            tx.links.put_links(tenant_id, gtin, [a, b], replace=False, at=T0, by="t")
            tx.commit()
        with backend.storage.transaction() as tx:
            tx.links.put_links(tenant_id, gtin, [b, c], replace=True, at=T0, by="t")
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.links.links(tenant_id, gtin) == [b, c]
            assert tx.links.delete_link(tenant_id, gtin, b.key) is True
            assert tx.links.delete_link(tenant_id, gtin, b.key) is False
            assert tx.links.delete_link(tenant_id, gtin, a.key) is False
            tx.commit()
        with backend.storage.transaction() as tx:
            assert tx.links.links(tenant_id, gtin) == [c]
            tx.links.put_links(tenant_id, gtin, [a], replace=False, at=T0, by="t")
            # not committed: nothing of it stays
        with backend.storage.transaction() as tx:
            assert tx.links.links(tenant_id, gtin) == [c]

    def test_links_of_an_unknown_product_are_not_found(self, backend: IssuerBackend) -> None:
        tenant_id, _ = _brand(backend)
        unknown = gtin_under("95299999998")
        link = ProductLink("pip", "https://brand.example/a", "A")
        with pytest.raises(NotFound), backend.storage.transaction() as tx:
            tx.links.put_links(tenant_id, unknown, [link], replace=False, at=T0, by="t")

    def test_retrying_repeats_an_aborted_transaction(self, backend: IssuerBackend) -> None:
        from sealmark.errors import Aborted, FailedPrecondition

        calls: list[int] = []

        def flaky() -> str:
            calls.append(1)
            if len(calls) < 3:
                raise Aborted("conflict")
            return "done"

        assert backend.storage.retrying(flaky) == "done" and len(calls) == 3

        def refused() -> str:
            calls.append(1)
            raise FailedPrecondition("not retryable")

        calls.clear()
        with pytest.raises(FailedPrecondition):
            backend.storage.retrying(refused)
        assert len(calls) == 1


# ------------------------------------------------------------------- the page's pictures


class MediaBackend(Protocol):
    @property
    def media(self) -> ProductMediaStorage: ...

    @property
    def tenancy(self) -> UnitOfWorkFactory: ...


def _picture(tenant_id: str, gtin: str, kind: MediaKind, fill: bytes) -> StoredMedia:
    body = b"\x89PNG" + fill
    return StoredMedia(
        tenant_id, gtin, kind, hashlib.sha256(body).hexdigest(), "image/png", 64, 48, body, "", T0
    )


class ProductMediaContract:
    """:class:`issuer.ports.ProductMediaStorage`. A subclass provides ``media_backend``."""

    def test_put_replaces_per_gtin_and_kind(self, media_backend: MediaBackend) -> None:
        tenant_id, (gtin,) = _brand(media_backend)
        logo = _picture(tenant_id, "", MediaKind.LOGO, b"brand")
        first = _picture(tenant_id, gtin, MediaKind.IMAGE, b"one")
        second = replace(_picture(tenant_id, gtin, MediaKind.IMAGE, b"two"), alt="Tonic")
        for media in (logo, first, second):
            media_backend.media.put_media(media)
        assert media_backend.media.media(tenant_id, gtin) == [second]
        assert media_backend.media.media(tenant_id, "") == [logo]
        product_logo = _picture(tenant_id, gtin, MediaKind.LOGO, b"own logo")
        media_backend.media.put_media(product_logo)
        assert media_backend.media.media(tenant_id, gtin) == [second, product_logo]

    def test_only_the_owner_of_the_product_may_put(self, media_backend: MediaBackend) -> None:
        owner, (gtin,) = _brand(media_backend)
        other, _ = _brand(media_backend)
        with pytest.raises(NotFound):
            media_backend.media.put_media(_picture(other, gtin, MediaKind.IMAGE, b"x"))
        with pytest.raises(NotFound):
            media_backend.media.put_media(_picture("no-such-tenant", "", MediaKind.LOGO, b"x"))
        assert media_backend.media.media(other, gtin) == []
        assert media_backend.media.media(owner, gtin) == []

    def test_remove(self, media_backend: MediaBackend) -> None:
        tenant_id, (gtin,) = _brand(media_backend)
        media_backend.media.put_media(_picture(tenant_id, gtin, MediaKind.IMAGE, b"x"))
        assert media_backend.media.remove_media(tenant_id, gtin, MediaKind.IMAGE) is True
        assert media_backend.media.remove_media(tenant_id, gtin, MediaKind.IMAGE) is False
        assert media_backend.media.media(tenant_id, gtin) == []
