"""The Issuer's use cases on the in-memory fakes: issuance, key rotation, line reports."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from issuer.domain.commands import IssueCommand
from issuer.domain.keys import key_id
from issuer.lines import LineReports, ReportBatch
from issuer.memory import MemoryIssuerStorage
from issuer.usecases import IssuedCode, Issuer
from sealmark.clock import FixedClock
from sealmark.crypto.keys import KeyVault
from sealmark.crypto.mac import MacScheme
from sealmark.crypto.pins import PinScheme
from sealmark.crypto.signature import canonical_bytes, decode_ai8030, verify
from sealmark.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from sealmark.lifecycle import CodeState
from sealmark.storage.memory import MemoryStore
from sealmark.tenancy import usecases
from sealmark.tenancy.model import Principal, Role
from tests.storage_contract import gtin_under
from tests.support.tenants import seed_tenant

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class ReplayableRandom:
    """A seeded byte stream that can be rewound to its start."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(seed)

    def __call__(self, n: int) -> bytes:
        return self._rng.randbytes(n)

    def rewind(self) -> None:
        self._rng = random.Random(self._seed)


@dataclass
class World:
    issuer: Issuer
    lines: LineReports
    storage: MemoryIssuerStorage
    tenancy: MemoryStore
    source: ReplayableRandom
    tenant_id: str
    gtin: str

    @property
    def line(self) -> Principal:
        return Principal(self.tenant_id, frozenset({Role.LINE}), token_id="tok-line")

    def issue(self, command: IssueCommand) -> list[IssuedCode]:
        return [code for batch in self.issuer.issue(self.line, command) for code in batch.codes]

    def command(
        self, request_id: str = "r1", quantity: int = 12, **changes: object
    ) -> IssueCommand:
        fields: dict[str, object] = {
            "request_id": request_id,
            "gtin": self.gtin,
            "lot": "LOT1",
            "expiry": "301231",
            "quantity": quantity,
            "line_id": "L1",
            "work_order": "WO1",
        }
        fields.update(changes)
        return IssueCommand(**fields)  # type: ignore[arg-type]

    def report(
        self, batch_id: str, serials: list[str], target: CodeState
    ) -> tuple[int, list[tuple[str, str, str]]]:
        summary = self.lines.report(self.line, ReportBatch(batch_id, self.gtin, serials), target)
        return summary.accepted, summary.rejected


@pytest.fixture
def world() -> Iterator[World]:
    clock = FixedClock(NOW)
    tenancy = MemoryStore(clock)
    brand = seed_tenant(tenancy.unit_of_work, clock, "uc", tokens={}, serial_alphabet="numeric")
    storage = MemoryIssuerStorage(tenancy)
    source = ReplayableRandom(20261123)
    issuer = Issuer(
        storage,
        tenancy.unit_of_work,
        clock,
        source,
        PinScheme(b"unit-pepper-0123456789"),
        KeyVault("software", b"unit-passphrase"),
        guess_bound=1e-4,
    )
    issuer.rotate_key(brand.tenant_id)
    yield World(
        issuer, LineReports(storage, clock), storage, tenancy, source, brand.tenant_id, brand.gtin
    )


# -- issuance -----------------------------------------------------------------------------------


