"""The minting worker processes when one of them dies mid-chunk: the chunk is minted again on a
fresh pool (whole, valid, nothing lost), or, when the fresh pool dies too, Unavailable. And a
key no worker can use (a token key) is signed in the server process, which says so."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from issuer.domain.commands import IssueCommand
from issuer.memory import MemoryIssuerStorage
from issuer.minting import MintSpec, MintWorkers
from issuer.usecases import Issuer
from sealmark.clock import FixedClock
from sealmark.crypto.keys import KeyVault, SealedKey, Signer, SoftwareSigner, generate_sealed_key
from sealmark.crypto.pins import PinScheme
from sealmark.crypto.signature import canonical_bytes, decode_ai8030, verify
from sealmark.errors import Unavailable
from sealmark.storage.memory import MemoryStore
from sealmark.tenancy.alphabets import SERIAL_ALPHABETS
from sealmark.tenancy.model import Principal, Role
from tests.support.tenants import seed_tenant

PEPPER = b"unit-pepper-0123456789"
PASSPHRASE = b"unit-passphrase"
NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
SPEC = MintSpec(
    tenant_id="t1",
    request_id="r-kill",
    gtin="09520123456788",
    lot="L1",
    expiry=date(2030, 12, 31),
    production_date=None,
    key_id="01",
    work_order="WO1",
    line_id="L1",
    alphabet=SERIAL_ALPHABETS["alnum-safe"],
    serial_length=12,
    pin_length=6,
)
# Long enough (about a second of signing) that a kill lands while the worker is minting.
SEQS = list(range(20_000, 40_000))


def _workers_of_this_process() -> list[int]:
    me = os.getpid()
    kids = []
    for tid in os.listdir(f"/proc/{me}/task"):
        try:
            found = Path(f"/proc/{me}/task/{tid}/children").read_text().split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        for kid in found:
            try:
                if b"spawn_main" in Path(f"/proc/{kid}/cmdline").read_bytes():
                    kids.append(int(kid))
            except FileNotFoundError:
                continue
    return kids


def _busy_worker() -> int | None:
    """A worker using CPU now (state R in /proc), i.e. minting."""
    for pid in _workers_of_this_process():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state == "R":
            return pid
    return None


@pytest.fixture
def workers() -> Iterator[MintWorkers]:
    pool = MintWorkers(2, PEPPER, PASSPHRASE)
    yield pool
    pool.close()


def _check_whole(minted_serials: list[str], signatures: list[str], public_key: bytes) -> None:
    assert len(minted_serials) == len(SEQS) == len(set(minted_serials))
    for serial, value in zip(minted_serials[::997], signatures[::997], strict=True):
        key_id, signature = decode_ai8030(value)
        message = canonical_bytes(SPEC.gtin, serial, SPEC.lot, "301231", key_id)
        assert verify(public_key, message, signature)


def test_a_worker_killed_mid_chunk_is_replaced_and_the_chunk_minted_whole(
    workers: MintWorkers,
) -> None:
    key = generate_sealed_key("01", PASSPHRASE)
    workers.start()
    workers.mint(SPEC, SEQS[:10], key, NOW)  # warm: both workers up, the key unsealed
    before = set(_workers_of_this_process())
    killed: list[int] = []

    def kill_one_while_minting() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = _busy_worker()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one_while_minting)
    killer.start()
    minted = workers.mint(SPEC, SEQS, key, NOW)
    killer.join()

    assert killed and killed[0] in before
    assert minted.seqs == SEQS
    _check_whole(minted.serials, minted.signatures, key.public_key)
    assert len(minted.copy_text.splitlines()) == len(SEQS)
    pins = PinScheme(PEPPER)
    assert minted.pins[0] == pins.pin(minted.code_keys[0], SPEC.pin_length)
    # The replacement pool serves the next chunks; the old workers are gone.
    again = workers.mint(SPEC, SEQS[:50], key, NOW)
    assert len(again.serials) == 50
    assert not before & set(_workers_of_this_process())


def test_a_chunk_whose_workers_keep_dying_is_unavailable_and_the_pool_recovers(
    workers: MintWorkers,
) -> None:
    key = generate_sealed_key("01", PASSPHRASE)
    workers.start()
    stop = threading.Event()

    def kill_every_worker() -> None:
        while not stop.is_set():
            for pid in _workers_of_this_process():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_every_worker)
    killer.start()
    try:
        with pytest.raises(Unavailable, match="r-kill: a minting worker died") as caught:
            workers.mint(SPEC, SEQS, key, NOW)
    finally:
        stop.set()
        killer.join()
    assert "passphrase" not in str(caught.value)
    # Once workers stay alive, minting works again without a restart.
    minted = workers.mint(SPEC, SEQS, key, NOW)
    _check_whole(minted.serials, minted.signatures, key.public_key)


class _TokenLikeVault(KeyVault):
    """Keys that say they live in a token (backend ``pkcs11``), signed here in software: what
    the Issuer sees of a token key, without a token."""

    def __init__(self) -> None:
        super().__init__("pkcs11", None)
        self._private = Ed25519PrivateKey.generate()

    def create(self, tenant_id: str, key_id: str) -> SealedKey:
        public = self._private.public_key().public_bytes_raw()
        return SealedKey(key_id, public, backend="pkcs11", token_label=f"sealmark/{tenant_id}")

    def signer(self, key: SealedKey) -> Signer:
        return SoftwareSigner(key.key_id, self._private)


def test_a_token_key_signs_in_the_server_process_and_says_so(workers: MintWorkers) -> None:
    clock = FixedClock(NOW)
    tenancy = MemoryStore(clock)
    brand = seed_tenant(tenancy.unit_of_work, clock, "tok", tokens={})
    issuer = Issuer(
        MemoryIssuerStorage(tenancy),
        tenancy.unit_of_work,
        clock,
        os.urandom,
        PinScheme(PEPPER),
        _TokenLikeVault(),
        guess_bound=1e-4,
        workers=workers,
    )
    key = issuer.rotate_key(brand.tenant_id)
    line = Principal(brand.tenant_id, frozenset({Role.LINE}), token_id="tok-line")
    command = IssueCommand(
        request_id="r-token",
        gtin=brand.gtin,
        lot="L1",
        expiry="301231",
        quantity=7_000,  # two chunks
        line_id="L1",
        work_order="WO1",
    )
    with capture_logs() as logs:
        codes = [c for batch in issuer.issue(line, command) for c in batch.codes]

    said = [entry for entry in logs if entry["event"] == "issuer.signing_in_process"]
    assert len(said) == 1 and said[0]["backend"] == "pkcs11" and said[0]["key_id"] == key.key_id
    assert "PKCS#11" in said[0]["reason"]
    assert not _workers_of_this_process(), "a token key's chunk went to a worker"
    assert len(codes) == 7_000 == len({c.serial for c in codes})
    for code in codes[::701]:
        key_id, signature = decode_ai8030(code.signature)
        message = canonical_bytes(brand.gtin, code.serial, "L1", "301231", key_id)
        assert verify(key.public_key, message, signature)
