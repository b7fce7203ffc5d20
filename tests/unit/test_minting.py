"""Minting a chunk: serials, signatures, PINs and the COPY text the write stage stores."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from issuer.minting import MintSpec, mint
from issuer.postgres import CODE_COLUMNS
from sealmark.crypto.mac import MacScheme, decode_mac
from sealmark.crypto.pins import PinScheme
from sealmark.crypto.signature import canonical_bytes, decode_ai8030, verify
from sealmark.tenancy.alphabets import SERIAL_ALPHABETS

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SPEC = MintSpec(
    tenant_id="t1",
    request_id="r1",
    gtin="09520123456788",
    lot="LOT\t1",  # a tab, which COPY must escape in the shared columns
    expiry=date(2030, 12, 31),
    production_date=None,
    key_id="k1",
    work_order="WO1",
    line_id="L1",
    alphabet=SERIAL_ALPHABETS["numeric"],
    serial_length=6,
    pin_length=7,
)


def _signer() -> tuple[bytes, object]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    return public, lambda messages: [key.sign(m) for m in messages]


def test_a_chunk_is_signed_pinned_and_laid_out_in_copy_columns() -> None:
    public, sign_many = _signer()
    pins = PinScheme(b"unit-pepper-0123456789")
    seqs = list(range(100, 150))
    minted = mint(SPEC, seqs, sign_many, pins, random.Random(1).randbytes, NOW)

    assert minted.seqs == seqs and minted.at == NOW
    assert len(set(minted.serials)) == 50
    assert minted.code_keys == [SPEC.gtin + s for s in minted.serials]
    lines = minted.copy_text.splitlines()
    assert len(lines) == 50
    for line, seq, serial, signature, pin in zip(
        lines, seqs, minted.serials, minted.signatures, minted.pins, strict=True
    ):
        fields = line.split("\t")
        assert len(fields) == len(CODE_COLUMNS)
        row = dict(zip(CODE_COLUMNS, fields, strict=True))
        assert row["code_key"] == SPEC.gtin + serial and row["serial"] == serial
        assert row["seq"] == str(seq) and row["signature"] == signature
        assert row["lot"] == "LOT\\t1" and row["production_date"] == "\\N"
        assert row["state"] == "allocated" and row["expiry"] == "2030-12-31"
        assert row["pin_hash"] == "\\\\x" + pins.pin_hash(SPEC.gtin + serial, pin).hex()
        assert len(pin) == 7 and pin.isdigit()
        key_id, raw = decode_ai8030(signature)
        assert key_id == "k1"
        assert verify(public, canonical_bytes(SPEC.gtin, serial, "LOT\t1", "301231", "k1"), raw)
    assert [(r.seq, r.serial, r.pin) for r in minted.rows()] == list(
        zip(seqs, minted.serials, minted.pins, strict=True)
    )


def test_serials_drawn_twice_in_one_chunk_are_drawn_again() -> None:
    # The source repeats itself: the second half of the first draw equals the first half.
    stream = itertools.cycle([random.Random(2).randbytes(64)])

    def repeating(n: int) -> bytes:
        return b"".join(next(stream) for _ in range(-(-n // 64)))[:n]

    fresh = random.Random(3).randbytes
    calls = {"n": 0}

    def source(n: int) -> bytes:
        calls["n"] += 1
        return repeating(n) if calls["n"] == 1 else fresh(n)

    _, sign_many = _signer()
    minted = mint(SPEC, list(range(40)), sign_many, PinScheme(b"p" * 16), source, NOW)
    assert len(set(minted.serials)) == 40
    assert calls["n"] > 1, "the repeats were not redrawn"


def test_a_compact_chunk_carries_macs_and_is_never_signed() -> None:
    def never(messages: list[bytes]) -> list[bytes]:
        raise AssertionError("a compact chunk was signed")

    scheme = MacScheme(b"unit-mac-secret-0123456789abcdefghij")
    encode = scheme.encoder("t1", "k1", SPEC.gtin)
    minted = mint(
        SPEC,
        list(range(20)),
        never,
        PinScheme(b"p" * 16),
        random.Random(5).randbytes,
        NOW,
        mac=encode,
    )
    lines = minted.copy_text.splitlines()
    for line, serial, value in zip(lines, minted.serials, minted.signatures, strict=True):
        row = dict(zip(CODE_COLUMNS, line.split("\t"), strict=True))
        assert row["signature"] == value == encode(serial)
        key_id, tag = decode_mac(value)
        assert key_id == "k1" and scheme.matches("t1", SPEC.gtin, serial, key_id, tag)