def test_a_batch_is_issued_signed_and_recorded(world: World) -> None:
    batches = list(world.issuer.issue(world.line, world.command(quantity=12, batch_size=5)))

    assert [len(b.codes) for b in batches] == [5, 5, 2]
    assert all(b.total == 12 and b.request.request_id == "r1" for b in batches)
    codes = [c for b in batches for c in b.codes]
    assert [c.index for c in codes] == list(range(12))
    assert len({c.serial for c in codes}) == 12
    (key,) = world.issuer.key_set(world.tenant_id)
    for code in codes:
        assert code.key_id == key.key_id and len(code.pin) == 6 and code.mac == ""
        key_id, signature = decode_ai8030(code.signature)
        message = canonical_bytes(world.gtin, code.serial, "LOT1", "301231", key_id)
        assert verify(key.public_key, message, signature)
        assert code.element_string.startswith(f"01{world.gtin}1730123110LOT1\x1d")
        assert f"\x1d21{code.serial}\x1d8030" in code.element_string
    assert world.issuer.issued_count(world.gtin) == 12
    request, counts = world.issuer.pool(world.line, "r1")
    assert (request.generated, request.quantity, counts) == (12, 12, {"allocated": 12})
    with world.tenancy.unit_of_work() as uow:
        issued = [e for e in uow.events.read(world.tenant_id) if e.kind == "codes.issued"]
    assert [(e.payload["first"], e.payload["count"]) for e in issued] == [(0, 12)]
    assert issued[0].request_id == "r1"


def test_a_retry_returns_the_same_codes_and_mints_nothing(world: World) -> None:
    first = world.issue(world.command())
    again = world.issue(world.command())
    assert again == first
    resumed = world.issue(world.command(resume_from=7))
    assert resumed == first[7:]
    assert world.issuer.issued_count(world.gtin) == 12  # reserved once


def test_a_request_id_reused_for_another_issuance_is_refused(world: World) -> None:
    world.issue(world.command(quantity=12))
    with pytest.raises(FailedPrecondition, match="request_id r1 was used for a different"):
        world.issue(world.command(quantity=13))
    with pytest.raises(FailedPrecondition, match="different issuance"):
        world.issue(world.command(lot="LOT2"))


def test_a_pool_is_minted_now_and_streamed_later(world: World) -> None:
    pool = world.issuer.request_pool(world.line, world.command("p1", quantity=8))
    assert (pool.request_id, pool.generated) == ("p1", 8)
    world.source.rewind()  # streaming draws nothing
    codes = world.issue(world.command("p1", quantity=8))
    assert [c.index for c in codes] == list(range(8))
    _, counts = world.issuer.pool(world.line, "p1")
    assert counts == {"allocated": 8}


def test_serials_drawn_again_are_redrawn_not_shared(world: World) -> None:
    world.source.rewind()
    first = [c.serial for c in world.issue(world.command("a", quantity=30))]
    world.source.rewind()  # the second request draws the first's serials first
    second = [c.serial for c in world.issue(world.command("b", quantity=30))]
    assert len(set(first)) == len(set(second)) == 30
    assert not set(first) & set(second)
    assert world.issue(world.command("b", quantity=30))[5].serial == second[5]


def test_a_tenant_without_a_key_is_told_to_rotate(world: World) -> None:
    clock = FixedClock(NOW)
    other = seed_tenant(world.tenancy.unit_of_work, clock, "nokey", tokens={})
    line = Principal(other.tenant_id, frozenset({Role.LINE}))
    command = world.command(gtin=other.gtin)
    with pytest.raises(NotFound, match="keys rotate"):
        list(world.issuer.issue(line, command))
    with world.storage.transaction() as tx, pytest.raises(NotFound):  # nothing was written
        tx.issuance.request(other.tenant_id, "r1")


def test_another_tenants_gtin_is_permission_denied(world: World) -> None:
    other = seed_tenant(world.tenancy.unit_of_work, FixedClock(NOW), "other", tokens={})
    with pytest.raises(PermissionDenied):
        world.issue(world.command(gtin=other.gtin))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quantity": 0}, "IssueCodesRequest.quantity"),
        ({"expiry": "201231"}, "IssueCodesRequest.expiry"),
        ({"request_id": "has space"}, "IssueCodesRequest.request_id"),
        ({"gtin": "123"}, "IssueCodesRequest.gtin"),
        ({"resume_from": 13}, "IssueCodesRequest.resume_from"),
    ],
)
def test_issuance_names_the_bad_field(world: World, changes: dict[str, object], field: str) -> None:
    command = replace(world.command(), **changes)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as caught:
        world.issue(command)
    assert caught.value.field == field


