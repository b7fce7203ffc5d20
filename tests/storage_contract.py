"""One contract suite for every storage adapter (in-memory fake, PostgreSQL embedded and
system). A subclass provides the ``uow_factory`` fixture, backed by an empty store."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

import pytest

from sealmark.errors import AlreadyExists, NotFound
from sealmark.events import NewEvent
from sealmark.storage.ports import UnitOfWorkFactory
from sealmark.tenancy.certs import ClientCert, MatchKind, registration_id
from sealmark.tenancy.model import ApiToken, Product, Role, Tenant

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _tid() -> str:
    return "t-" + os.urandom(4).hex()


def _prefix() -> str:
    # 8 random digits under 952 (GS1's demo range): unique per test, never overlapping.
    return "952" + str(int.from_bytes(os.urandom(4), "big") % 10**8).zfill(8)


def tenant(tenant_id: str | None = None, prefixes: tuple[str, ...] | None = None) -> Tenant:
    return Tenant(
        id=tenant_id or _tid(),
        name="Brand",
        company_prefixes=prefixes or (_prefix(),),
        resolver_host="id.example.com",
        created_at=T0,
    )


def gtin_under(prefix: str) -> str:
    body = ("0" + prefix + "0" * 12)[:13]
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


class StorageContract:
    """Tests every adapter must pass."""

    def test_tenant_add_get_list(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        with uow_factory() as uow:
            uow.tenants.add(a)
            uow.commit()
        with uow_factory() as uow:
            got = uow.tenants.get(a.id)
            assert (got.id, got.name, got.company_prefixes) == (a.id, a.name, a.company_prefixes)
            assert got.resolver_host == a.resolver_host
            assert a.id in [t.id for t in uow.tenants.list()]
            ids = [t.id for t in uow.tenants.list()]
            assert ids == sorted(ids)

    def test_missing_tenant_is_not_found(self, uow_factory: UnitOfWorkFactory) -> None:
        with uow_factory() as uow, pytest.raises(NotFound):
            uow.tenants.get("no-such-tenant")

    def test_duplicate_tenant_id(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        with uow_factory() as uow:
            uow.tenants.add(a)
            uow.commit()
        with uow_factory() as uow, pytest.raises(AlreadyExists):
            uow.tenants.add(tenant(a.id))

    @pytest.mark.parametrize("relation", ["same", "longer", "shorter"])
    def test_overlapping_prefixes_are_rejected(
        self, uow_factory: UnitOfWorkFactory, relation: str
    ) -> None:
        base = _prefix()
        other = {"same": base, "longer": base + "7", "shorter": base[:-2]}[relation]
        with uow_factory() as uow:
            uow.tenants.add(tenant(prefixes=(base,)))
            uow.commit()
        with uow_factory() as uow, pytest.raises(AlreadyExists, match="overlaps"):
            uow.tenants.add(tenant(prefixes=(other,)))

    def test_products(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        gtin = gtin_under(a.company_prefixes[0])
        product = Product(
            a.id,
            gtin,
            "Tonic",
            default_market="DE",
            serial_alphabet="alnum-safe",
            serial_length=14,
            pin_length=8,
            created_at=T0,
        )
        with uow_factory() as uow:
            uow.tenants.add(a)
            uow.products.add(product)
            uow.commit()
        with uow_factory() as uow:
            got = uow.products.get(gtin)
            assert (
                got.tenant_id,
                got.name,
                got.default_market,
                got.serial_alphabet,
                got.serial_length,
                got.pin_length,
            ) == (a.id, "Tonic", "DE", "alnum-safe", 14, 8)
            assert [p.gtin for p in uow.products.list(a.id)] == [gtin]
            assert uow.products.list("someone-else") == []
            with pytest.raises(NotFound):
                uow.products.get("00000000000000")
        with uow_factory() as uow, pytest.raises(AlreadyExists):
            uow.products.add(product)

    def test_product_of_unknown_tenant(self, uow_factory: UnitOfWorkFactory) -> None:
        with uow_factory() as uow, pytest.raises(NotFound):
            uow.products.add(Product("ghost-tenant", "09520123456788", "X"))

    def test_tokens(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        token = ApiToken(
            "abcdefghijkl"[:8] + os.urandom(2).hex(),
            a.id,
            frozenset({Role.LINE, Role.AUDITOR}),
            "line 3",
            b"\x01" * 32,
            T0,
        )
        with uow_factory() as uow:
            uow.tenants.add(a)
            uow.tokens.add(token)
            uow.commit()
        with uow_factory() as uow:
            got = uow.tokens.get(token.id)
            assert got.roles == token.roles and got.secret_hash == token.secret_hash
            assert got.revoked_at is None
            assert [t.id for t in uow.tokens.list(a.id)] == [token.id]
        later = datetime(2026, 11, 2, tzinfo=UTC)
        with uow_factory() as uow:
            uow.tokens.revoke(token.id, later)
            uow.tokens.revoke(token.id, datetime(2026, 12, 1, tzinfo=UTC))
            uow.commit()
        with uow_factory() as uow:
            assert uow.tokens.get(token.id).revoked_at == later
            with pytest.raises(NotFound):
                uow.tokens.revoke("nonexistent", later)
            with pytest.raises(NotFound):
                uow.tokens.get("nonexistent")

    def test_client_certs(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        subject = f"CN=line-{os.urandom(3).hex()},O=Acme"
        san = f"URI:spiffe://acme/{os.urandom(3).hex()}"
        by_subject = _cert(a.id, MatchKind.SUBJECT, subject, T0)
        by_san = _cert(a.id, MatchKind.SAN, san, T0.replace(minute=1))
        with uow_factory() as uow:
            uow.tenants.add(a)
            uow.client_certs.add(by_subject)
            uow.client_certs.add(by_san)
            uow.commit()
        with uow_factory() as uow:
            got = uow.client_certs.get(by_subject.id)
            assert (got.kind, got.value, got.roles) == (MatchKind.SUBJECT, subject, {Role.LINE})
            assert [c.id for c in uow.client_certs.list(a.id)] == [by_subject.id, by_san.id]
            found = uow.client_certs.find([("subject", subject), ("san", san), ("san", "DNS:x")])
            assert [c.id for c in found] == sorted([by_subject.id, by_san.id])
            assert uow.client_certs.find([("san", subject)]) == []  # kind is part of the key
            assert uow.client_certs.find([]) == []
        later = datetime(2026, 11, 2, tzinfo=UTC)
        with uow_factory() as uow:
            uow.client_certs.revoke(by_subject.id, later)
            uow.client_certs.revoke(by_subject.id, datetime(2026, 12, 1, tzinfo=UTC))
            uow.commit()
        with uow_factory() as uow:
            assert uow.client_certs.get(by_subject.id).revoked_at == later
            with pytest.raises(NotFound):
                uow.client_certs.revoke("crt_aaaaaaaaaaaa", later)
            with pytest.raises(NotFound):
                uow.client_certs.get("crt_aaaaaaaaaaaa")

    def test_one_active_registration_per_identity(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        subject = f"CN=line-{os.urandom(3).hex()},O=Acme"
        first = _cert(a.id, MatchKind.SUBJECT, subject, T0)
        with uow_factory() as uow:
            uow.tenants.add(a)
            uow.client_certs.add(first)
            uow.commit()
        with pytest.raises(AlreadyExists), uow_factory() as uow:
            uow.client_certs.add(_cert(a.id, MatchKind.SUBJECT, subject, T0))
            uow.commit()
        with uow_factory() as uow:
            uow.client_certs.revoke(first.id, T0)
            uow.commit()
        again = _cert(a.id, MatchKind.SUBJECT, subject, T0)
        with uow_factory() as uow:
            uow.client_certs.add(again)  # after a revocation the identity may be registered anew
            uow.commit()
        with uow_factory() as uow:
            found = uow.client_certs.find([("subject", subject)])
            assert {c.id: c.revoked_at is None for c in found} == {first.id: False, again.id: True}

    def test_client_cert_of_unknown_tenant(self, uow_factory: UnitOfWorkFactory) -> None:
        with pytest.raises(NotFound), uow_factory() as uow:
            uow.client_certs.add(_cert(_tid(), MatchKind.SAN, "DNS:line.example", T0))
            uow.commit()

    def test_events_append_in_order_with_limits(self, uow_factory: UnitOfWorkFactory) -> None:
        tid = _tid()
        with uow_factory() as uow:
            ids = [
                uow.events.append(NewEvent(tid, "thing.done", f"s:{i}", T0, {"i": i}))
                for i in range(5)
            ]
            uow.events.append(NewEvent("other-" + tid, "thing.done", "x", T0))
            uow.commit()
        assert ids == sorted(ids) and len(set(ids)) == 5
        with uow_factory() as uow:
            events = uow.events.read(tid)
            assert [e.payload["i"] for e in events] == [0, 1, 2, 3, 4]
            assert all(e.tenant_id == tid and e.kind == "thing.done" for e in events)
            assert [e.id for e in uow.events.read(tid, after_id=ids[1], limit=2)] == ids[2:4]
            assert uow.events.read(tid, after_id=ids[-1]) == []

    def test_leaving_without_commit_rolls_back(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        with uow_factory() as uow:
            uow.tenants.add(a)
        with uow_factory() as uow, pytest.raises(NotFound):
            uow.tenants.get(a.id)

    def test_explicit_rollback(self, uow_factory: UnitOfWorkFactory) -> None:
        a, b = tenant(), tenant()
        with uow_factory() as uow:
            uow.tenants.add(a)
            uow.rollback()
            uow.tenants.add(b)
            uow.commit()
        with uow_factory() as uow:
            uow.tenants.get(b.id)
            with pytest.raises(NotFound):
                uow.tenants.get(a.id)

    def test_exception_inside_block_rolls_back(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        with pytest.raises(RuntimeError), uow_factory() as uow:
            uow.tenants.add(a)
            raise RuntimeError("boom")
        with uow_factory() as uow, pytest.raises(NotFound):
            uow.tenants.get(a.id)

    def test_a_unit_reads_its_own_writes(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        with uow_factory() as uow:
            uow.tenants.add(a)
            assert uow.tenants.get(a.id).id == a.id
            uow.events.append(NewEvent(a.id, "tenant.created", a.id, T0))
            assert [e.kind for e in uow.events.read(a.id)] == ["tenant.created"]
        with uow_factory() as uow:
            assert uow.events.read(a.id) == []
            with pytest.raises(NotFound):
                uow.tenants.get(a.id)

    def test_writes_after_a_commit_need_their_own_commit(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        a = tenant()
        token = ApiToken(
            "tok-" + os.urandom(4).hex(), a.id, frozenset({Role.ADMIN}), "x", b"\2" * 32
        )
        with uow_factory() as uow:
            uow.tenants.add(a)
            uow.tokens.add(token)
            uow.commit()
            uow.tokens.revoke(token.id, T0)  # not committed: discarded at the end of the block
        with uow_factory() as uow:
            assert uow.tokens.get(token.id).revoked_at is None
            assert uow.tokens.get(token.id).created_at is not None  # the store fills it in

    def test_tokens_are_listed_by_creation_time(self, uow_factory: UnitOfWorkFactory) -> None:
        a = tenant()
        later = ApiToken(
            "a-" + os.urandom(4).hex(),
            a.id,
            frozenset({Role.LINE}),
            "l",
            b"\3" * 32,
            datetime(2026, 11, 3, tzinfo=UTC),
        )
        earlier = ApiToken(
            "z-" + os.urandom(4).hex(),
            a.id,
            frozenset({Role.LINE}),
            "e",
            b"\4" * 32,
            datetime(2026, 11, 2, tzinfo=UTC),
        )
        with uow_factory() as uow:
            uow.tenants.add(a)
            uow.tokens.add(later)
            uow.tokens.add(earlier)
            uow.commit()
        with uow_factory() as uow:
            assert [t.id for t in uow.tokens.list(a.id)] == [earlier.id, later.id]

    def test_event_ids_increase_across_units(self, uow_factory: UnitOfWorkFactory) -> None:
        tid = _tid()
        ids = []
        for i in range(3):
            with uow_factory() as uow:
                ids.append(uow.events.append(NewEvent(tid, "k", f"s{i}", T0, {"i": i})))
                if i != 1:
                    uow.commit()
        assert ids == sorted(set(ids))
        with uow_factory() as uow:
            assert [e.id for e in uow.events.read(tid)] == [ids[0], ids[2]]
            assert [e.payload for e in uow.events.read(tid, limit=1)] == [{"i": 0}]
            assert uow.events.read(tid, limit=0) == []

    def test_concurrent_overlapping_tenants_exactly_one_wins(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        """Two units add tenants with overlapping prefixes at once: one commits, one fails.

        A waits with its tenant added but not committed while B adds and commits (a database
        adapter may make B wait for A); then A commits.
        """
        base = _prefix()
        a, b = tenant(prefixes=(base,)), tenant(prefixes=(base + "5",))
        outcomes: dict[str, BaseException | None] = {}

        def add_b() -> None:
            try:
                with uow_factory() as uow:
                    uow.tenants.add(b)
                    uow.commit()
                outcomes["b"] = None
            except BaseException as exc:
                outcomes["b"] = exc

        with uow_factory() as uow:
            uow.tenants.add(a)
            other = threading.Thread(target=add_b)
            other.start()
            other.join(timeout=0.5)  # B either finished or waits for A
            try:
                uow.commit()
                outcomes["a"] = None
            except AlreadyExists as exc:
                outcomes["a"] = exc
        other.join(timeout=10)
        assert not other.is_alive()
        failed = {k: v for k, v in outcomes.items() if v is not None}
        assert len(outcomes) == 2 and len(failed) == 1, outcomes
        assert all(isinstance(v, AlreadyExists) for v in failed.values()), failed
        with uow_factory() as uow:
            present = {t.id for t in uow.tenants.list()} & {a.id, b.id}
        winner = next(k for k, v in outcomes.items() if v is None)
        assert present == {{"a": a.id, "b": b.id}[winner]}


def _cert(tenant_id: str, kind: MatchKind, value: str, created_at: datetime) -> ClientCert:
    return ClientCert(
        registration_id(os.urandom(10)),
        tenant_id,
        frozenset({Role.LINE}),
        "line 3",
        kind,
        value,
        created_at,
    )
