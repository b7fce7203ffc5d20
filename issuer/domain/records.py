"""What the Issuer stores, as values: issuance requests, code rows, signing keys, and a chunk
of minted codes on its way to storage. Pure: the storage port speaks in these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from sealmark.tenancy.alphabets import SerialAlphabet


@dataclass(frozen=True)
class IssueRequestRow:
    tenant_id: str
    request_id: str
    gtin: str
    lot: str
    expiry: date
    production_date: date | None
    quantity: int
    line_id: str
    work_order: str
    key_id: str
    generated: int
    created_at: datetime | None = None


class CodeRow(NamedTuple):
    """One stored code as a chunk carries it (a tuple: a chunk builds thousands of them)."""

    seq: int
    serial: str
    signature: str
    pin: str | None = None  # known only while the code is being minted


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    public_key: bytes
    created_at: datetime
    retired_at: datetime | None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


@dataclass(frozen=True)
class MintSpec:
    """What every code of one issuance request shares."""

    tenant_id: str
    request_id: str
    gtin: str
    lot: str
    expiry: date
    production_date: date | None
    key_id: str
    work_order: str
    line_id: str
    alphabet: SerialAlphabet
    serial_length: int
    pin_length: int


@dataclass(frozen=True)
class Minted:
    """Codes drawn and signed for ``seqs`` but not stored yet (parallel lists).

    ``copy_text`` holds the same rows laid out for PostgreSQL's COPY (columns as
    ``issuer.postgres.CODE_COLUMNS``), built where the codes are minted (often a worker
    process) so that the write costs the server process nothing; other backends read the
    lists."""

    seqs: list[int]
    copy_text: str
    code_keys: list[str]
    serials: list[str]
    signatures: list[str]  # AI 8030 values (compact profile: AI 92 values)
    pins: list[str]
    at: datetime

    def rows(self) -> list[CodeRow]:
        return [
            CodeRow(seq, serial, signature, pin)
            for seq, serial, signature, pin in zip(
                self.seqs, self.serials, self.signatures, self.pins, strict=True
            )
        ]
