"""Validation of issuance commands: every field checked, every error naming it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sealmark.errors import InvalidArgument
from sealmark.gs1 import format_yymmdd, normalize_gtin, parse_yymmdd, validate_cset82
from sealmark.validators import check_request_id

MAX_QUANTITY = 500_000
MAX_BATCH = 5_000
DEFAULT_BATCH = 1_000


@dataclass(frozen=True)
class IssueCommand:
    """As received: strings and numbers from the wire or the CLI."""

    request_id: str
    gtin: str
    lot: str
    expiry: str  # YYMMDD (AI 17)
    quantity: int
    line_id: str
    work_order: str
    production_date: str = ""  # YYMMDD (AI 11), optional
    resume_from: int = 0
    batch_size: int = 0


@dataclass(frozen=True)
class ValidIssue:
    request_id: str
    gtin: str
    lot: str
    expiry: date
    expiry_yymmdd: str
    production_date: date | None
    quantity: int
    line_id: str
    work_order: str
    resume_from: int
    batch_size: int


def validate_issue(
    cmd: IssueCommand, *, today: date, prefix: str = "IssueCodesRequest"
) -> ValidIssue:
    """Check every field; raise InvalidArgument naming the first bad one."""

    def f(name: str) -> str:
        return f"{prefix}.{name}"

    for name, value in (
        ("request_id", cmd.request_id),
        ("line_id", cmd.line_id),
        ("work_order", cmd.work_order),
    ):
        check_request_id(value, f(name))
    gtin = normalize_gtin(cmd.gtin, f("gtin"))
    lot = validate_cset82(cmd.lot, f("lot"), max_length=20)
    if not 1 <= cmd.quantity <= MAX_QUANTITY:
        raise InvalidArgument(f("quantity"), f"{cmd.quantity}, want 1..{MAX_QUANTITY}")
    expiry = parse_yymmdd(cmd.expiry, f("expiry"), today=today)
    if expiry < today:
        raise InvalidArgument(f("expiry"), f"{expiry.isoformat()} is in the past")
    production = None
    if cmd.production_date:
        production = parse_yymmdd(cmd.production_date, f("production_date"), today=today)
        if production > today or production > expiry:
            raise InvalidArgument(f("production_date"), "must not be after today or the expiry")
    if not 0 <= cmd.resume_from <= cmd.quantity:
        raise InvalidArgument(f("resume_from"), f"{cmd.resume_from}, want 0..{cmd.quantity}")
    if not 0 <= cmd.batch_size <= MAX_BATCH:
        raise InvalidArgument(f("batch_size"), f"{cmd.batch_size}, want 0..{MAX_BATCH}")
    return ValidIssue(
        request_id=cmd.request_id,
        gtin=gtin,
        lot=lot,
        expiry=expiry,
        expiry_yymmdd=format_yymmdd(expiry),
        production_date=production,
        quantity=cmd.quantity,
        line_id=cmd.line_id,
        work_order=cmd.work_order,
        resume_from=cmd.resume_from,
        batch_size=cmd.batch_size or DEFAULT_BATCH,
    )