def test_a_pool_request_names_its_own_fields(world: World) -> None:
    with pytest.raises(InvalidArgument) as caught:
        world.issuer.request_pool(world.line, world.command(quantity=0))
    assert caught.value.field == "RequestPoolRequest.quantity"


def _compact_product(world: World) -> str:
    gtin = gtin_under(world.gtin[1:9] + "7")
    usecases.add_product(
        world.tenancy.unit_of_work,
        FixedClock(NOW),
        tenant_id=world.tenant_id,
        gtin=gtin,
        name="small vial",
        code_profile="compact",
    )
    return gtin


def test_a_compact_product_needs_the_mac_secret_and_writes_nothing(world: World) -> None:
    gtin = _compact_product(world)
    with pytest.raises(FailedPrecondition, match="SEALMARK_MAC_SECRET"):
        world.issue(world.command(gtin=gtin))
    assert world.issuer.issued_count(gtin) == 0


def test_compact_codes_carry_a_mac_and_no_signature(world: World) -> None:
    gtin = _compact_product(world)
    macs = MacScheme(b"unit-mac-secret-0123456789abcdef")
    issuer = Issuer(
        world.storage,
        world.tenancy.unit_of_work,
        FixedClock(NOW),
        world.source,
        PinScheme(b"unit-pepper-0123456789"),
        KeyVault("software", b"unit-passphrase"),
        guess_bound=1e-4,
        macs=macs,
    )
    command = world.command(gtin=gtin, quantity=4)
    codes = [c for batch in issuer.issue(world.line, command) for c in batch.codes]
    (key,) = world.issuer.key_set(world.tenant_id)
    encode = macs.encoder(world.tenant_id, key.key_id, gtin)
    assert [c.mac for c in codes] == [encode(c.serial) for c in codes]
    assert {c.signature for c in codes} == {""}
    assert [c.serial for b in issuer.issue(world.line, command) for c in b.codes] == [
        c.serial for c in codes
    ]


# -- keys ---------------------------------------------------------------------------------------


def test_a_rotation_with_a_request_id_happens_once(world: World) -> None:
    first = world.issuer.rotate_key(world.tenant_id, "rot-1")
    again = world.issuer.rotate_key(world.tenant_id, "rot-1")
    assert again == first
    keys = world.issuer.key_set(world.tenant_id)
    assert [k.key_id for k in keys] == ["01", "02"]
    assert keys[0].retired_at == NOW and keys[0].revoked_at is None
    assert keys[1] == first and first.retired_at is None
    with world.tenancy.unit_of_work() as uow:
        rotated = [e for e in uow.events.read(world.tenant_id) if e.kind == "keys.rotated"]
    assert [e.payload for e in rotated] == [
        {"key_id": "01", "previous": None},
        {"key_id": "02", "previous": "01"},
    ]


def test_key_ids_count_in_the_key_id_alphabet() -> None:
    assert [key_id(n) for n in (1, 2, 10, 63, 64, 4095)] == ["01", "02", "0A", "0_", "10", "__"]
    for number in (0, 4096):
        with pytest.raises(InvalidArgument) as caught:
            key_id(number)
        assert caught.value.field == "key_id"


def test_a_rotation_id_reused_with_another_revoke_flag_is_refused(world: World) -> None:
    world.issuer.rotate_key(world.tenant_id, "rot-1")
    with pytest.raises(AlreadyExists, match="without revoke_previous"):
        world.issuer.rotate_key(world.tenant_id, "rot-1", revoke_previous=True, reason="leak")


@pytest.mark.parametrize(
    ("request_id", "revoke", "reason", "field"),
    [
        ("", True, "", "RotateKeyRequest.reason"),
        ("", True, "   ", "RotateKeyRequest.reason"),
        ("", False, "x" * 501, "RotateKeyRequest.reason"),
        ("bad id", False, "", "RotateKeyRequest.request_id"),
    ],
)
def test_a_rotation_names_the_bad_field(
    world: World, request_id: str, revoke: bool, reason: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        world.issuer.rotate_key(world.tenant_id, request_id, revoke, reason)
    assert caught.value.field == field
    assert len(world.issuer.key_set(world.tenant_id)) == 1


def test_codes_of_a_revoked_key_are_never_streamed_again(world: World) -> None:
    codes = world.issue(world.command())
    world.issuer.rotate_key(world.tenant_id, revoke_previous=True, reason=" key leaked ")
    old, new = world.issuer.key_set(world.tenant_id)
    assert (old.revoked_at, old.revoke_reason) == (NOW, "key leaked")
    with pytest.raises(FailedPrecondition, match="was revoked"):
        world.issue(world.command())
    fresh = world.issue(world.command("r2"))
    assert {c.key_id for c in fresh} == {new.key_id} != {c.key_id for c in codes}


# -- lines --------------------------------------------------------------------------------------


def test_a_held_lot_is_neither_issued_nor_commissioned(world: World) -> None:
    serials = [c.serial for c in world.issue(world.command(lot="LOT2", quantity=3))]
    hold = world.lines.set_hold(world.line, world.gtin, "LOT2", "QC sample", held=True)
    assert (hold.held, hold.changed_by, hold.changed_at) == (True, "tok-line", NOW)
    assert hold.epcis_event_id.startswith("ni:///sha-256;")

    with pytest.raises(FailedPrecondition, match=r"IssueCodesRequest\.lot: lot LOT2 is on hold"):
        world.issue(world.command("r2", lot="LOT2"))
    accepted, rejected = world.report("b1", serials, CodeState.COMMISSIONED)
    assert accepted == 0
    assert rejected == [(s, "lot LOT2 is on hold", "FAILED_PRECONDITION") for s in serials]

    world.lines.set_hold(world.line, world.gtin, "LOT2", "", held=False)
    assert world.report("b2", serials, CodeState.COMMISSIONED) == (3, [])
    assert len(world.issue(world.command("r2", lot="LOT2", quantity=2))) == 2


def test_a_recalled_lot_stays_held(world: World) -> None:
    world.lines.set_hold(world.line, world.gtin, "LOT1", "recall", held=True)
    world.storage.recall_lot(world.tenant_id, world.gtin, "LOT1")
    with pytest.raises(FailedPrecondition, match="was recalled"):
        world.lines.set_hold(world.line, world.gtin, "LOT1", "", held=False)
    with pytest.raises(FailedPrecondition, match="on hold"):
        world.issue(world.command())


def test_a_resent_report_changes_nothing(world: World) -> None:
    serials = [c.serial for c in world.issue(world.command(quantity=4))]
    first = world.lines.report(
        world.line, ReportBatch("b1", world.gtin, [*serials[:2], "NOPE"]), CodeState.COMMISSIONED
    )
    assert (first.accepted, first.already_done, first.duplicate) == (2, 0, False)
    assert [r[2] for r in first.rejected] == ["NOT_FOUND"]
    again = world.lines.report(
        world.line, ReportBatch("b1", world.gtin, [*serials[:2], "NOPE"]), CodeState.COMMISSIONED
    )
    assert again.duplicate and (again.accepted, again.rejected) == (2, first.rejected)
    with pytest.raises(AlreadyExists, match="another report"):
        world.lines.report(world.line, ReportBatch("b1", world.gtin, serials), CodeState.SCRAPPED)
    assert world.report("b2", serials[:3], CodeState.COMMISSIONED) == (1, [])


def test_reconcile_balances_a_work_order(world: World) -> None:
    serials = [c.serial for c in world.issue(world.command(quantity=5))]
    world.issue(world.command("r2", quantity=2, work_order="WO2"))
    world.report("b1", serials[:3], CodeState.COMMISSIONED)
    world.report("b2", serials[3:4], CodeState.SCRAPPED)
    open_ = world.lines.reconcile(world.line, "WO1")
    assert (open_.pools, open_.allocated, open_.commissioned, open_.scrapped) == (1, 5, 3, 1)
    assert (open_.outstanding, open_.balanced) == (1, False)
    returned = world.lines.report(
        world.line,
        ReportBatch("b3", world.gtin, [], pool_request_id="r1", all_outstanding=True),
        CodeState.RETURNED,
    )
    assert returned.accepted == 1
    closed = world.lines.reconcile(world.line, "WO1")
    assert (closed.returned, closed.outstanding, closed.balanced) == (1, 0, True)


def test_a_packed_code_is_not_scrapped(world: World) -> None:
    serials = [c.serial for c in world.issue(world.command(quantity=2))]
    world.storage.pack(world.gtin + serials[0], "sscc:395200000000000017")
    accepted, rejected = world.report("b1", serials, CodeState.SCRAPPED)
    assert accepted == 1
    assert rejected == [
        (
            serials[0],
            f"code {world.gtin + serials[0]} is packed in SSCC 395200000000000017:"
            " replace or unpack it before scrapping it",
            "FAILED_PRECONDITION",
        )
    ]


def test_ssccs_are_allocated_once_per_request_id(world: World) -> None:
    prefix = world.gtin[1:9]
    first = world.lines.allocate_ssccs(world.line, "s1", prefix, 3, 3)
    assert world.lines.allocate_ssccs(world.line, "s1", prefix, 3, 3) == first
    assert len(set(first)) == 3 and all(s.startswith("3" + prefix) for s in first)
    later = world.lines.allocate_ssccs(world.line, "s2", prefix, 3, 1)
    assert later[0] not in first
    with pytest.raises(FailedPrecondition, match="another allocation"):
        world.lines.allocate_ssccs(world.line, "s1", prefix, 3, 4)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda w: w.report("b1", [], CodeState.COMMISSIONED), "CodeBatch.serials"),
        (lambda w: w.report("bad id", ["1"], CodeState.COMMISSIONED), "CodeBatch.batch_id"),
        (lambda w: w.lines.reconcile(w.line, ""), "ReconcileRequest.work_order"),
        (
            lambda w: w.lines.set_hold(w.line, w.gtin, "LOT1", " ", held=True),
            "LotHoldRequest.reason",
        ),
        (
            lambda w: w.lines.allocate_ssccs(w.line, "s1", w.gtin[1:9], 10, 1),
            "AllocateSsccsRequest.extension_digit",
        ),
        (
            lambda w: w.lines.allocate_ssccs(w.line, "s1", "12345678", 3, 1),
            "AllocateSsccsRequest.company_prefix",
        ),
        (
            lambda w: w.lines.report(
                w.line,
                ReportBatch("b1", w.gtin, [], pool_request_id="r1", all_outstanding=True),
                CodeState.COMMISSIONED,
            ),
            "CodeBatch.all_outstanding",
        ),
    ],
)
def test_line_operations_name_the_bad_field(world: World, call: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        call(world)  # type: ignore[operator]
    assert caught.value.field == field


# -- layering -----------------------------------------------------------------------------------


def test_the_use_cases_and_the_port_see_no_database() -> None:
    from tests.unit.test_architecture import FORBIDDEN, ROOT, imported_names

    issuer = ROOT / "issuer"
    pure = [issuer / "ports.py", *sorted((issuer / "domain").glob("*.py"))]
    use_cases = [issuer / "usecases.py", issuer / "lines.py"]
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in pure
        for name in imported_names(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    ]
    banned = ("psycopg2", "redis", "sealmark.storage.postgres", "sealmark_app")
    offenders += [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in use_cases
        for name in imported_names(path)
        if any(name == bad or name.startswith(bad + ".") for bad in banned)
    ]
    offenders += [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted(issuer.rglob("*.py"))
        for name in imported_names(path)
        if name == "sealmark_app" or name.startswith("sealmark_app.")
    ]
    assert offenders == []
